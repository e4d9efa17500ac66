"""report: one self-contained HTML file from fake result folders (tiny files, no model)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from fakeseg.errors import FakesegError
from fakeseg.io import write_image, write_json, write_npy, write_text
from fakeseg.reporting import find_results, report, top_regions
from fakeseg.reporting.templates import markdown_to_html

VERSIONS = {"fakeseg": "0.1.0", "torch": "2.x"}
SCORES = {"a": 0.2, "b": 0.9, "c": 0.5}


class Page(HTMLParser):
    """Collects ids, every src/href, and the text of <h4> headings."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.h4: list[str] = []
        self._in_h4 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") and value is not None:
                self.links.append((tag, name, value))
        if tag == "h4":
            self._in_h4 = True
            self.h4.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h4":
            self._in_h4 = False

    def handle_data(self, data: str) -> None:
        if self._in_h4:
            self.h4[-1] += data


def two_blobs() -> np.ndarray:
    heat = np.full((30, 40), 0.1, np.float32)
    heat[2:7, 3:9] = 0.9  # 5×6 = 30 px
    heat[20:24, 30:33] = 0.8  # 4×3 = 12 px
    return heat


def make_results(root: Path) -> Path:
    picture = np.linspace(0, 1, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3)
    # evaluation
    ev = root / "eval"
    rows = [{"name": "model", "threshold": 0.4, "overall": {"dice": 0.61, "iou": 0.44,
             "dice_macro": 0.5, "iou_macro": 0.4, "pixel_auc": 0.8}, "per_class": {},
             "per_kind": {}, "image_level": {}, "fp_real": 0.1, "oracle_f1_per_image": 0.7,
             "seconds": 1.0},
            {"name": "all synthetic", "threshold": 0.5, "overall": {"dice": 0.5, "iou": 0.33,
             "dice_macro": 0.5, "iou_macro": 0.3, "pixel_auc": 0.5}, "per_class": {},
             "per_kind": {}, "image_level": {}, "fp_real": 1.0, "oracle_f1_per_image": 0.5,
             "seconds": 0.0}]
    write_json(ev / "metrics.json", {"title": "eval of tiny", "mode": "paired",
                                     "versions": VERSIONS, "results": {"controlled": rows}})
    write_text(ev / "metrics.md", "# eval of tiny\n\n## controlled\n\n| method | thr | Dice avg |\n"
                                  "|---|---|---|\n| model | 0.40 | 0.610 |\n"
                                  "| all synthetic | 0.50 | 0.500 |\n\nDice: micro.\n")
    write_image(ev / "curves_controlled.png", picture)
    write_image(ev / "dice_hist_controlled.png", picture)
    # predictions: three images, the "b" heat map holds two known blobs
    pr = root / "predict"
    lines = []
    for name, score in SCORES.items():
        heat = two_blobs() if name == "b" else np.full((30, 40), 0.1, np.float32)
        lines.append(json.dumps({
            "image": str(root / f"{name}.png"), "name": name, "score": score, "max": 0.9,
            "topk_mean": 0.8, "threshold": 0.5,
            "heat_png": str(write_image(pr / f"{name}_heat.png", heat)),
            "heat_npy": str(write_npy(pr / f"{name}_heat.npy", heat)),
            "overlay": str(write_image(pr / f"{name}_overlay.png", picture))}))
    write_text(pr / "results.jsonl", "\n".join(lines) + "\n")
    write_json(pr / "predict.json", {"threshold": 0.5, "model": {"weights_tag": "imagenet:x"},
                                     "versions": VERSIONS})
    # fingerprint
    fp = root / "fp"
    write_json(fp / "fingerprint.json", {"transform": "fft", "size": 64, "n_real": 3,
                                         "n_synthetic": 3, "energy": 0.3, "energy_null": 0.1,
                                         "band_energy": {"low": 0.2}, "peaks": []})
    write_image(fp / "fingerprint.png", picture)
    write_text(fp / "peaks.csv", "rank,fy,fx,z,significant\n1,0.25,0.0,7.5,1\n")
    # featdiff
    fd = root / "featdiff"
    write_json(fd / "featdiff.json", {"config": {"backbones": ["m"]}, "versions": VERSIONS,
                                      "weights_tags": {"m": "imagenet:x"},
                                      "summary": [{"backbone": "m", "layer": "l1",
                                                   "ssim_mean": 0.7}], "pairs": [{}]})
    write_text(fd / "featdiff.md", "# Feature discrepancy\n\n| backbone | layer | MSE | SSIM |\n"
                                   "|---|---|---|---|\n| m | l1 | 0.1 ± 0.01 | 0.7 |\n")
    write_image(fd / "grid_p0.png", picture)
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "runs")


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_report_is_self_contained_and_has_only_the_given_sections(results: Path,
                                                                   tmp_path: Path) -> None:
    out = report([results], tmp_path / "out" / "report.html", display_px=120)
    page = parse(out)
    for kind in ("evaluation", "predictions", "fingerprints", "featdiff"):
        assert kind in page.ids
    for kind in ("training", "attacks"):
        assert kind not in page.ids
    assert page.links
    for tag, attribute, value in page.links:
        assert not value.lower().startswith(("http:", "https:", "//")), value
        if tag == "img":
            assert value.startswith("data:image/"), value
        elif attribute == "href" and not value.startswith("#"):
            assert not value.startswith("/"), value  # relative to the report
            assert (out.parent / unquote(value)).resolve().is_file(), value
    text = out.read_text()
    assert "<table>" in text and "all synthetic" in text  # metrics.md became an HTML table


