"""The built-in demo dataset: layout, determinism, masks, artifact families, labels, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakeseg.data import demo
from fakeseg.data.demo import (
    ARTIFACT_FAMILIES,
    CLASS_NAMES,
    DemoSummary,
    apply_artifact,
    build_demo_dataset,
    soft_alpha,
)
from fakeseg.data.pairs import check_dataset
from fakeseg.errors import FakesegError
from fakeseg.io import read_label_map, read_mask

SIZE = 64
LAYOUT = ("real", "synthetic", "masks", "labels")


def _build(out: Path, seed: int = 0) -> DemoSummary:
    return build_demo_dataset(out, seed=seed, size=SIZE, variants=1, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("demo") / "data"
    return out, _build(out)


def test_layout_and_counts(built: tuple[Path, DemoSummary]) -> None:
    out, summary = built
    assert summary.root == out and summary.seed == 0
    assert summary.n_pairs >= 8
    stems = {p.stem for p in (out / "real").glob("*.png")}
    assert len(stems) == summary.n_pairs
    assert all(stem.endswith("_0") for stem in stems)
    for folder in LAYOUT:
        assert {p.stem for p in (out / folder).glob("*.png")} == stems
    assert set(summary.families) == set(ARTIFACT_FAMILIES)
    manifest = json.loads((out / "demo.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == SIZE
    assert "demo" in manifest["note"] and "not a claim" in manifest["note"]
    assert len(manifest["pairs"]) == summary.n_pairs
    assert len(manifest["sources"]) == summary.n_pairs
    counted = {family: 0 for family in ARTIFACT_FAMILIES}
    for record in manifest["pairs"]:
        assert 2 <= len(record["regions"]) <= 4
        assert 0.10 <= record["coverage"] <= 0.50
        for region in record["regions"]:
            counted[region["family"]] += 1
    assert counted == summary.families
    assert sum(summary.families.values()) >= 2 * summary.n_pairs


def test_check_dataset_is_clean(built: tuple[Path, DemoSummary]) -> None:
    out, summary = built
    report = check_dataset(out, progress=False)
    assert report.problems == []
    assert report.n_pairs == report.n_masks == report.n_labels == summary.n_pairs
    assert set(report.sizes) == {(SIZE, SIZE)}


def test_outside_mask_identical_inside_differs(built: tuple[Path, DemoSummary]) -> None:
    out, _ = built
    inside_diffs = []
    for real_path in sorted((out / "real").glob("*.png")):
        real = _pixels(real_path).astype(np.int16)
        synthetic = _pixels(out / "synthetic" / real_path.name).astype(np.int16)
        raw_mask = _pixels(out / "masks" / real_path.name)
        assert set(np.unique(raw_mask)) <= {0, 255}
        mask = read_mask(out / "masks" / real_path.name)
        assert real.shape == synthetic.shape == (SIZE, SIZE, 3)
        assert np.array_equal(real[~mask], synthetic[~mask])
        assert mask.any()
        inside_diffs.append(np.abs(real[mask] - synthetic[mask]).mean())
    assert np.mean(inside_diffs) > 2.0
    assert np.mean(np.array(inside_diffs) > 0) >= 0.8


def test_same_seed_is_byte_identical_and_seed_matters(
    built: tuple[Path, DemoSummary], tmp_path: Path
) -> None:
    out, _ = built
    again = tmp_path / "again"
    _build(again, seed=0)
    assert _files(out) == _files(again)
    other = tmp_path / "other"
    _build(other, seed=1)
    first, second = _files(out), _files(other)
    assert first.keys() == second.keys()
    masks = [name for name in first if name.startswith("masks")]
    assert any(first[name] != second[name] for name in masks)


@pytest.fixture
def textured() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([0.3 + 0.4 * xx, 0.5 - 0.3 * yy, 0.4 + 0.2 * np.sin(8 * xx)], axis=-1)
    base[20:40, 10:30] += 0.25
    return np.clip(base + rng.normal(0, 0.06, base.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("family", ARTIFACT_FAMILIES)
def test_each_family_changes_only_its_region(family: str, textured: np.ndarray) -> None:
    shape = np.zeros((SIZE, SIZE), dtype=bool)
    shape[12:44, 16:52] = True
    alpha = soft_alpha(shape, feather=2.0)
    assert np.array_equal(alpha > 0.5, shape) and np.all(alpha[~shape] == 0)
    result = apply_artifact(textured, alpha, family, np.random.default_rng(0))
    assert result.shape == textured.shape and result.dtype == np.float32
    assert np.array_equal(result[~shape], textured[~shape])
    assert np.abs(result[shape] - textured[shape]).mean() > 0.01
    again = apply_artifact(textured, alpha, family, np.random.default_rng(0))
    assert np.array_equal(result, again)


def test_families_differ_from_each_other(textured: np.ndarray) -> None:
    shape = np.zeros((SIZE, SIZE), dtype=bool)
    shape[8:56, 8:56] = True
    alpha = soft_alpha(shape, feather=2.0)
    results = [apply_artifact(textured, alpha, family, np.random.default_rng(0))
               for family in ARTIFACT_FAMILIES]
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert np.abs(results[i] - results[j]).mean() > 0.003


def test_unknown_family_is_an_error(textured: np.ndarray) -> None:
    alpha = np.ones((SIZE, SIZE), dtype=np.float32)
    with pytest.raises(FakesegError, match="unknown artifact family"):
        apply_artifact(textured, alpha, "lens_flare", np.random.default_rng(0))


def test_labels_are_single_channel_class_ids(built: tuple[Path, DemoSummary]) -> None:
    out, _ = built
    manifest = json.loads((out / "demo.json").read_text())
    assert list(manifest["classes"].values()) == list(CLASS_NAMES)
    seen: set[int] = set()
    for path in sorted((out / "labels").glob("*.png")):
        assert Image.open(path).mode == "L"
        labels = read_label_map(path)
        assert labels.shape == (SIZE, SIZE)
        assert labels.min() >= 0 and labels.max() < len(CLASS_NAMES)
        seen |= set(np.unique(labels).tolist())
    assert seen == set(range(len(CLASS_NAMES)))


def test_non_empty_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FakesegError, match="not a previous demo dataset") as info:
        _build(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_previous_demo_is_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    build_demo_dataset(out, seed=3, size=SIZE, variants=2, progress=False)
    summary = _build(out, seed=0)
    assert len(list((out / "synthetic").glob("*.png"))) == summary.n_pairs
    assert check_dataset(out, progress=False).problems == []
    assert json.loads((out / "demo.json").read_text())["seed"] == 0


def test_no_photos_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = demo.PhotoSource("nothing", "nowhere", lambda: tmp_path / "missing.png")
    monkeypatch.setattr(demo, "PHOTO_SOURCES", (missing,))
    with pytest.raises(FakesegError, match="no demo photos"):
        _build(tmp_path / "out")


@pytest.mark.slow  # two whole demo runs
def test_demo_reruns_over_its_own_folder_after_the_model_changed(tmp_path: Path) -> None:
    """A demo run replaces the previous one's predictions: predict refuses a folder that holds
    another model's, and a new version's model (or another seed) differs."""
    from fakeseg.workflows.demo import demo as run_demo

    first = run_demo(tmp_path / "d", steps=1, seed=0, progress=False)
    second = run_demo(tmp_path / "d", steps=1, seed=1, progress=False)
    assert first.predictions == second.predictions
    assert list(second.predictions.glob("*_overlay.jpg"))
    assert (tmp_path / "d" / "report.html").exists()
