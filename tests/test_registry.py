"""The one registry helper behind backbones, trunks, models and metrics."""

from __future__ import annotations

import pytest

from fakeseg.errors import FakesegError
from fakeseg.evaluation.metrics import METRICS
from fakeseg.features.registry import BACKBONES
from fakeseg.features.trunks import TRUNKS
from fakeseg.models.registry import MODELS
from fakeseg.registry import Registry, did_you_mean


def test_lookup_did_you_mean_and_listing() -> None:
    colours: Registry[int] = Registry("colour", normalize=str.lower)
    colours.register("red", 1)
    colours.decorator("green")(2)
    assert colours["RED"] == 1 and "Green" in colours and len(colours) == 2
    assert colours.names() == ["red", "green"] and colours.items() == [("red", 1), ("green", 2)]
    with pytest.raises(FakesegError, match=r"unknown colour 'gren' \(did you mean 'green'\?\); "
                                           r"choose from red, green"):
        colours["gren"]
    with pytest.raises(FakesegError, match=r"unknown colour 'zzz'; choose from"):
        colours["zzz"]
    with pytest.raises(ValueError, match="twice"):
        colours.register("red", 3)
    assert did_you_mean("resnet9999", ["resnet18", "resnet34"]).startswith(" (did you mean")
    assert did_you_mean("zzz", ["resnet18"]) == ""


@pytest.mark.parametrize(("registry", "typo"), [
    (BACKBONES, "ssdlite_mobilenet_v3"), (TRUNKS, "mobilenetv2"), (MODELS, "catnt"),
    (METRICS, "iuo"),
])
def test_every_family_uses_the_registry(registry: Registry[object], typo: str) -> None:
    assert isinstance(registry, Registry)
    with pytest.raises(FakesegError, match=r"did you mean"):
        registry[typo]
