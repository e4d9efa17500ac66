"""report: one self-contained, safe HTML file from fake result folders (tiny files, no model)."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from fakeseg.data.demo import DEMO_JSON, DEMO_KIND
from fakeseg.errors import FakesegError
from fakeseg.io import write_image, write_json, write_npy, write_text
from fakeseg.reporting import find_results, report, top_regions
from fakeseg.reporting.templates import num

VERSIONS = {"fakeseg": "0.1.0", "torch": "2.x"}
SCORES = {"a": 0.2, "b": 0.9, "c": 0.5}
SECRET_SIZE = (37, 23)  # a picture outside every result folder: must never be embedded
EVAL_SECTION = "composites, with shortcut controls"


class Page(HTMLParser):
    """Collects ids, every src/href, <h4> texts, table cells and the glance items."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.h4: list[str] = []
        self.cells: list[str] = []
        self.glance: list[str] = []
        self._open: list[str] = []  # what text is being collected: h4, td, glance-li
        self._glance_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") and value is not None:
                self.links.append((tag, name, value))
        if tag == "div" and values.get("class") == "glance":
            self._glance_depth = 1
        elif tag == "div" and self._glance_depth:
            self._glance_depth += 1
        if tag == "h4":
            self._open.append("h4")
            self.h4.append("")
        elif tag == "td":
            self._open.append("td")
            self.cells.append("")
        elif tag == "li" and self._glance_depth:
            self._open.append("li")
            self.glance.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._glance_depth:
            self._glance_depth -= 1
        if self._open and tag == {"h4": "h4", "td": "td", "li": "li"}.get(tag):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        target = {"h4": self.h4, "td": self.cells, "li": self.glance}
        for name in set(self._open):
            target[name][-1] += data


def two_blobs() -> np.ndarray:
    heat = np.full((30, 40), 0.1, np.float32)
    heat[2:7, 3:9] = 0.9  # 5×6 = 30 px
    heat[20:24, 30:33] = 0.8  # 4×3 = 12 px
    return heat


def picture() -> np.ndarray:
    return np.linspace(0, 1, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3)


def metric_row(name: str, threshold: float, dice: float, auc: float) -> dict:
    return {"name": name, "threshold": threshold,
            "threshold_source": "validation composites (micro F1)" if name == "model"
            else "given",
            "overall": {"dice": dice, "iou": dice / 1.5, "dice_macro": dice - 0.05,
                        "iou_macro": 0.3, "pixel_auc": auc},
            "per_class": {"dark": {"dice": dice, "iou": 0.3}}, "per_kind": {},
            "per_pair": {"pair_a": {"dice": 0.8642, "iou": 0.7, "fp_real": 0.0}},
            "image_level": {"roc_auc": auc}, "fp_real": 0.1, "oracle_f1_per_image": 0.7,
            "seconds": 1.0, "extra": {}}


