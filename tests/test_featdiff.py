"""featdiff: per-layer discrepancy maps, MSE and SSIM (tiny images, random weights)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from fakeseg.errors import FakesegError
from fakeseg.features import weights as weights_mod
from fakeseg.features.featdiff import (
    FeatdiffResult,
    activation_mse,
    activation_ssim,
    build_backbones,
    featdiff,
    resolve_pairs,
    save_featdiff,
    ssim_window,
    tap_trunk,
)
from fakeseg.io import write_image

BACKBONE = "ssdlite_mobilenet_v2"
LAYERS = ("block3", "block6", "block13")


def test_ssim_window_and_tiny_maps() -> None:
    assert ssim_window(64, 64) == 7
    assert ssim_window(6, 9) == 5
    assert ssim_window(4, 4) == 3
    assert ssim_window(2, 8) is None
    result = activation_ssim(np.ones((3, 2, 2)), np.zeros((3, 2, 2)))
    assert result.value is None and "smaller than 3x3" in result.note


def test_ssim_is_mean_of_per_channel_skimage_and_skips_constant_channels() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    a[2] = b[2] = 0.5  # constant in both maps: skipped
    result = activation_ssim(a, b)
    expected = np.mean([structural_similarity(
        a[c], b[c], win_size=7, data_range=max(a[c].max(), b[c].max()) - min(a[c].min(),
                                                                             b[c].min()))
        for c in range(2)])
    assert result.value == pytest.approx(expected)
    assert (result.n_channels, result.n_constant, result.win_size) == (2, 1, 7)
    assert activation_ssim(a, a).value == pytest.approx(1.0)
    assert activation_mse(a, a) == 0.0
    assert activation_mse(a, b) == pytest.approx(float(np.mean((a - b) ** 2)))


@pytest.fixture
def two_pairs(tmp_path: Path) -> Path:
    """``same`` (identical pixels) and ``diff`` (independent noise), 64×64."""
    rng = np.random.default_rng(1)
    image = rng.random((64, 64, 3)).astype(np.float32)
    for folder in ("real", "synthetic"):
        write_image(tmp_path / "data" / folder / "same.png", image)
    write_image(tmp_path / "data" / "real" / "diff.png", rng.random((64, 64, 3)))
    write_image(tmp_path / "data" / "synthetic" / "diff.png", rng.random((64, 64, 3)))
    return tmp_path / "data"


def test_featdiff_identical_and_different_pairs(two_pairs: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    out = tmp_path / "out"
    result = featdiff(two_pairs / "real", two_pairs / "synthetic", backbones=[BACKBONE],
                      weights="random", progress=False)
    assert isinstance(result, FeatdiffResult) and not out.exists()  # computing writes nothing
    assert [(r["layer"], r["n_pairs"]) for r in result.summary] == [(la, 2) for la in LAYERS]
    files = save_featdiff(result, out, progress=False)
    assert files["json"] == out / "featdiff.json"
    pairs = {p["stem"]: p for p in json.loads(files["json"].read_text())["pairs"]}
    assert set(pairs) == {"same", "diff"}
    for layer in LAYERS:
        same = pairs["same"]["layers"][BACKBONE][layer]
        assert same["mse"] == 0.0
        assert same["ssim"] == pytest.approx(1.0)
        assert pairs["diff"]["layers"][BACKBONE][layer]["mse"] > 0
        for key in ("overlay_png", "map_npy"):
            assert Path(same[key]).is_file()
        assert np.load(same["map_npy"]).shape == tuple(same["map_shape"])
    assert (out / "grid_same.png").is_file() and (out / "grid_diff.png").is_file()
    with open(out / "featdiff.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["backbone"], r["layer"]) for r in rows] == [(BACKBONE, layer) for layer in LAYERS]
    assert all(r["n_pairs"] == "2" for r in rows)
    payload = json.loads((out / "featdiff.json").read_text())
    assert payload["random_weights"] == [BACKBONE]
    assert payload["weights_tags"] == {BACKBONE: "random"}
    assert "mean over channels" in payload["definitions"]["ssim"]
    assert "RANDOM WEIGHTS" in (out / "featdiff.md").read_text()


def test_resolve_pairs_forms(two_pairs: Path, tmp_path: Path) -> None:
    single, problems = resolve_pairs(two_pairs / "real" / "same.png",
                                     two_pairs / "synthetic" / "same.png")
    assert [p.stem for p in single] == ["same"] and problems == []
    by_root, _ = resolve_pairs(None, None, two_pairs)
    assert [p.stem for p in by_root] == ["diff", "same"]
    other = tmp_path / "elsewhere"
    write_image(other / "same.png", np.zeros((8, 8, 3)))
    write_image(other / "lonely.png", np.zeros((8, 8, 3)))
    matched, problems = resolve_pairs(two_pairs / "real", other)
    assert [p.stem for p in matched] == ["same"]
    assert any("diff.png: no synthetic partner" in p for p in problems)
    assert any("lonely.png: no real partner" in p for p in problems)
    with pytest.raises(FakesegError, match="not one of each"):
        resolve_pairs(two_pairs / "real" / "same.png", two_pairs / "synthetic")


def test_auto_mode_skips_backbones_without_weights(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(weights_mod.OFFLINE_ENV, "1")
    with pytest.raises(FakesegError, match=r"no backbone could be built.*ssd300_vgg16"):
        build_backbones(["ssd300_vgg16"], "auto", None, torch.device("cpu"))
    with pytest.raises(FakesegError, match="unknown backbone"):
        build_backbones(["ssd_nonsense"], "auto", None, torch.device("cpu"))


def _classifier_run(folder: Path, trunk: str) -> Path:
    """A checkpoint as ``fakeseg classify train`` writes it (random trunk, random head)."""
    from fakeseg.models.checkpoint import save_checkpoint
    from fakeseg.models.classifier import KIND, build_classifier

    torch.manual_seed(0)
    model = build_classifier(trunk, "random")
    save_checkpoint(folder / "best", model.state_dict(),
                    {"kind": KIND, "backbone": trunk, "weights_tag": "random", "dropout": 0.2,
                     "config": {"note": "test"}})
    return folder


def test_classifier_trunk_is_tapped_at_the_backbone_layers(tmp_path: Path) -> None:
    from fakeseg.models.classifier import load_classifier

    run = _classifier_run(tmp_path / "cls_real", "mobilenet_v2")
    model, _, _ = load_classifier(run)
    extractor = tap_trunk(model.trunk, "all")
    assert extractor.layers == ("block3", "block6", "block13", "expand14", "block17", "conv18")
    assert tap_trunk(model.trunk).layers == LAYERS  # the backbone's default taps
    with pytest.raises(FakesegError, match="extra1 are not in a mobilenet_v2 trunk"):
        tap_trunk(model.trunk, ["extra1"])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        inner = model.trunk.body.features[:4](model.trunk.normalize(x))
        taps = extractor(x)
    torch.testing.assert_close(taps["block3"], inner)  # the trained trunk's own activations
    lite, _, _ = load_classifier(_classifier_run(tmp_path / "cls_lite", "efficientnet_lite0"))
    lite_taps = tap_trunk(lite.trunk)
    assert lite_taps.layers == ("stage1", "stage2", "stage4")
    with torch.no_grad():
        body = lite.trunk.body
        stem = body.bn1(body.conv_stem(lite.trunk.normalize(x)))
        torch.testing.assert_close(lite_taps(x)["stage1"], body.blocks[1](body.blocks[0](stem)))
    tiny, _, _ = load_classifier(_classifier_run(tmp_path / "cls_tiny", "tiny_cnn"))
    with pytest.raises(FakesegError, match="no registered backbone taps"):
        tap_trunk(tiny.trunk)


def test_featdiff_sets_classifiers_beside_backbones(two_pairs: Path, tmp_path: Path) -> None:
    import fakeseg

    real_run = _classifier_run(tmp_path / "runs" / "real_only", "mobilenet_v2")
    synthetic_run = _classifier_run(tmp_path / "runs" / "synthetic_only", "mobilenet_v2")
    with pytest.raises(FakesegError, match="a path, not a backbone name"):
        featdiff(two_pairs / "real", two_pairs / "synthetic", backbones=[str(real_run)])
    result = fakeseg.featdiff(two_pairs / "real", two_pairs / "synthetic",
                              backbones=f"{BACKBONE},{real_run},{synthetic_run / 'best'}",
                              weights="random", progress=False)
    names = ["classifier:real_only", "classifier:synthetic_only"]
    assert list(result.weights_tags) == [BACKBONE, *names]
    assert result.random_weights == [BACKBONE]  # a trained classifier is not "random"
    assert result.weights_tags[names[0]] == "trained classifier (random init)"
    for name in names:
        rows = [r for r in result.summary if r["backbone"] == name]
        assert [r["layer"] for r in rows] == list(LAYERS)
        same = [c for p in result.pairs if p.pair.stem == "same" for c in p.cells
                if c.backbone == name]
        assert all(c.mse == 0.0 for c in same)
    assert result.backbones[names[0]]["checkpoint"].endswith("best")
    files = save_featdiff(result, tmp_path / "out", progress=False)
    markdown = files["markdown"].read_text()
    assert "| classifier:real_only | block3 |" in markdown and "fakeseg classify train" in markdown
    assert (tmp_path / "out" / "pairs" / "same" / "classifier_real_only__block3.png").is_file()
