"""Exact inference rewrites of a trained segmenter: BatchNorm folded into convolutions,
channels-last memory layout.

Both change only the order of floating-point operations (maps agree within ~1e-5), never the
function; the original module is left untouched (checkpoints keep their keys).
"""

from __future__ import annotations

import copy
import itertools
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

M = TypeVar("M", bound=nn.Module)

# torchvision ResNets (and smp's encoders built on them) apply bnN right after convN
_RESNET_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def _folded(conv: object, norm: object) -> nn.Conv2d | None:
    """``conv`` with ``norm`` folded in, or None when the pair is not a plain conv → eval BN."""
    # exact types only: a BatchNorm subclass (e.g. timm's BatchNormAct2d) may do more
    if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
        return None
    if type(conv) is not nn.Conv2d or type(norm) is not nn.BatchNorm2d or (
            norm.running_mean is None):
        return None
    return fuse_conv_bn_eval(conv, norm)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that conv, in place;
    the BatchNorm becomes an Identity. Returns how many were folded.

    Only patterns whose forward order is known are touched: consecutive children of an
    ``nn.Sequential`` and torchvision ResNet's ``convN`` → ``bnN``.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode (running statistics)")
    folded = 0
    for child in module.children():
        folded += fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            fused = _folded(module._modules[first], module._modules[second])
            if fused is not None:
                module._modules[first] = fused
                module._modules[second] = nn.Identity()
                folded += 1
    if isinstance(module, ResNet | BasicBlock | Bottleneck):
        for conv_name, norm_name in _RESNET_PAIRS:
            fused = _folded(getattr(module, conv_name, None), getattr(module, norm_name, None))
            if fused is not None:
                setattr(module, conv_name, fused)
                setattr(module, norm_name, nn.Identity())
                folded += 1
    return folded


def inference_copy(net: M) -> M:
    """A frozen copy of ``net`` for prediction: eval mode, BatchNorm folded, channels-last
    weights (feed it channels-last inputs). ``net`` itself is not changed."""
    fast = copy.deepcopy(net).eval()
    fast.requires_grad_(False)
    fold_batchnorm(fast)
    return fast.to(memory_format=torch.channels_last)
