"""The report in a real headless browser (Debian's chromium): nothing overflows at 1400 or 390 px,
gallery labels stay readable, and "full size" shows the image at its own resolution.

The report is loaded as the ``srcdoc`` of an iframe exactly ``width`` px wide (a headless
window cannot be narrower than 500 px; an iframe can, and it is a real viewport for media
queries). A script in the outer page measures the report after every image has loaded and
writes the numbers into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fakeseg.io import write_image, write_npy
from fakeseg.reporting import report
from tests.test_report import EVAL_SECTION, make_results, two_blobs

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium): the layout "
                            "check needs a real browser")

PROBE = """<!DOCTYPE html><html><head><style>body{margin:0}iframe{border:0;display:block}</style>
</head><body><iframe id="r" width="%d" height="900" srcdoc="%s"></iframe>
<script>
const frame = document.getElementById("r");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument, win = frame.contentWindow;
  const result = {scrollWidth: doc.documentElement.scrollWidth, innerWidth: win.innerWidth};
  const gallery = doc.querySelector("[id^=failures] figure");
  const img = gallery.querySelector("img");
  result.gallery = {shown: img.clientWidth, natural: img.naturalWidth,
                    room: gallery.parentElement.clientWidth};
  result.overflowing = [...doc.querySelectorAll("main > *, section > *, section > div > *")]
    .filter(e => e.getBoundingClientRect().right > win.innerWidth + 0.5)
    .map(e => e.tagName + "." + e.className).slice(0, 10);
  win.location.hash = gallery.id;  // the "full size" link
  setTimeout(() => {
    result.full = {position: win.getComputedStyle(gallery).position, shown: img.clientWidth,
                   natural: img.naturalWidth, scrollWidth: doc.documentElement.scrollWidth};
    const out = document.createElement("pre");
    out.id = "measure";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }, 200);
});
</script></body></html>"""


def measure(page: Path, width: int, tmp: Path) -> dict[str, Any]:
    probe = tmp / f"probe_{width}.html"
    probe.write_text(PROBE % (width, html.escape(page.read_text(encoding="utf-8"), quote=True)),
                     encoding="utf-8")
    assert BROWSER is not None
    run = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         f"--user-data-dir={tmp / 'profile'}", f"--window-size={max(width, 800)},900",
         "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="measure">(.*?)</pre>', run.stdout, re.S)
    assert found, f"chromium printed no measurement: {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def realistic_evaluation(folder: Path) -> None:
    """evaluate's own figure writers on tiny composites: real curves and failure gallery."""
    from fakeseg.data.composites import CompositeItem
    from fakeseg.evaluation.evaluate import (
        Evaluation,
        save_evaluation,
        section_slug,
        trivial_rows,
    )
    from fakeseg.evaluation.failures import failure_cases
    from fakeseg.evaluation.protocol import score_items

    rng = np.random.default_rng(0)
    items = []
    for i in range(5):
        image = rng.random((48, 64, 3)).astype(np.float32)
        mask = np.zeros((48, 64), bool)
        if i < 4:
            mask[8 + i:30 + i, 10:40] = True
        items.append(CompositeItem(f"img{i}", f"img{i}", "rectangles" if i < 4 else "pure_real",
                                   image, mask, image, None))

    def scorer(item: Any) -> np.ndarray:
        noise = np.random.default_rng(int(item.name[-1])).random(item.mask.shape)
        return np.clip(0.6 * item.mask + 0.5 * noise, 0, 1).astype(np.float32)

    row = score_items("model", scorer, [], items, threshold=0.5)
    save_evaluation(Evaluation(
        {EVAL_SECTION: [row, *trivial_rows(items)]},
        {"title": "tiny", "mode": "paired", "test_pairs": ["img0"]},
        galleries={section_slug(EVAL_SECTION): failure_cases([(row, scorer)], items)}), folder)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_results(tmp_path_factory.mktemp("browser") / "results")
    realistic_evaluation(root / "eval")
    pr = root / "predict"  # a long unbreakable name and a big picture: the usual overflows
    name = "a_very_long_file_name_without_any_spaces_" * 3
    write_image(pr / "wide_overlay.png", np.random.default_rng(1).random((300, 1600, 3)))
    write_npy(pr / "wide_heat.npy", np.kron(two_blobs(), np.ones((10, 40), np.float32)))
    with open(pr / "results.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"image": "../x.png", "name": name, "score": 0.7, "max": 0.9,
                                 "topk_mean": 0.8, "threshold": 0.5,
                                 "heat_npy": "wide_heat.npy", "overlay": "wide_overlay.png"})
                     + "\n")
    return report([root], root.parent / "report.html")


@pytest.fixture(scope="module")
def measured(page: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """One browser run per width, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("chromium")
    return {width: measure(page, width, tmp) for width in (1400, 390)}


@pytest.mark.parametrize("width", [1400, 390])
def test_nothing_overflows_the_viewport(measured: dict[int, dict[str, Any]], width: int) -> None:
    result = measured[width]
    assert result["innerWidth"] == width
    assert result["scrollWidth"] <= width, result["overflowing"]
    full = result["full"]  # "full size": the embedded image at its own resolution, on top
    assert full["position"] == "fixed"
    assert full["shown"] == full["natural"]
    assert full["scrollWidth"] <= width  # the full-size view scrolls inside itself


def test_gallery_labels_are_readable_at_1400(page: Path,
                                             measured: dict[int, dict[str, Any]]) -> None:
    from fakeseg.evaluation.failures import LABEL_PT

    gallery = measured[1400]["gallery"]
    dpi = next(iter(Image.open(next((page.parent / "results" / "eval").glob(
        "failures_*.png"))).info.get("dpi", (110, 110))))
    label_px = LABEL_PT * dpi / 72 * gallery["shown"] / gallery["natural"]
    assert label_px >= 11, gallery
    # a gallery with the pair-oracle column (5 × 2.4 in) would still keep 11 px labels
    assert LABEL_PT * dpi / 72 * min(1.0, gallery["room"] / (5 * 2.4 * dpi)) >= 11, gallery
