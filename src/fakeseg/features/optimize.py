"""Exact rewrites of a frozen or trained net for running it without gradients: BatchNorm
folded into convolutions, channels-last memory layout.

Both change only the order of floating-point operations (maps agree within ~1e-5), never the
function; the original module is left untouched (checkpoints keep their keys). Prediction runs
an :func:`inference_copy` of the whole segmenter; a frozen backbone runs a folded copy of its
body whenever no gradient is needed (:class:`fakeseg.features.backbones.FeatureExtractor`), in
training too.
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
#: timm's EfficientNet parts (the efficientnet_lite0 backbone), by class name: the (conv, norm)
#: attributes their forward applies one right after the other (timm 1.0 source)
_TIMM_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "EfficientNet": (("conv_stem", "bn1"), ("conv_head", "bn2")),
    "EfficientNetFeatures": (("conv_stem", "bn1"),),
    "DepthwiseSeparableConv": (("conv_s2d", "bn_s2d"), ("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_s2d", "bn_s2d"), ("conv_pw", "bn1"), ("conv_dw", "bn2"),
                         ("conv_pwl", "bn3")),
}


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
    ``nn.Sequential``, torchvision ResNet's ``convN`` → ``bnN`` and timm EfficientNet's pairs
    (:data:`_TIMM_PAIRS`; a ``BatchNormAct2d`` leaves its dropout and activation behind).
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
    if type(module).__module__.startswith("timm."):
        for conv_name, norm_name in _TIMM_PAIRS.get(type(module).__name__, ()):
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            plain, after = _split_norm_act(norm)
            fused = _folded(conv, plain)
            if fused is not None:
                setattr(module, conv_name, fused)
                setattr(module, norm_name, after)
                folded += 1
    return folded


def _split_norm_act(norm: object) -> tuple[object, nn.Module]:
    """timm's ``BatchNormAct2d`` (batch norm, then ``drop``, then ``act``) as a plain eval
    BatchNorm2d with its statistics and the module that stands in for it once the norm is
    folded; any other module is returned as it is (with an Identity)."""
    if type(norm).__name__ != "BatchNormAct2d" or not isinstance(norm, nn.BatchNorm2d):
        return norm, nn.Identity()
    drop, act = getattr(norm, "drop", None), getattr(norm, "act", None)
    if not isinstance(drop, nn.Module) or not isinstance(act, nn.Module):
        return None, nn.Identity()  # an unknown variant: left alone
    plain = nn.BatchNorm2d(norm.num_features, eps=norm.eps).eval()
    wanted = plain.state_dict().keys()
    plain.load_state_dict({k: v for k, v in norm.state_dict().items() if k in wanted})
    return plain, nn.Sequential(drop, act)


def inference_copy(net: M) -> M:
    """A frozen copy of ``net`` for prediction: eval mode, BatchNorm folded, channels-last
    weights (feed it channels-last inputs). ``net`` itself is not changed."""
    fast = copy.deepcopy(net).eval()
    fast.requires_grad_(False)
    fold_batchnorm(fast)
    return fast.to(memory_format=torch.channels_last)