def make_results(root: Path) -> Path:
    # a demo dataset, named by the evaluation and the training run
    data = root / "data"
    write_json(data / DEMO_JSON, {"kind": DEMO_KIND, "complete": True, "pairs": []})
    # evaluation
    ev = root / "eval"
    rows = [metric_row("model", 0.4123, 0.6137, 0.8051),
            metric_row("all synthetic", 0.5, 0.2468, 0.5), metric_row("all real", 0.5, 0.0, 0.5)]
    write_json(ev / "metrics.json", {"title": "eval of tiny", "mode": "paired", "data": str(data),
                                     "test_pairs": ["p1", "p2"], "versions": VERSIONS,
                                     "results": {EVAL_SECTION: rows}})
    slug = "composites_with_shortcut_controls"
    for prefix in ("curves_", "dice_hist_", "failures_"):
        write_image(ev / f"{prefix}{slug}.png", picture())
    # predictions: three images, the "b" heat map holds two known blobs (old absolute form)
    pr = root / "predict"
    lines = []
    for name, score in SCORES.items():
        heat = two_blobs() if name == "b" else np.full((30, 40), 0.1, np.float32)
        lines.append(json.dumps({
            "image": str(root / f"{name}.png"), "name": name, "score": score, "max": 0.9,
            "topk_mean": 0.8, "threshold": 0.5,
            "heat_png": str(write_image(pr / f"{name}_heat.png", heat)),
            "heat_npy": str(write_npy(pr / f"{name}_heat.npy", heat)),
            "overlay": str(write_image(pr / f"{name}_overlay.png", picture()))}))
    write_text(pr / "results.jsonl", "\n".join(lines) + "\n")
    write_json(pr / "predict.json", {"threshold": 0.5, "model": {"weights_tag": "imagenet:x"},
                                     "versions": VERSIONS})
    # fingerprint
    fp = root / "fp"
    write_json(fp / "fingerprint.json", {"transform": "fft", "size": 64, "n_real": 3,
                                         "n_synthetic": 3, "energy": 0.3, "energy_null": 0.1,
                                         "band_energy": {"low": 0.2}, "peaks": []})
    write_image(fp / "fingerprint.png", picture())
    write_text(fp / "peaks.csv", "rank,fy,fx,z,significant\n1,0.25,0.0,7.5,1\n")
    # featdiff
    fd = root / "featdiff"
    write_json(fd / "featdiff.json", {"config": {"backbones": ["m"]}, "versions": VERSIONS,
                                      "weights_tags": {"m": "imagenet:x"},
                                      "summary": [{"backbone": "m", "layer": "l1",
                                                   "mse_mean": 0.01, "ssim_mean": 0.7}],
                                      "pairs": [{}]})
    write_image(fd / "grid_p0.png", picture())
    # a segmentation run
    run = root / "train"
    write_text(run / "config.yaml", "backbone: ssdlite_mobilenet_v2\nsteps: 2\n")
    write_json(run / "history.json", [{"epoch": 1, "step": 1, "loss_bce": 0.7,
                                       "val_f1_best": 0.4}, {"epoch": 2, "step": 2,
                                                             "loss_bce": 0.6, "val_f1_best": 0.5}])
    write_json(run / "best" / "model.json", {
        "config": {"backbone": "ssdlite_mobilenet_v2"}, "versions": VERSIONS,
        "weights_tag": "imagenet:x", "threshold": 0.4567, "step": 2, "data": str(data),
        "split": {"train": ["p0", "p3"], "val": ["p4"], "test": ["p1", "p2"]},
        "val": {"f1_best": 0.5321, "pixel_auc": 0.8}})
    make_classifier_results(root)
    return root