def test_predictions_are_ranked_by_score_with_regions(results: Path, tmp_path: Path) -> None:
    out = report([results / "predict"], tmp_path / "r.html", display_px=120)
    page = parse(out)
    cards = [h for h in page.h4 if h.startswith("#")]
    ranked = sorted(SCORES, key=lambda n: -SCORES[n])
    assert [c.split()[1] for c in cards] == ranked
    assert {"predictions", "predictions-1"} <= page.ids
    assert "evaluation" not in page.ids


def test_top_regions_finds_two_blobs() -> None:
    regions = top_regions(two_blobs(), 0.5)
    assert [r.area_px for r in regions] == [30, 12]
    assert [r.bbox for r in regions] == [(3, 2, 9, 7), (30, 20, 33, 24)]
    assert regions[0].mean_score == pytest.approx(0.9)
    assert regions[1].area_fraction == pytest.approx(12 / 1200)
    assert top_regions(two_blobs(), 0.95) == []


def test_random_weights_are_flagged_and_attacks_shown(results: Path, tmp_path: Path) -> None:
    run = results / "train"
    write_text(run / "config.yaml", "backbone: ssdlite_mobilenet_v2\nsteps: 2\n")
    write_json(run / "history.json", [{"epoch": 1, "step": 1, "loss_bce": 0.7,
                                       "val_f1_best": 0.4}, {"epoch": 2, "step": 2,
                                                             "loss_bce": 0.6, "val_f1_best": 0.5}])
    write_json(run / "best" / "model.json", {"config": {"backbone": "ssdlite_mobilenet_v2"},
                                             "versions": VERSIONS, "weights_tag": "random",
                                             "threshold": 0.5, "step": 2,
                                             "val": {"f1_best": 0.5}})
    write_json(results / "attack" / "attack.json", {
        "method": "msa", "k": 1.0, "size": 64, "n_attacked": 3, "mean_psnr_db": 35.0,
        "fingerprint": {"before": {"energy": 0.3}, "after": {"energy": 0.2},
                        "energy_change": -0.1}})
    assert [f.kind for f in find_results([results])][-2:] == ["evaluation", "training"]
    out = report([results], tmp_path / "r.html")
    page = parse(out)
    assert {"training", "attacks"} <= page.ids
    text = out.read_text()
    assert "RANDOM" in text and 'class="banner"' in text


def test_markdown_pipe_table() -> None:
    html = markdown_to_html("# t\n\n| a | b |\n|---|:-:|\n| x | 1.5 |\n| **y** | 2 |\n\nnote")
    assert "<h3>" not in html and html.count("<tr>") == 3
    assert "<strong>y</strong>" in html and '<td class=num>1.5</td>' in html
    assert '<p class="note">note</p>' in html


def test_report_without_results_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FakesegError, match="no fakeseg results"):
        report([tmp_path / "empty"], tmp_path / "r.html")
