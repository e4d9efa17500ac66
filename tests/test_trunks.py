"""features/trunks.py and models/classifier.py: every registered trunk builds and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fakeseg.errors import FakesegError
from fakeseg.features.trunks import CLASSIFIER_BACKBONES, TRUNKS, build_trunk
from fakeseg.models.classifier import build_classifier


@pytest.mark.parametrize("name", [*CLASSIFIER_BACKBONES, "inception_v3"])
def test_every_registered_trunk_builds_randomly_and_runs(name: str) -> None:
    side = max(32, TRUNKS[name].min_size)
    with torch.no_grad():
        if name in CLASSIFIER_BACKBONES:
            out = build_classifier(name, "random").eval()(torch.rand(2, 3, side, side))
            assert out.shape == (2,)
        else:
            out = build_trunk(name, "random").eval()(torch.rand(2, 3, side, side))
            assert out.shape == (2, TRUNKS[name].dims)
    assert torch.isfinite(out).all()


def test_missing_torchvision_weights_say_what_to_download(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("FAKESEG_OFFLINE", "1")
    with pytest.raises(FakesegError, match=r"efficientnet_b0.*download https://download\.pytorch"
                                           r"\.org/models/efficientnet_b0"):
        build_classifier("efficientnet_b0", "auto")
    with pytest.raises(FakesegError, match="no pretrained weights"):
        build_classifier("tiny_cnn", "auto")
    with pytest.raises(FakesegError, match="did you mean 'densenet121'"):
        build_classifier("densenet12", "random")