def make_classifier_results(root: Path) -> None:
    """What ``classify train`` and ``classify eval`` write (the files the report reads)."""
    val = {"accuracy": 0.75, "precision": 0.8, "recall": 0.7, "f1": 0.7467,
           "balanced_accuracy": 0.7512, "roc_auc": 0.8234, "average_precision": 0.81,
           "eer": 0.25, "threshold": 0.5, "n": 8, "n_positive": 4}
    run = root / "classify_run"
    config = {"data": str(root / "data"), "backbone": "mobilenet_v2", "epochs": 2, "seed": 0}
    write_json(run / "config.json", config)
    write_json(run / "split.json", {"train": [{"path": "x", "label": 0}] * 6,
                                    "val": [{"path": "y", "label": 1}] * 2})
    write_json(run / "history.json", [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.69,
                                       "val": val}, {"epoch": 2, "train_loss": 0.6,
                                                     "val_loss": 0.62, "val": val}])
    write_json(run / "best" / "model.json", {
        "kind": "classifier", "backbone": "mobilenet_v2", "weights_tag": "imagenet:y",
        "size": 64, "fit": "crop", "threshold": 0.5, "epoch": 2, "val": val, "config": config,
        "versions": VERSIONS})
    write_json(root / "classify_eval" / "metrics.json", {
        "scorer": "model", "scorer_description": "classifier mobilenet_v2", "run": str(run),
        "data": str(root / "data"), "threshold": 0.5, "score": "probability_synthetic",
        "n": 10, "n_seen_in_training": 0, "overall": {**val, "n": 10, "n_positive": 5,
                                                       "balanced_accuracy": 0.6789},
        "per_source": None, "versions": VERSIONS})


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "runs")


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def embedded_sizes(html: str) -> list[tuple[int, int]]:
    """The pixel size of every embedded (data URI) image of the page."""
    sizes = []
    for data in re.findall(r'src="data:image/[a-z]+;base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            sizes.append(image.size)
    return sizes


def test_report_is_self_contained_and_has_only_the_given_sections(results: Path,
                                                                   tmp_path: Path) -> None:
    out = report([results / "eval", results / "predict", results / "fp", results / "featdiff"],
                 tmp_path / "out" / "report.html", display_px=120)
    page = parse(out)
    for kind in ("evaluation", "predictions", "fingerprints", "featdiff"):
        assert kind in page.ids
    for kind in ("training", "attacks", "classifier", "detection"):
        assert kind not in page.ids
    assert page.links
    for tag, attribute, value in page.links:
        assert not value.lower().startswith(("http:", "https:", "//")), value
        if tag == "img":
            assert value.startswith("data:image/"), value
        elif attribute == "href" and value.startswith("#"):
            assert value[1:] in page.ids, value  # every in-page link has its target
        elif attribute == "href":
            assert not value.startswith("/"), value  # relative to the report
            assert (out.parent / unquote(value)).resolve().is_file(), value
    text = out.read_text()
    assert "<script" not in text.lower()
    assert "all synthetic" in text and "Dice (micro)" in text  # the table comes from JSON


def test_glance_numbers_appear_verbatim_in_the_tables(results: Path, tmp_path: Path) -> None:
    out = report([results], tmp_path / "r.html", display_px=120)
    page = parse(out)
    cells = {c.strip() for c in page.cells}
    numbers = [n for item in page.glance for n in re.findall(r"\d+\.\d+", item)]
    assert len(numbers) >= 10, page.glance
    missing = [n for n in numbers if n not in cells]
    assert not missing, (missing, page.glance)
    text = " ".join(page.glance)
    # the headline numbers and the thresholds they use, formatted as in the tables
    for expected in ("0.614", "0.412", "0.247", "0.805", "0.532", "0.457", "0.679", "0.900"):
        assert expected in text, expected
    assert "simulated demo data" in text
    assert "5 pair(s) split train 2 / val 1 / test 2" in text
    assert "Dice (micro) per test pair" in out.read_text() and "0.864" in cells
    # where the model fails: a link from the glance to the gallery
    html = out.read_text()
    anchor = re.search(r'Where the model fails: worst test images of <a href="#([^"]+)"', html)
    assert anchor and anchor.group(1) in page.ids


def test_classifier_runs_and_evaluations_appear(results: Path, tmp_path: Path) -> None:
    assert {"classifier", "detection"} <= {f.kind for f in find_results([results])}
    out = report([results / "classify_run", results / "classify_eval"], tmp_path / "r.html")
    page = parse(out)
    assert {"classifier", "detection"} <= page.ids
    text = " ".join(page.glance)
    assert "0.751" in text and "0.823" in text  # validation balanced accuracy, ROC AUC
    assert "0.679" in text  # the evaluation's balanced accuracy
    assert "evaluation" not in page.ids  # classify eval's metrics.json is not a segmentation one
    assert "frame or size" not in text
    # an evaluation on data whose labels show in the frame says so, at a glance and in a banner
    metrics = json.loads((results / "classify_eval" / "metrics.json").read_text())
    warning = "DATA: the edge colour alone tells real from synthetic images <frame>"
    write_json(results / "classify_eval" / "metrics.json", {**metrics, "shortcuts": [warning]})
    out = report([results / "classify_eval"], tmp_path / "s.html")
    assert "the labels can be read off the frame or size" in " ".join(parse(out).glance)
    assert '<p class="banner">DATA: the edge colour alone tells real from synthetic images ' \
           "&lt;frame&gt;</p>" in out.read_text()


def test_predictions_are_ranked_by_score_with_regions(results: Path, tmp_path: Path) -> None:
    out = report([results / "predict"], tmp_path / "r.html", display_px=120)
    page = parse(out)
    cards = [h for h in page.h4 if h.startswith("#")]
    ranked = sorted(SCORES, key=lambda n: -SCORES[n])
    assert [c.split()[1] for c in cards] == ranked
    assert {"predictions", "predictions-1"} <= page.ids
    assert "evaluation" not in page.ids
    assert "30" in page.cells and "12" in page.cells  # the two regions of "b", in px


def test_top_regions_finds_two_blobs() -> None:
    regions = top_regions(two_blobs(), 0.5)
    assert [r.area_px for r in regions] == [30, 12]
    assert [r.bbox for r in regions] == [(3, 2, 9, 7), (30, 20, 33, 24)]
    assert regions[0].mean_score == pytest.approx(0.9)
    assert regions[1].area_fraction == pytest.approx(12 / 1200)
    assert top_regions(two_blobs(), 0.95) == []


def test_random_weights_are_flagged_and_attacks_shown(results: Path, tmp_path: Path) -> None:
    meta = json.loads((results / "train" / "best" / "model.json").read_text())
    write_json(results / "train" / "best" / "model.json", {**meta, "weights_tag": "random"})
    write_json(results / "attack" / "attack.json", {
        "method": "msa", "k": 1.0, "size": 64, "n_attacked": 3, "mean_psnr_db": 35.0,
        "fingerprint": {"before": {"energy": 0.3}, "after": {"energy": 0.2},
                        "energy_change": -0.1}})
    kinds = [f.kind for f in find_results([results])]
    assert kinds.index("attacks") < kinds.index("evaluation") < kinds.index("training")
    out = report([results], tmp_path / "r.html")
    page = parse(out)
    assert {"training", "attacks"} <= page.ids
    text = out.read_text()
    assert "RANDOM" in text and 'class="banner"' in text


def test_report_without_results_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FakesegError, match="no fakeseg results"):
        report([tmp_path / "empty"], tmp_path / "r.html")


