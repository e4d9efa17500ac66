"""The composite protocol and mask mode, end to end on a tiny trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakeseg.config import TrainConfig
from fakeseg.data.composites import CompositeItem
from fakeseg.data.pairs import index_pairs, load_pair
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.evaluate import (
    ALL_IMAGES,
    UNDEFINED_CELL,
    evaluate_masks,
    evaluate_pairs,
    save_evaluation,
)
from fakeseg.evaluation.failures import (
    FALSE_ALARM,
    HIT,
    MISS,
    draw_failures,
    error_map,
    failure_cases,
    worst_items,
)
from fakeseg.evaluation.protocol import (
    ProtocolConfig,
    constant_scorer,
    fit_oracle_scales,
    is_mixed,
    oracle_scorer,
    protocol_sets,
    score_items,
)
from fakeseg.io import write_image
from fakeseg.training.segmentation import train
from fakeseg.workflows.benchmark import PAPER_TABLE1, benchmark
from tests.conftest import make_pairs
from tests.test_fakesegment import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    data = make_pairs(root / "pairs", n=5, labels=True)
    train(data, root / "run", TrainConfig(**{**TINY, "steps": 2}), progress=False)
    return data, root / "run"


def test_protocol_is_deterministic_and_saved(trained: tuple[Path, Path]) -> None:
    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs]
    config = ProtocolConfig(seed=7, per_pair=2)
    first, second = protocol_sets(pairs[:2], pairs[2:], config), protocol_sets(
        pairs[:2], pairs[2:], config)
    for name in ("controlled", "raw"):
        for a, b in zip(first[name]["test"], second[name]["test"], strict=True):
            assert a.name == b.name and np.array_equal(a.image, b.image)
    other = protocol_sets(pairs[:2], pairs[2:], ProtocolConfig(seed=8, per_pair=2))
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(
        first["raw"]["test"], other["raw"]["test"], strict=True))


def test_all_synthetic_floor_matches_coverage(trained: tuple[Path, Path]) -> None:
    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs]
    test = protocol_sets([], pairs, ProtocolConfig(per_pair=3))["raw"]["test"]
    row = score_items("all synthetic", constant_scorer(1.0), [], test, threshold=0.5)
    mixed = [i.mask for i in test if i.kind not in ("pure_real", "pure_synthetic")]
    coverage = np.concatenate([m.ravel() for m in mixed]).mean()
    assert row.overall["dice"] == pytest.approx(2 * coverage / (1 + coverage))
    assert row.fp_real == 1.0


def test_paired_evaluation_writes_everything(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    result = evaluate_pairs(run, data, progress=False)
    assert not (tmp_path / "ev").exists()  # computing writes nothing
    model = result.method("model")
    assert 0.0 <= model.overall["pixel_accuracy"] <= 1.0 and 0.0 <= model.overall["miou"] <= 1.0
    files = save_evaluation(result, tmp_path / "ev")
    payload = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert payload["mode"] == "paired" and "versions" in payload and payload["seed"] == 2024
    sections = payload["results"]
    assert len(sections) == 2  # with and without shortcut controls
    names = [row["name"] for row in next(iter(sections.values()))]
    assert names == ["model", "all synthetic", "all real"]
    assert all(row["per_class"] for row in next(iter(sections.values())))  # labels/ exist
    assert payload["results"] == json.loads(json.dumps(result.rows()))
    for key in ("metrics_md", "metrics_json"):
        assert files[key].exists()
    markdown = files["metrics_md"].read_text()
    assert "| pixel acc | mIoU |" in markdown
    assert "image-level detection by set × method" in markdown
    assert list((tmp_path / "ev").glob("curves_*.png")) and list(
        (tmp_path / "ev").glob("dice_hist_*.png"))
    assert list((tmp_path / "ev" / "composites" / "controlled" / "images").glob("*.png"))
    assert len(list((tmp_path / "ev").glob("failures_*.png"))) == 2


def test_mask_mode(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "img", tmp_path / "msk"
    for i in range(3):
        write_image(images / f"{i}_biggan_fake.png", rng.random((48, 40, 3)))
        mask = np.zeros((48, 40), np.uint8)
        mask[:20] = 255 if i else 1
        write_image(masks / f"{i}_biggan_fake.png", mask)
    result = evaluate_masks(run, images, masks, source_pattern=r"_([a-z]+)_fake",
                            progress=False)
    assert set(result.sections) == {ALL_IMAGES, "source: biggan"}
    save_evaluation(result, tmp_path / "ev")
    assert (tmp_path / "ev" / "failures_all_images.png").exists()
    write_image(masks / "0_biggan_fake.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="--resize-masks"):
        evaluate_masks(run, images, masks, progress=False)
    inverted = evaluate_masks(run, images, masks, resize_masks=True, invert_masks=True,
                              progress=False)
    assert inverted.method("model").overall["n_images"] == 3


def test_mask_mode_survives_an_all_real_source(trained: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    _, run = trained
    rng = np.random.default_rng(1)
    images, masks = tmp_path / "img", tmp_path / "msk"
    for i, source in enumerate(("biggan", "biggan", "real", "real")):
        write_image(images / f"{i}_{source}_fake.png", rng.random((48, 40, 3)))
        mask = np.zeros((48, 40), np.uint8)
        if source == "biggan":
            mask[:20] = 255  # only this source has synthetic pixels
        write_image(masks / f"{i}_{source}_fake.png", mask)
    result = evaluate_masks(run, images, masks, source_pattern=r"_([a-z]+)_fake",
                            threshold=0.5, progress=False)
    real = result.method("model", "source: real")
    assert not real.pixels_defined and real.overall["dice"] is None
    assert real.fp_real is not None and real.image_level["n_positive"] == 0
    biggan = result.method("model", "source: biggan")
    assert biggan.pixels_defined and biggan.overall["n_images"] == 2
    files = save_evaluation(result, tmp_path / "ev")
    markdown = files["metrics_md"].read_text()
    real_line = next(line for line in markdown.splitlines()
                     if line.startswith("| model") and UNDEFINED_CELL in line)
    assert real_line.count(UNDEFINED_CELL) == 7  # every pixel-metric cell says so
    assert "no test image of this set contains synthetic pixels" in markdown
    detection = markdown.split("image-level detection by source × method")[1]
    assert "| real | model | 2 | 0 |" in detection and "| biggan | model | 2 | 2 |" in detection
    payload = json.loads(files["metrics_json"].read_text())
    assert payload["results"]["source: real"][0]["overall"]["undefined"]


def test_error_map_colours_each_outcome() -> None:
    prob = np.array([[0.9, 0.9], [0.1, 0.1]])
    mask = np.array([[True, False], [True, False]])
    picture = error_map(prob, mask, threshold=0.5)
    assert tuple(picture[0, 0]) == pytest.approx(HIT)
    assert tuple(picture[0, 1]) == pytest.approx(FALSE_ALARM)
    assert tuple(picture[1, 0]) == pytest.approx(MISS)
    assert not picture[1, 1].any()


def test_worst_items_are_the_lowest_dice(trained: tuple[Path, Path]) -> None:
    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs]
    test = protocol_sets([], pairs, ProtocolConfig(per_pair=2))["raw"]["test"]
    mixed = [i for i in test if is_mixed(i)]
    by_name = {i.name: float(i.mask.mean()) for i in mixed}

    def scorer(item: CompositeItem) -> np.ndarray:  # good on small masks, bad on large ones
        return item.mask.astype(np.float32) if by_name.get(item.name, 1) < 0.35 else \
            np.zeros(item.mask.shape, np.float32)

    row = score_items("m", scorer, [], test, threshold=0.5)
    worst = worst_items(row, test, k=2)
    assert [d for _, d in worst] == sorted(row.dice_per_image)[:2]
    assert all(by_name[item.name] >= 0.35 for item, d in worst if d == 0.0)


def test_per_pair_scores_are_each_pairs_own_micro_dice_and_false_alarms(
        trained: tuple[Path, Path]) -> None:
    from sklearn.metrics import f1_score

    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs]
    test = protocol_sets([], pairs, ProtocolConfig(per_pair=2))["raw"]["test"]
    stems = sorted({i.stem for i in test})

    def scorer(item: CompositeItem) -> np.ndarray:  # perfect on the first pair, noise elsewhere
        if item.stem == stems[0]:
            return item.mask.astype(np.float32)
        return np.random.default_rng(len(item.name)).random(item.mask.shape).astype(np.float32)

    row = score_items("m", scorer, [], test, threshold=0.5)
    assert sorted(row.per_pair) == stems and row.per_pair[stems[0]]["dice"] == 1.0
    for stem in stems:
        items = [i for i in test if i.stem == stem]
        mixed = [i for i in items if is_mixed(i)]
        truth = np.concatenate([i.mask.ravel() for i in mixed])
        guess = np.concatenate([scorer(i).ravel() >= 0.5 for i in mixed])
        assert row.per_pair[stem]["dice"] == pytest.approx(f1_score(truth, guess))
        real = [scorer(i) >= 0.5 for i in items if i.kind == "pure_real"]
        expected = float(np.mean(np.concatenate([r.ravel() for r in real]))) if real else None
        assert row.per_pair[stem]["fp_real"] == pytest.approx(expected)


def test_gallery_shows_every_method_on_the_headline_images(trained: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs]
    test = protocol_sets([], pairs, ProtocolConfig(per_pair=2))["raw"]["test"]
    perfect = constant_scorer(0.0)

    def truth(item: CompositeItem) -> np.ndarray:
        return item.mask.astype(np.float32)

    rows = [score_items("blind", perfect, [], test, threshold=0.5),
            score_items("oracle", truth, [], test, threshold=0.5)]
    gallery = failure_cases([(rows[0], perfect), (rows[1], truth)], test, k=2)
    assert gallery.methods == ["blind", "oracle"] and gallery.headline == "blind"
    mixed = [r for r in gallery.rows if is_mixed(r.item)]
    assert [r.item.name for r in mixed] == [i.name for i, _ in worst_items(rows[0], test, 2)]
    for row in mixed:  # the same image under both methods: blind misses, the truth hits
        assert row.notes == ["Dice 0.00", "Dice 1.00"]
        np.testing.assert_array_equal(row.probs[1], row.item.mask.astype(np.float32))
    assert draw_failures(gallery, tmp_path / "fig5.png").is_file()


def test_benchmark_resumes_a_partial_run_and_draws_failures(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=5)
    config = TrainConfig(**{**TINY, "steps": 4})
    protocol = ProtocolConfig(per_pair=1)
    train(data, tmp_path / "bench" / "runs" / "fakesegment", config, progress=False,
          stop_after=2)  # an interrupted run: 2 of 4 steps done
    result = benchmark(data, tmp_path / "bench", entries=[("fakesegment", config)],
                       protocol=protocol, progress=False)
    history = json.loads((tmp_path / "bench" / "runs" / "fakesegment" / "history.json")
                         .read_text())
    assert [h["step"] for h in history] == [2, 4]  # resumed, not retrained
    rows = next(iter(result.evaluation.sections.values()))
    assert [r.name for r in rows][:2] == ["fakesegment", "featdiff_oracle (needs pair)"]
    assert result.runs == {"fakesegment": tmp_path / "bench" / "runs" / "fakesegment"}
    files = save_evaluation(result.evaluation, tmp_path / "bench")
    assert len(list((tmp_path / "bench").glob("failures_*.png"))) == 2
    payload = json.loads(files["metrics_json"].read_text())
    assert payload["reported_in_paper"]["rows"] == PAPER_TABLE1["rows"]
    assert {r["method"]: r["Dice avg"] for r in payload["reported_in_paper"]["rows"]} == {
        "ManTraNet": 0.40, "MAG": 0.27, "FakeSegment": 0.50}
    markdown = files["metrics_md"].read_text()
    block = markdown.split("## reported in the paper, different data")[1]
    assert "| FakeSegment | 0.51 | 0.49 | 0.50 |" in block
    assert "| fakesegment |" not in block  # measured rows stay above, apart


def test_oracle_cache_gives_the_same_maps_once(trained: tuple[Path, Path]) -> None:
    from fakeseg.features import build_backbone

    data, _ = trained
    pairs = [load_pair(p) for p in index_pairs(data).pairs[:2]]
    items = protocol_sets([], pairs, ProtocolConfig(per_pair=1))["raw"]["test"]
    extractor = build_backbone("ssdlite_mobilenet_v2", "random").eval()
    cache: dict = {}
    scales = fit_oracle_scales(extractor, items, cache=cache)
    assert set(cache) == {i.name for i in items}
    first = {name: maps for name, maps in cache.items()}
    cached, plain = oracle_scorer(extractor, scales, cache=cache), oracle_scorer(extractor, scales)
    for item in items:
        np.testing.assert_allclose(cached(item), plain(item), rtol=1e-5, atol=1e-6)
    assert all(cache[name] is first[name] for name in first)  # reused, not recomputed


@pytest.mark.parametrize(("methods", "message"), [
    (["fakesegment", "mantrnet"], "did you mean 'mantranet'"),
    (["fakesegment", "featdiff_oracle"], "reference row"),
])
def test_benchmark_rejects_bad_methods_before_training(tmp_path: Path, methods: list[str],
                                                       message: str) -> None:
    data = make_pairs(tmp_path / "pairs", n=5)
    with pytest.raises(FakesegError, match=message):
        benchmark(data, tmp_path / "bench", base=TrainConfig(**TINY), methods=methods,
                  progress=False)
    assert not (tmp_path / "bench").exists()
