"""``fakeseg report``: one self-contained HTML file that shows a whole audit.

It walks the given folders, recognises fakeseg outputs by their files (``results.jsonl``,
``featdiff.json``, ``fingerprint.json``, ``attack.json``, ``metrics.json``, a run's
``config.yaml`` + ``history.json``) and renders one section per kind found. Images are
downscaled with Pillow and embedded as data URIs; each links to its full-size file by a path
relative to the report. The page needs no network: no external URL, font or script.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import io as _io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fakeseg.errors import FakesegError
from fakeseg.reporting import templates as T
from fakeseg.viz import REGION_COLORS, Region, top_regions

log = logging.getLogger(__name__)

#: section order on the page: where it is unreal, why, then how far to trust the model
KINDS: tuple[str, ...] = ("predictions", "featdiff", "fingerprints", "attacks", "evaluation",
                          "training")
TITLES = {
    "predictions": "Where images look unreal (predictions)",
    "featdiff": "Feature discrepancy per layer (featdiff)",
    "fingerprints": "Generator fingerprints (spectra)",
    "attacks": "Fingerprint removal (attacks)",
    "evaluation": "How good is the detector (evaluation)",
    "training": "Training runs",
}
HOW = {
    "predictions": "Images are ranked by their unrealism score (share of pixels the model "
                   "flags at its threshold). Bright overlay = likely unreal; boxes mark the "
                   "largest, most confident flagged regions. Click an image for full size.",
    "featdiff": "Each cell shows where one backbone layer sees the real and the synthetic "
                "image differently (bright = different). Lower MSE / higher SSIM = more alike; "
                "compare MSE within a layer, not across layers.",
    "fingerprints": "FP = mean log-spectrum of synthetic minus real images. Red = the "
                    "generator adds energy at that frequency. Energy well above its chance "
                    "level, and peaks above the z threshold, indicate a real fingerprint.",
    "attacks": "How much an attack reduced the fingerprint energy (after → closer to the "
               "chance level is better for the attacker) and what it cost in image quality "
               "(PSNR, higher = less visible).",
    "evaluation": "Dice / IoU: overlap of flagged and truly synthetic pixels on composites "
                  "(1 = perfect). Compare the model with the trivial 'all synthetic' / 'all "
                  "real' rows: a useful model beats both.",
    "training": "Loss should fall and validation F1 / Dice rise; the best checkpoint is the "
                "one with the highest validation F1.",
}
FIGURE_SCALE = 2  # figures (plots with text) are shown up to 2 × display_px wide


# --------------------------------------------------------------------------- finding results


@dataclass(frozen=True)
class Found:
    """One fakeseg output folder and what kind of result it holds."""

    kind: str
    folder: Path


def _kinds_in(folder: Path, names: set[str]) -> list[str]:
    kinds = []
    if "results.jsonl" in names:
        kinds.append("predictions")
    if "featdiff.json" in names:
        kinds.append("featdiff")
    if "fingerprint.json" in names:
        kinds.append("fingerprints")
    if "attack.json" in names:
        kinds.append("attacks")
    if "metrics.json" in names:
        kinds.append("evaluation")
    if "config.yaml" in names and ("history.json" in names
                                   or (folder / "best" / "model.json").is_file()):
        kinds.append("training")
    return kinds


def find_results(inputs: Sequence[str | Path]) -> list[Found]:
    """Every recognised output folder under ``inputs`` (recursive), in page order."""
    found: dict[tuple[str, Path], Found] = {}
    for item in inputs:
        root = Path(item)
        if not root.exists():
            raise FakesegError(f"{root}: no such folder; pass result folders to report on")
        if root.is_file():
            root = root.parent
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            folder = Path(dirpath)
            for kind in _kinds_in(folder, set(filenames)):
                found.setdefault((kind, folder.resolve()), Found(kind, folder))
    return sorted(found.values(), key=lambda f: (KINDS.index(f.kind), str(f.folder)))


# --------------------------------------------------------------------------- images


class Embedder:
    """Turns files into downscaled data URIs and relative links for one report location."""

    def __init__(self, report_path: Path, display_px: int) -> None:
        self.base = report_path.resolve().parent
        self.display_px = display_px

    def href(self, path: Path) -> str:
        """A relative, URL-quoted link from the report to ``path``."""
        try:
            rel = os.path.relpath(path.resolve(), self.base)
        except ValueError:  # another drive on Windows: no relative path exists
            rel = path.name
        return quote(Path(rel).as_posix())

    @staticmethod
    def uri(image: Image.Image, fmt: str = "png") -> str:
        buffer = _io.BytesIO()
        if fmt == "jpeg":
            image.convert("RGB").save(buffer, format="JPEG", quality=85, optimize=True)
        else:
            image.save(buffer, format="PNG", optimize=True)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f"data:image/{fmt};base64,{data}"

    def load(self, path: Path, width: int, *, upscale: bool = False) -> Image.Image:
        """The image scaled to ``width`` (only down, unless ``upscale``)."""
        with Image.open(path) as opened:
            image = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
        if image.width == width or (image.width < width and not upscale):
            return image
        height = max(1, round(image.height * width / image.width))
        return image.resize((width, height), Image.Resampling.LANCZOS if image.width > width
                            else Image.Resampling.BICUBIC)

    def figure(self, path: Path, caption: str = "", *, photo: bool = False,
               width: int | None = None) -> str:
        """A linked, embedded figure (plots up to 2 × display_px wide, photos display_px)."""
        width = width or (self.display_px if photo else self.display_px * FIGURE_SCALE)
        image = self.load(path, width)
        return T.figure(self.uri(image, "jpeg" if photo else "png"), caption,
                        href=self.href(path), alt=path.name)


def _locate(value: str | None, folder: Path) -> Path | None:
    """A path recorded in a result file, or the same name next to it if the folder moved."""
    if not value:
        return None
    path = Path(value)
    for candidate in (path if path.is_absolute() else folder / path, folder / path.name):
        if candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _plot_uri(draw: Callable[[Any], None], size: tuple[float, float]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- sections


@dataclass
class Part:
    """What one result folder contributes: HTML, one-line highlights, random-weight flags."""

    html: str
    glance: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)


def _predictions(folder: Path, emb: Embedder, max_images: int) -> Part:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()
            if line.strip()]
    meta = _read_json(folder / "predict.json") if (folder / "predict.json").is_file() else {}
    rows.sort(key=lambda r: -float(r.get("score", 0.0)))
    model = meta.get("model", {})
    tag = model.get("weights_tag")
    parts = [f"<p>{len(rows)} images; model backbone weights: {T.weights_tag(tag)}. "
             f"{T.esc(meta.get('score_meaning', ''))}</p>"]
    ranking = []
    for rank, row in enumerate(rows, 1):
        overlay = _locate(row.get("overlay"), folder)
        name = T.esc(row.get("name", "?"))
        cell = f'<a href="{emb.href(overlay)}">{name}</a>' if overlay else name
        ranking.append([rank, cell, row.get("score"), row.get("max"), row.get("topk_mean"),
                        row.get("threshold")])
    parts.append(T.details(f"ranking of all {len(rows)} images",
                           T.table(("rank", "image", "score", "max", "top-1% mean",
                                    "threshold"), ranking, raw=True), open_=len(rows) <= 12))
    cards = [_prediction_card(rank, row, folder, emb)
             for rank, row in enumerate(rows[:max_images], 1)]
    if len(rows) > max_images:
        cards.append(f'<p class="note">… {len(rows) - max_images} more in the ranking above '
                     "(raise --max-images to show them)</p>")
    parts.append(f'<div class="cards" style="grid-template-columns: repeat(auto-fill, '
                 f'minmax({emb.display_px}px, 1fr))">' + "".join(cards) + "</div>")
    parts.append(T.provenance({"model": model, "model_config": meta.get("model_config"),
                               "threshold": meta.get("threshold")}, meta.get("versions")))
    glance = []
    if rows:
        top = rows[0]
        glance.append(f"Most unreal of {len(rows)} predicted images: <b>{T.esc(top['name'])}"
                      f"</b> (score {T.fmt(top.get('score'))}: that share of its pixels is "
                      f"flagged at threshold {T.fmt(top.get('threshold'), 2)}).")
    return Part("".join(parts), glance, [f"predictions in {folder}"] if tag == "random" else [])


def _prediction_card(rank: int, row: dict[str, Any], folder: Path, emb: Embedder) -> str:
    title = (f"<h4>#{rank} {T.esc(row.get('name'))} · score {T.fmt(row.get('score'))}</h4>")
    overlay_path = _locate(row.get("overlay"), folder)
    heat_path = _locate(row.get("heat_npy"), folder)
    if overlay_path is None:
        return f'<div class="card">{title}<p class="warn">overlay file not found</p></div>'
    image = emb.load(overlay_path, emb.display_px, upscale=True).convert("RGB")
    regions: list[Region] = []
    threshold = float(row.get("threshold", 0.5))
    if heat_path is not None:
        heat = np.load(heat_path)
        regions = top_regions(heat, threshold)
        sy, sx = image.height / heat.shape[0], image.width / heat.shape[1]
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=14)
        for i, region in enumerate(regions):
            x0, y0, x1, y1 = region.bbox
            box = (x0 * sx, y0 * sy, max(x1 * sx - 1, x0 * sx), max(y1 * sy - 1, y0 * sy))
            color = REGION_COLORS[i % len(REGION_COLORS)]
            draw.rectangle(box, outline=color, width=3)
            draw.rectangle((box[0], box[1], box[0] + 18, box[1] + 18), fill=color)
            draw.text((box[0] + 9, box[1] + 9), str(i + 1), fill=(0, 0, 0), font=font,
                      anchor="mm")
    img = T.figure(emb.uri(image, "jpeg"), href=emb.href(overlay_path),
                   alt=f"overlay of {row.get('name')}")
    if heat_path is None:
        table = '<p class="warn">heat map (.npy) not found: no regions</p>'
    elif not regions:
        table = f'<p class="note">no pixel reaches the threshold {T.fmt(threshold, 2)}</p>'
    else:
        swatch = '<span style="display:inline-block;width:10px;height:10px;background:rgb{}">' \
                 "</span> {}"
        table = T.table(
            ("region", "area px", "area %", "mean score", "box x, y, w×h"),
            [[swatch.format(REGION_COLORS[i % 3], i + 1), r.area_px, 100 * r.area_fraction,
              r.mean_score, f"{r.bbox[0]}, {r.bbox[1]}, {r.bbox[2] - r.bbox[0]}×"
              f"{r.bbox[3] - r.bbox[1]}"] for i, r in enumerate(regions)], raw=True, digits=2)
    stats = (f'<p class="note">max {T.fmt(row.get("max"))} · top-1% mean '
             f'{T.fmt(row.get("topk_mean"))} · threshold {T.fmt(threshold, 2)}</p>')
    return f'<div class="card">{title}{img}{stats}{table}</div>'


def _featdiff(folder: Path, emb: Embedder) -> Part:
    payload = _read_json(folder / "featdiff.json")
    tags = payload.get("weights_tags", {})
    random = [b for b, t in tags.items() if t == "random"]
    parts = []
    if random:
        parts.append(f'<p class="banner">RANDOM weights for {T.esc(", ".join(random))}: these '
                     "maps and numbers say nothing about realism.</p>")
    md = folder / "featdiff.md"
    if md.is_file():
        parts.append(T.markdown_to_html(md.read_text(encoding="utf-8")))
    for name, record in payload.get("backbones", {}).items():
        if record.get("status") == "skipped" and not md.is_file():
            parts.append(f'<p class="warn">{T.esc(name)} skipped: {T.esc(record["reason"])}</p>')
    for item in payload.get("skipped_pairs", []):
        parts.append(f'<p class="warn">pair {T.esc(item["stem"])} skipped: '
                     f'{T.esc(item["reason"])}</p>')
    grids = sorted(folder.glob("grid_*.png"))
    if grids:
        parts.append('<div class="figs">' + "".join(
            emb.figure(g, f"{T.esc(g.stem[5:])}: rows = layers, columns = backbones")
            for g in grids) + "</div>")
    parts.append(T.provenance(payload.get("config"), payload.get("versions")))
    glance = []
    scored = [r for r in payload.get("summary", []) if r.get("ssim_mean") is not None]
    if scored:
        worst = min(scored, key=lambda r: r["ssim_mean"])
        glance.append(f"Feature discrepancy over {len(payload.get('pairs', []))} pair(s): "
                      f"lowest SSIM at <b>{T.esc(worst['backbone'])} · "
                      f"{T.esc(worst['layer'])}</b> ({T.fmt(worst['ssim_mean'])}).")
    return Part("".join(parts), glance, [f"featdiff {b}" for b in random])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _num(text: str | None) -> float | int | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text else value


def _cell(column: str, text: str) -> Any:
    if column == "significant":
        return "yes" if text.strip() in ("1", "True", "true") else "no"
    value = _num(text)
    return text if value is None else value


def _fingerprints(folder: Path, emb: Embedder) -> Part:
    fp = _read_json(folder / "fingerprint.json")
    peaks = fp.get("peaks", [])
    significant = sum(bool(p.get("significant")) for p in peaks)
    numbers = {
        "transform": fp.get("transform_label", fp.get("transform")),
        "crop size": fp.get("size"), "crop": fp.get("crop"),
        "real / synthetic images": f"{fp.get('n_real')} / {fp.get('n_synthetic')}",
        "energy (mean |FP|, no DC)": fp.get("energy"),
        "energy from chance alone": fp.get("energy_null"),
        **{f"energy, {band} band": v for band, v in fp.get("band_energy", {}).items()},
        "peak z threshold (5 % family-wise)": fp.get("z_threshold"),
        "significant peaks (of listed)": f"{significant} of {len(peaks)}",
    }
    parts = [T.key_values(numbers)]
    first = ("fingerprint.png", "radial_spectra.png")
    pngs = sorted(folder.glob("*.png"),
                  key=lambda p: (first.index(p.name) if p.name in first else len(first), p.name))
    if pngs:  # the two square-ish figures side by side, wide ones below at full width
        half = emb.display_px * FIGURE_SCALE // 2
        parts.append('<div class="figs">' + "".join(
            emb.figure(p, T.esc(p.stem.replace("_", " ")),
                       width=half if p.name in first else None) for p in pngs) + "</div>")
    if (folder / "peaks.csv").is_file():
        rows = _read_csv(folder / "peaks.csv")
        head = list(rows[0]) if rows else []
        if head:
            parts.append(T.details(
                f"top {len(rows)} spectral peaks ({significant} significant)",
                T.table(head, [[_cell(h, r[h]) for h in head] for r in rows], digits=4),
                open_=significant > 0))
    config = {k: fp.get(k) for k in ("definition", "transform", "crop", "size", "eps",
                                     "energy_definition", "bands_cycles_per_pixel")}
    parts.append(T.provenance(config, fp.get("versions")))
    glance = []
    if fp.get("energy") is not None:
        null = fp.get("energy_null")
        glance.append(f"Spectral fingerprint energy {T.fmt(fp['energy'])} (chance level "
                      f"{T.fmt(null)}); {significant} significant peak(s).")
    return Part("".join(parts), glance)


def _attacks(folder: Path, emb: Embedder) -> Part:
    attack = _read_json(folder / "attack.json")
    energy = attack.get("fingerprint", {})
    before, after = energy.get("before", {}), energy.get("after", {})
    row = [str(attack.get("method", "?")).upper(), attack.get("k"), attack.get("t"),
           attack.get("size"), attack.get("n_attacked"), attack.get("mean_psnr_db"),
           before.get("energy"), after.get("energy"), energy.get("energy_change"),
           before.get("energy_null")]
    html = T.table(("method", "k", "t", "crop", "images", "mean PSNR dB", "energy before",
                    "energy after", "change", "chance level"), [row])
    config = {k: attack.get(k) for k in ("method", "definition", "domain", "k", "t", "size",
                                         "eps", "psnr_note")}
    config["fingerprint_note"] = energy.get("note")
    html += T.provenance(config, attack.get("versions"))
    glance = [f"{row[0]} attack (k={T.fmt(attack.get('k'), 2)}): fingerprint energy "
              f"{T.fmt(before.get('energy'))} → {T.fmt(after.get('energy'))}, mean PSNR "
              f"{T.fmt(attack.get('mean_psnr_db'), 1)} dB."]
    return Part(html, glance)


def _evaluation(folder: Path, emb: Embedder) -> Part:
    metrics = _read_json(folder / "metrics.json")
    parts = [f"<p><b>{T.esc(metrics.get('title', 'evaluation'))}</b> "
             f"(mode: {T.esc(metrics.get('mode', '?'))})</p>"]
    md = folder / "metrics.md"
    if md.is_file():
        parts.append(T.markdown_to_html(md.read_text(encoding="utf-8")))
    order = {name: i for i, name in enumerate(metrics.get("results", {}))}
    figures = []
    for prefix, what, width in (("curves_", "pixel ROC and precision-recall", None),
                                ("dice_hist_", "Dice per image", emb.display_px),
                                ("failures_", "worst test images", None)):
        found = {p.stem[len(prefix):]: p for p in folder.glob(f"{prefix}*.png")}
        for section in sorted(found, key=lambda name: (order.get(name, len(order)), name)):
            figures.append(emb.figure(found[section], f"{what}: {T.esc(section)}", width=width))
    if figures:
        parts.append('<div class="figs">' + "".join(figures) + "</div>")
    config = {k: v for k, v in metrics.items() if k not in ("results", "versions")}
    parts.append(T.provenance(config, metrics.get("versions")))
    glance = []
    for section, rows in metrics.get("results", {}).items():
        if not rows:
            continue
        model = next((r for r in rows if r.get("name") == "model"), rows[0])
        overall = model.get("overall", {})
        others = [r for r in rows if r is not model]
        best = max(others, key=lambda r: r.get("overall", {}).get("dice") or 0.0, default=None)
        vs = "" if best is None else (f" vs {T.fmt(best.get('overall', {}).get('dice'))} for "
                                      f"'{T.esc(best.get('name'))}'")
        glance.append(f"Evaluation ({T.esc(section)}): micro Dice {T.fmt(overall.get('dice'))}"
                      f"{vs}, pixel AUC {T.fmt(overall.get('pixel_auc'))}.")
        break
    return Part("".join(parts), glance)


def _history_plot(history: list[dict[str, Any]], marker: tuple[int, str] | None = None) -> str:
    """Loss and validation curves; ``marker``: (step, label) of the saved checkpoint."""
    x_key = "step" if all("step" in h for h in history) else "epoch"
    xs = [h.get(x_key) for h in history]
    losses = sorted({k for h in history for k in h if k.startswith("loss")})
    vals = [k for k in ("val_f1_best", "val_dice@0.5", "val_iou@0.5", "val_pixel_auc")
            if any(k in h for h in history)]

    def series(key: str) -> list[float]:
        return [float(h[key]) if h.get(key) is not None else float("nan") for h in history]

    def draw(fig: Any) -> None:
        left, right = fig.subplots(1, 2)
        for key in losses:
            left.plot(xs, series(key), marker="o", ms=3, label=key)
        left.set(xlabel=x_key, title="training loss")
        for key in vals:
            right.plot(xs, series(key), marker="o", ms=3, label=key.removeprefix("val_"))
        right.set(xlabel=x_key, title="validation", ylim=(0, 1))
        for ax in (left, right):
            ax.grid(alpha=0.3)
            if marker is not None and x_key == "step":
                ax.axvline(marker[0], color="grey", ls="--", lw=1, label=marker[1])
            if ax.lines:
                ax.legend(fontsize=8)

    return _plot_uri(draw, (9.0, 3.2))


def _training(folder: Path, emb: Embedder) -> Part:
    meta_path = next((p for p in (folder / "best" / "model.json", folder / "last" / "model.json")
                      if p.is_file()), None)
    meta = _read_json(meta_path) if meta_path else {}
    config = meta.get("config", {})
    tag = meta.get("weights_tag")
    val = meta.get("val", {})
    numbers = {"model": meta.get("model", config.get("model")),
               "backbone": config.get("backbone"), "layers": ", ".join(meta.get("layers", [])),
               "steps trained": meta.get("step"), "parameters": meta.get("n_parameters"),
               "threshold (from validation)": meta.get("threshold"),
               **{f"validation {k}": v for k, v in val.items() if k != "threshold"}}
    parts = [f"<p>Backbone weights: {T.weights_tag(tag)}"
             + (f" · checkpoint <code>{T.esc(meta_path.parent.name)}</code>" if meta_path
                else ' · <span class="warn">no checkpoint metadata found</span>') + "</p>",
             T.key_values({k: v for k, v in numbers.items() if v not in (None, "")})]
    history_path = folder / "history.json"
    if history_path.is_file():
        history = _read_json(history_path)
        if history:
            marker = None
            if meta_path is not None and meta.get("step") is not None:
                marker = (int(meta["step"]), f"{meta_path.parent.name} checkpoint")
            parts.append(T.figure(_history_plot(history, marker),
                                  f"{len(history)} epochs from history.json"
                                  + ("; dashed: the checkpoint shown above" if marker else "")))
    config_text = ((folder / "config.yaml").read_text(encoding="utf-8")
                   if (folder / "config.yaml").is_file() else None)
    parts.append(T.provenance(config, meta.get("versions"), config_text=config_text))
    glance = []
    if val:
        glance.append(f"Model {T.esc(numbers['model'])} on {T.esc(config.get('backbone'))} "
                      f"({T.weights_tag(tag)}): validation F1 {T.fmt(val.get('f1_best'))} "
                      f"at threshold {T.fmt(meta.get('threshold'), 2)}.")
    return Part("".join(parts), glance, [f"training run {folder}"] if tag == "random" else [])


# --------------------------------------------------------------------------- the report


def report(inputs: Sequence[str | Path], out: str | Path, *, title: str = "fakeseg audit",
           max_images: int = 24, display_px: int = 480) -> Path:
    """Write one self-contained HTML report of every fakeseg result under ``inputs``.

    Sections appear only for results that exist; each shows how to read it and the config
    and versions that produced it. Images are embedded (downscaled to ``display_px`` wide,
    figures up to twice that) and link to their full-size files by relative paths. Written
    atomically; returns the path.
    """
    from fakeseg import __version__
    from fakeseg.io import write_text

    if isinstance(inputs, str | Path):
        inputs = [inputs]
    if not inputs:
        raise FakesegError("give at least one result folder to report on")
    if max_images < 1 or display_px < 64:
        raise FakesegError("max_images must be ≥ 1 and display_px ≥ 64")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise FakesegError(f"{out}: the report is HTML; name it *.html")
    found = find_results(inputs)
    if not found:
        raise FakesegError(
            f"no fakeseg results under {', '.join(map(str, inputs))} (looked for results.jsonl,"
            " featdiff.json, fingerprint.json, attack.json, metrics.json, config.yaml + "
            "history.json); point at run, predict, evaluate, fingerprint or featdiff folders")
    emb = Embedder(out, display_px)
    builders: dict[str, Callable[[Path], Part]] = {
        "predictions": lambda f: _predictions(f, emb, max_images),
        "featdiff": lambda f: _featdiff(f, emb), "fingerprints": lambda f: _fingerprints(f, emb),
        "attacks": lambda f: _attacks(f, emb), "evaluation": lambda f: _evaluation(f, emb),
        "training": lambda f: _training(f, emb),
    }
    sections: list[str] = []
    toc: list[str] = []
    glance: list[str] = []
    random: list[str] = []
    number = 0
    for kind in KINDS:
        folders = [f.folder for f in found if f.kind == kind]
        if not folders:
            continue
        number += 1
        subs, sub_toc = [], []
        for i, folder in enumerate(folders, 1):
            sub_id = f"{kind}-{i}"
            try:
                part = builders[kind](folder)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("report: could not read %s (%s): %s", folder, kind, exc)
                part = Part(f'<p class="warn">could not read this result: '
                            f"{T.esc(type(exc).__name__)}: {T.esc(exc)}</p>")
            glance += part.glance
            random += part.random
            label = _display_path(folder, out)
            heading = f"<h3>{T.esc(label)}</h3>" if len(folders) > 1 else ""
            subs.append(f'<div id="{sub_id}">{heading}<p class="src">from {T.esc(label)}</p>'
                        f"{part.html}</div>")
            sub_toc.append(f'<li><a href="#{sub_id}">{T.esc(label)}</a></li>')
        nested = f"<ol>{''.join(sub_toc)}</ol>" if len(folders) > 1 else ""
        toc.append(f'<li><a href="#{kind}">{T.esc(TITLES[kind])}</a>{nested}</li>')
        sections.append(f'<section id="{kind}"><h2>{number}. {T.esc(TITLES[kind])}</h2>'
                        f'<p class="how">How to read this: {T.esc(HOW[kind])}</p>'
                        + "".join(subs) + "</section>")
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    subtitle = (f'<p class="meta">{len(found)} result folder(s) from '
                f"{T.esc(', '.join(_display_path(Path(i), out) for i in inputs))} · generated "
                f"{T.esc(when)} by fakeseg {T.esc(__version__)}</p>")
    if random:
        subtitle += (f'<p class="banner">RANDOM backbone weights in: {T.esc("; ".join(random))}.'
                     " Those results come from an untrained feature extractor.</p>")
    if glance:
        subtitle += ('<div class="glance"><b>At a glance</b><ul>'
                     + "".join(f"<li>{g}</li>" for g in glance) + "</ul></div>")
    toc_html = f'<nav class="toc"><b>Contents</b><ol>{"".join(toc)}</ol></nav>'
    write_text(out, T.page(title, subtitle, toc_html, "\n".join(sections)))
    return out


def _display_path(path: Path, out: Path) -> str:
    """A folder as the reader should see it: relative to the report when that is shorter."""
    try:
        rel = os.path.relpath(path.resolve(), out.resolve().parent)
    except ValueError:
        return str(path)
    return rel if len(rel) < len(str(path)) else str(path)