# --------------------------------------------------------------------------- safe to share


SCRIPT = "<script>alert('x')</script>"


def test_numbers_are_validated() -> None:
    assert num(0.12345).text == "0.123" and num(3).text == "3" and num(None).text == "–"
    for bad in ("0.5", SCRIPT, True, [1], {"a": 1}, float("nan"), float("inf")):
        assert num(bad).invalid and num(bad).value is None
        assert "script" not in num(bad).text


def test_script_in_result_files_is_escaped(results: Path, tmp_path: Path) -> None:
    pr = results / "predict"
    rows = [json.loads(line) for line in (pr / "results.jsonl").read_text().splitlines()]
    rows[0].update(name=SCRIPT, topk_mean=SCRIPT, score=SCRIPT, overlay=SCRIPT)
    rows[1].update(threshold=SCRIPT, max=[SCRIPT])
    lines = [json.dumps(r) for r in rows] + [json.dumps(SCRIPT), "not json " + SCRIPT]
    write_text(pr / "results.jsonl", "\n".join(lines) + "\n")
    write_json(pr / "predict.json", {"threshold": SCRIPT, "score_meaning": SCRIPT,
                                     "model": {"weights_tag": SCRIPT}, "versions": {"x": SCRIPT},
                                     "skipped": [{"input": SCRIPT, "reason": SCRIPT}]})
    metrics = json.loads((results / "eval" / "metrics.json").read_text())
    metrics["title"] = SCRIPT
    metrics["results"][EVAL_SECTION][0].update(name=SCRIPT, threshold=SCRIPT)
    metrics["results"][SCRIPT] = [metric_row(SCRIPT, 0.5, 0.1, 0.5)]
    write_json(results / "eval" / "metrics.json", metrics)
    write_json(results / "featdiff" / "featdiff.json", {
        "summary": [{"backbone": SCRIPT, "layer": SCRIPT, "ssim_mean": SCRIPT}],
        "backbones": {SCRIPT: {"status": "skipped", "reason": SCRIPT}},
        "skipped_pairs": [{"stem": SCRIPT, "reason": SCRIPT}], "config": {"x": SCRIPT}})
    out = report([results], tmp_path / "r.html")
    html = out.read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # shown as text
    assert 'class="invalid"' in html  # a string where a number belongs
    page = parse(out)
    ranked = [h for h in page.h4 if h.startswith("#")]
    assert ranked[-1].split()[1] == SCRIPT  # an invalid score ranks last, the others still show
    assert len(ranked) == 3


def _secret(path: Path) -> Path:
    Image.new("RGB", SECRET_SIZE, (250, 0, 250)).save(path)
    return path


def test_files_outside_the_result_folder_are_never_embedded(results: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    secret = _secret(tmp_path / "private.png")
    pr = results / "predict"
    (pr / "link.png").symlink_to(secret)
    rows = [json.loads(line) for line in (pr / "results.jsonl").read_text().splitlines()]
    rows[0]["overlay"] = str(secret)  # absolute path elsewhere
    rows[1]["overlay"] = "../../private.png"  # relative, escaping the folder
    rows[2]["overlay"] = "link.png"  # a symlink inside that points out
    for row in rows:
        row["heat_npy"] = str(secret.with_suffix(".npy"))
    np.save(secret.with_suffix(".npy"), two_blobs())
    write_text(pr / "results.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    (results / "eval" / "failures_composites_with_shortcut_controls.png").unlink()
    (results / "eval" / "failures_composites_with_shortcut_controls.png").symlink_to(secret)
    out = report([pr, results / "eval"], tmp_path / "out" / "r.html")
    html = out.read_text()
    assert SECRET_SIZE not in embedded_sizes(html)
    assert "private" not in html and "link.png" not in html
    assert html.count("outside the result folder") >= 4
    for _, attribute, value in parse(out).links:
        if attribute == "href" and not value.startswith("#"):
            assert (out.parent / unquote(value)).resolve().is_relative_to(results.resolve())
    err = capsys.readouterr().err
    assert "outside" in err and "not embedded" in err


def test_relative_paths_of_new_predict_output(tmp_path: Path) -> None:
    """predict's new results.jsonl: every path relative to --out; the input image lies outside
    (``../images/x.png``) and is never embedded; the overlay inside is."""
    _secret(tmp_path / "images.png")
    (tmp_path / "images").mkdir()
    _secret(tmp_path / "images" / "x.png")
    pr = tmp_path / "pred"
    write_image(pr / "maps" / "x_overlay.png", picture())
    write_npy(pr / "maps" / "x_heat.npy", two_blobs())
    write_text(pr / "results.jsonl", json.dumps({
        "image": "../images/x.png", "name": "x", "score": 0.25, "max": 0.9, "topk_mean": 0.8,
        "threshold": 0.5, "heat_npy": "maps/x_heat.npy", "overlay": "maps/x_overlay.png",
        "mask": "maps/x_mask.png"}) + "\n")
    out = report([pr], tmp_path / "r.html", display_px=120)
    sizes = embedded_sizes(out.read_text())
    assert SECRET_SIZE not in sizes
    assert (120, 90) in sizes  # the overlay, enlarged to the card width, with its boxes
    assert "30" in parse(out).cells  # regions from the relative heat map


def test_a_map_written_only_as_16_bit_png_and_a_jpeg_overlay_are_read(tmp_path: Path) -> None:
    """predict --outputs heat_png,overlay: no .npy; the regions come from the 16-bit PNG."""
    pr = tmp_path / "pred"
    write_image(pr / "x_overlay.jpg", picture())
    write_image(pr / "x_heat.png", (two_blobs() * 65535 + 0.5).astype(np.uint16))
    write_text(pr / "results.jsonl", json.dumps({
        "image": "x.png", "name": "x", "score": 0.25, "max": 0.9, "topk_mean": 0.8,
        "threshold": 0.5, "heat_png": "x_heat.png", "overlay": "x_overlay.jpg"}) + "\n")
    out = report([pr], tmp_path / "r.html", display_px=120)
    assert "30" in parse(out).cells and "12" in parse(out).cells  # both regions, in px


def test_result_files_linked_from_outside_are_not_read(results: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("backbone: TOP-SECRET-TOKEN\n")
    config = results / "train" / "config.yaml"
    config.unlink()
    config.symlink_to(secret)
    out = report([results / "train"], tmp_path / "r.html")
    html = out.read_text()
    assert "TOP-SECRET-TOKEN" not in html
    assert "outside the result folder" in html


def test_predicts_annotated_overlay_is_shown_as_drawn(tmp_path: Path) -> None:
    """predict's overlays carry their own boxes and colour bar: the report adds neither."""
    from fakeseg.viz import annotated_overlay

    pr = tmp_path / "pred"
    heat = two_blobs()
    drawn = annotated_overlay(picture(), heat, 0.5)
    write_image(pr / "x_overlay.png", drawn)
    write_npy(pr / "x_heat.npy", heat)
    write_text(pr / "results.jsonl", json.dumps({
        "image": "x.png", "name": "x", "score": 0.035, "max": 0.9, "topk_mean": 0.8,
        "threshold": 0.5, "heat_npy": "x_heat.npy", "overlay": "x_overlay.png"}) + "\n")
    out = report([pr], tmp_path / "r.html", display_px=64)
    html = out.read_text()
    assert 'class="cbar"' not in html
    assert (drawn.shape[1], drawn.shape[0]) in embedded_sizes(html)
    assert "30" in parse(out).cells  # the regions table still comes from the heat map


def make_composition_results(root: Path) -> Path:
    """What ``experiment composition --defingerprint msa`` and ``fid --out`` write, through
    their own writers; one classifier run inside the experiment folder."""
    from fakeseg.features.frechet import FrechetResult
    from fakeseg.workflows.composition import (
        AttackSummary,
        CompositionResult,
        CompositionRow,
        CompositionSettings,
        MeanStd,
        save_composition,
    )

    out = root / "composition"
    rows = [CompositionRow(comp, attack, "128×128", dict(zip(("AUTH", "VOID"), comp.split("/"),
                                                             strict=True)),
                           {"AUTH": 4, "VOID": 4}, {"AUTH": MeanStd(0.9, 0.01),
                                                    "VOID": MeanStd(0.8, 0.02)},
                           MeanStd(balanced, 0.0123), MeanStd(0.95, None))
            for comp, attack, balanced in (("real/real", None, 0.9132),
                                           ("synthetic/real", None, 0.5611),
                                           ("synthetic/real", "msa", 0.6234))]
    attacks = [AttackSummary("msa", "AUTH", 64, 4, 4, 4, 38.26, 0.31, 0.12, 0.05, "x")]
    result = CompositionResult(("AUTH", "VOID"), {"AUTH": 2, "VOID": 2},
                               CompositionSettings("tiny_cnn", "random", 1, 4, 1e-4, "128×128",
                                                   "crop", [], [0, 1, 2], 0.3, 0, ["msa"]),
                               rows, attacks,
                               out / "results.json", out / "results.md")
    write_json(out / "test_split.json", {"test": {}})
    save_composition(result, {"a_real": str(root / "a_real")})
    make_classifier_results(out / "real_real" / "seed0")
    fid = FrechetResult(value=12.3456, feature_space="mobilenet_v2 pooled, 1280-d", n_a=40,
                        n_b=40, dims=1280, name="FD[mobilenet_v2]", a="real/", b="fake/")
    write_json(root / "fid" / "real_vs_fake.json", fid.to_json())
    return root


def test_composition_and_fid_results_appear(tmp_path: Path) -> None:
    root = make_composition_results(tmp_path / "runs")
    found = {(f.kind, f.folder.name) for f in find_results([root])}
    assert ("composition", "composition") in found and ("fid", "fid") in found
    assert not any(kind == "classifier" for kind, _ in found)  # summarised by the table
    out = report([root], tmp_path / "r.html")
    page = parse(out)
    assert {"composition", "fid"} <= page.ids
    cells = {c.strip() for c in page.cells}
    assert {"0.91\u00a0±\u00a00.01", "0.56\u00a0±\u00a00.01", "0.62\u00a0±\u00a00.01", "MSA",
            "38.3", "12.35"} <= cells
    text = " ".join(page.glance)
    assert "synthetic/real after MSA 0.62\u00a0±\u00a00.01" in text
    assert "real images of class AUTH (composition experiment)" in text
    assert "FD[mobilenet_v2] = 12.35" in text
