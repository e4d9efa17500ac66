"""``fakeseg report``: one self-contained HTML file that shows a whole audit.

It walks the given folders, recognises fakeseg outputs by their files (``results.jsonl``,
``featdiff.json``, ``fingerprint.json``, ``attack.json``, an ``fid --out`` JSON, the
``results.json`` + ``test_split.json`` of ``experiment composition``, ``metrics.json`` of
``evaluate`` / ``benchmark`` or of ``classify eval``, a segmentation run's ``config.yaml`` +
``history.json``, a classifier run's ``config.json`` + ``history.json``, a demo dataset's
``demo.json``) and renders one section per kind found. Numbers come only from the JSON the
commands write, never from their Markdown; each is validated (:func:`templates.num`) and
formatted once, so the "At a glance" box prints exactly the strings of the tables below. Images
are embedded as data URIs (only files inside the result folder being shown, see
:mod:`fakeseg.reporting.files`); the page needs no network: no external URL, font or script.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fakeseg.errors import FakesegError, Skipped
from fakeseg.reporting import enhance_section
from fakeseg.reporting import templates as T
from fakeseg.reporting.files import (
    Embedder,
    locate,
    plot_uri,
    read_json,
    read_text,
    report_warning,
)
from fakeseg.viz import REGION_COLORS, Region, top_regions

#: section order on the page: where it is unreal, why, then how far to trust the model
KINDS: tuple[str, ...] = ("predictions", "featdiff", "fingerprints", "attacks", "fid",
                          "evaluation", "detection", "composition", "training", "classifier")
TITLES = {
    "predictions": "Where images look unreal (predictions)",
    "featdiff": "Feature discrepancy per layer (featdiff)",
    "fingerprints": "Generator fingerprints (spectra)",
    "attacks": "Fingerprint removal (attacks)",
    "fid": "Distance between image sets (FID / FD)",
    "evaluation": "How good is the heat-map model (evaluation)",
    "detection": "How good is the real-vs-synthetic classifier (classify eval)",
    "composition": "Training on real vs synthetic images (experiment composition)",
    "training": "Training runs (heat-map model)",
    "classifier": "Classifier runs (classify train)",
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
                  "(1 = perfect), at the threshold in the 'thr' column. Compare the model with "
                  "the trivial 'all synthetic' / 'all real' rows: a useful model beats both. "
                  "Pixel AUC needs no threshold.",
    "detection": "Image-level decisions: an image is called synthetic when its score reaches "
                 "the threshold. Balanced accuracy 0.5 and ROC AUC 0.5 are chance level.",
    "fid": "Fréchet distance between the feature statistics of two image sets: 0 = same "
           "distribution, larger = further apart. Only values measured in the same feature "
           "space (the name says which: FID only for InceptionV3) and with similar set sizes "
           "are comparable.",
    "composition": "Each row trains a class-A-vs-class-B classifier on the named sources (and, "
                   "with 'FP removal', on synthetic images whose spectral fingerprint was "
                   "attacked) and tests it on held-out real images of both classes; mean ± "
                   "sample std over seeds. A row far below real/real means the classifier "
                   "learnt which generator made its images, not the classes. Balanced accuracy "
                   "0.5 is chance.",
    "training": "Loss should fall and validation F1 / Dice rise; the best checkpoint is the "
                "one with the highest validation F1.",
    "classifier": "Loss should fall and validation balanced accuracy / ROC AUC rise; the best "
                  "checkpoint is the epoch with the highest validation balanced accuracy.",
}
# sections that live in their own modules
KINDS = (*KINDS, enhance_section.KIND)
TITLES[enhance_section.KIND] = enhance_section.TITLE
HOW[enhance_section.KIND] = enhance_section.HOW
THRESHOLD_STORY = ("A pixel counts as flagged when its probability reaches a threshold, and an "
                   "image as synthetic when its score reaches one; every number above names "
                   "the threshold it uses. AUC and AP use none.")


# --------------------------------------------------------------------------- finding results


@dataclass(frozen=True)
class Found:
    """One fakeseg output folder and what kind of result it holds (``dataset``: a demo
    dataset's folder, used only to say what was audited)."""

    kind: str
    folder: Path


def _is_classifier_metrics(path: Path) -> bool:
    try:
        payload = read_json(path, path.parent)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(payload, dict) and "scorer" in payload and "results" not in payload


def _run_kind(folder: Path) -> str | None:
    """``kind`` of a run folder's checkpoint (segmenter, classifier, detector), if readable."""
    try:
        kind = _checkpoint_meta(folder)[1].get("kind")
    except (OSError, ValueError, RecursionError):
        return None
    return kind if isinstance(kind, str) else None


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
    if _fid_files(folder, names):
        kinds.append("fid")
    if "results.json" in names and "test_split.json" in names:
        kinds.append("composition")
    if "metrics.json" in names:
        kinds.append("detection" if _is_classifier_metrics(folder / "metrics.json")
                     else "evaluation")
    has_run = "history.json" in names or (folder / "best" / "model.json").is_file()
    if ("config.yaml" in names or "config.json" in names) and has_run:
        kind = _run_kind(folder)
        if kind == "classifier" or (kind is None and "config.json" in names):
            kinds.append("classifier")
        elif kind in (None, "segmenter"):
            kinds.append("training")
    if enhance_section.RESULT_FILE in names:
        kinds.append(enhance_section.KIND)
    if "demo.json" in names:
        kinds.append("dataset")
    return kinds


#: JSON files other commands write: never read as an FID result
_KNOWN_JSON = frozenset({"metrics.json", "featdiff.json", "fingerprint.json", "attack.json",
                         "results.json", "history.json", "model.json", "split.json",
                         "test_split.json", "demo.json", "config.json", "masked_data.json"})
_FID_MAX_BYTES = 1 << 16


def _fid_files(folder: Path, names: set[str]) -> list[Path]:
    """The ``fakeseg fid --out`` files of ``folder`` (any name): small JSON objects with a
    distance, its feature space and the set sizes."""
    found = []
    for name in sorted(names):
        path = folder / name
        if not name.endswith(".json") or name in _KNOWN_JSON:
            continue
        try:
            if path.stat().st_size > _FID_MAX_BYTES:
                continue
            payload = read_json(path, folder)
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(payload, dict) and {"value", "feature_space", "n_a", "n_b"} <= set(payload):
            found.append(path)
    return found


def find_results(inputs: Sequence[str | Path]) -> list[Found]:
    """Every recognised output folder under ``inputs`` (recursive), in page order. The
    classifier runs inside a composition experiment are summarised by its table, not listed."""
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
    experiments = [f.folder.resolve() for f in found.values() if f.kind == "composition"]
    kept = [f for f in found.values() if not (
        f.kind == "classifier" and any(f.folder.resolve().is_relative_to(e) for e in experiments))]
    order = (*KINDS, "dataset")
    return sorted(kept, key=lambda f: (order.index(f.kind), str(f.folder)))


# --------------------------------------------------------------------------- small readers


def _read_dict(folder: Path, *names: str) -> dict[str, Any]:
    """The JSON object in ``folder/names…``; ``{}`` when the file is absent."""
    path = folder.joinpath(*names)
    if not path.is_file():
        return {}
    payload = read_json(path, folder)
    if not isinstance(payload, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return payload


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, default: str = "?") -> str:
    """A value meant to be a short label, as plain text (escape it before use)."""
    if value is None:
        return default
    return value if isinstance(value, str) else json.dumps(value, default=str)[:200]


def _skipped(payload: dict[str, Any]) -> list[Skipped]:
    """The skipped inputs a result file lists (older files: ``failures``, ``skipped_pairs``)."""
    items = [item for key in ("skipped", "failures", "skipped_pairs")
             for item in _list(payload.get(key))]
    return [Skipped.from_json({k: _text(v) for k, v in item.items()} if isinstance(item, dict)
                              else _text(item)) for item in items]


def _maybe_text(value: Any) -> str | None:
    """Like :func:`_text`, but None stays None (not recorded)."""
    return None if value is None else _text(value)


def _read_csv(path: Path, folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_text(path, folder), newline="")))


def _slug(section: str) -> str:
    """A section title as evaluate names its figure files (evaluation.evaluate.section_slug;
    not imported, so that the report never loads torch)."""
    return re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_")


# --------------------------------------------------------------------------- sections


@dataclass
class Audited:
    """What one result says was looked at: a data folder (or None) and a description."""

    data: str | None
    what: str


@dataclass
class Part:
    """What one result folder contributes to the page."""

    html: str
    glance: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)
    audited: list[Audited] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (anchor, label)


def _rows_jsonl(path: Path, folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a .jsonl file and how many lines were not one."""
    rows, bad = [], 0
    for line in read_text(path, folder).splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _predictions(folder: Path, emb: Embedder, max_images: int) -> Part:
    rows, bad = _rows_jsonl(folder / "results.jsonl", folder)
    meta = _read_dict(folder, "predict.json")
    model = _dict(meta.get("model"))
    tag = model.get("weights_tag")
    model_threshold = T.num(meta.get("threshold"))
    for row in rows:  # validate every number once; these objects feed table, cards, glance
        row["_nums"] = {k: T.num(row.get(k)) for k in ("score", "max", "topk_mean", "threshold")}
    rows.sort(key=lambda r: (r["_nums"]["score"].value is None,
                             -(r["_nums"]["score"].value or 0.0)))
    parts = [f"<p>{len(rows)} images; model backbone weights: {T.weights_tag(_maybe_text(tag))}"
             f". {T.esc(_text(meta.get('score_meaning'), ''))}</p>"]
    if bad:
        parts.append(T.warn_box(f"{bad} line(s) of results.jsonl are not JSON objects: skipped"))
    if meta.get("complete") is False:
        parts.append(T.warn_box("predict did not finish this folder: the ranking is partial"))
    failures = _skipped(meta)
    if failures:
        parts.append(T.details(f"{len(failures)} input(s) could not be predicted", "<ul>" + "".join(
            f"<li>{T.esc(str(f))}</li>" for f in failures) + "</ul>", open_=True))
    invalid = sum(any(n.invalid for n in r["_nums"].values()) for r in rows)
    if invalid:
        report_warning(f"{folder / 'results.jsonl'}: {invalid} row(s) hold non-numbers where "
                       "numbers belong; shown as invalid")
        parts.append(T.warn_box(f"{invalid} row(s) hold values that are not finite numbers "
                                "where numbers belong; they are shown as 'invalid'"))
    card_ids = [emb.next_id("card") for _ in rows[:max_images]]
    ranking = []
    for rank, row in enumerate(rows, 1):
        name = T.esc(_text(row.get("name")))
        cell = T.Raw(f'<a href="#{card_ids[rank - 1]}">{name}</a>' if rank <= max_images
                     else name)
        nums = row["_nums"]
        ranking.append([rank, cell, nums["score"], nums["max"], nums["topk_mean"],
                        nums["threshold"]])
    parts.append(T.details(f"ranking of all {len(rows)} images",
                           T.table(("rank", "image", "score", "max", "top-1% mean",
                                    "threshold"), ranking), open_=len(rows) <= 12))
    cards = [_prediction_card(rank, row, folder, emb, card_ids[rank - 1], model_threshold)
             for rank, row in enumerate(rows[:max_images], 1)]
    if len(rows) > max_images:
        cards.append(f'<p class="note">… {len(rows) - max_images} more in the ranking above '
                     "(raise --max-images to show them)</p>")
    parts.append(f'<div class="cards" style="grid-template-columns: repeat(auto-fill, '
                 f'minmax(min({emb.display_px}px, 100%), 1fr))">' + "".join(cards) + "</div>")
    parts.append(T.provenance({"model": model, "model_config": meta.get("model_config"),
                               "threshold": meta.get("threshold")}, _dict(meta.get("versions"))))
    glance = []
    if rows and rows[0]["_nums"]["score"].value is not None:
        top = rows[0]["_nums"]
        glance.append(f"Predictions: most unreal of {len(rows)} images is <b>"
                      f"{T.esc(_text(rows[0].get('name')))}</b> with score {top['score']} "
                      "(the share of its pixels whose probability reaches the model's pixel "
                      f"threshold {top['threshold']}, chosen on validation pairs).")
    audited = [Audited(_input_folder(rows, folder),
                       f"{len(rows)} image(s) run through the model ({folder.name}/)"
                       + (f", {len(failures)} more could not be read" if failures else ""))]
    return Part("".join(parts), glance, [f"predictions in {folder}"] if tag == "random" else [],
                audited)


def _input_folder(rows: Sequence[dict[str, Any]], folder: Path) -> str | None:
    """The folder the predicted images came from (their common parent; the dataset root when
    that is a demo dataset's image folder), as text: the images themselves are never read."""
    parents = set()
    for row in rows:
        value = row.get("image")
        if isinstance(value, str) and value and "\x00" not in value:
            parents.add(os.path.dirname(os.path.abspath(folder / value)))
    if not parents:
        return None
    common = Path(os.path.commonpath(sorted(parents)))
    if not (common / "demo.json").is_file() and (common.parent / "demo.json").is_file():
        return str(common.parent)  # real/ or synthetic/ of a dataset
    return str(common)


def _load_heat(row: dict[str, Any], folder: Path) -> tuple[np.ndarray | None, str]:
    """The row's float map: its .npy, else (predict --outputs without heat_npy) its 16-bit
    PNG divided by 65535."""
    found = locate(row.get("heat_npy"), folder)
    if found.path is None and row.get("heat_png"):
        png = locate(row.get("heat_png"), folder)
        if png.path is not None:
            try:
                with Image.open(png.path) as stored:
                    return np.asarray(stored, dtype=np.float64) / 65535.0, ""
            except (OSError, ValueError) as exc:
                return None, f"heat map (.png) unreadable: {type(exc).__name__}"
    if found.path is None:
        return None, f"heat map (.npy): {found.problem}"
    try:
        heat = np.load(found.path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"heat map (.npy) unreadable: {type(exc).__name__}"
    if heat.ndim != 2 or heat.dtype.kind != "f" or not np.isfinite(heat).all():
        return None, "heat map (.npy) is not a finite 2-D float map"
    return heat, ""


def _prediction_card(rank: int, row: dict[str, Any], folder: Path, emb: Embedder, card_id: str,
                     model_threshold: T.Num) -> str:
    nums = row["_nums"]
    name = _text(row.get("name"))
    title = f'<h4 id="{card_id}">#{rank} {T.esc(name)} · score {nums["score"]}</h4>'
    threshold = nums["threshold"] if nums["threshold"].value is not None else model_threshold
    overlay = locate(row.get("overlay"), folder)
    heat, heat_problem = _load_heat(row, folder)
    regions: list[Region] = []
    if heat is not None and threshold.value is not None:
        regions = top_regions(heat, float(threshold.value))
    if overlay.path is None:
        picture = T.warn_box(f"overlay: {overlay.problem}")
        own_bar = False
    else:
        try:
            image = emb.load(overlay.path).convert("RGB")
            width, height = image.size
            if width < emb.display_px:  # small maps: enlarge so the boxes stay thin and crisp
                image = image.resize((emb.display_px, round(image.height * emb.display_px
                                                            / width)), Image.Resampling.BICUBIC)
        except Exception as exc:  # any unreadable picture becomes one placeholder
            report_warning(f"could not read {overlay.path}: {exc}")
            image, width, height = None, 0, 0
        # an overlay of its heat map's size is a bare blend (older predict): the report draws
        # the boxes and a colour bar; a wider one carries predict's own bar and boxes
        own_bar = image is not None and (heat is None or (height, width) != heat.shape)
        if image is None:
            picture = T.warn_box("overlay: not a readable PNG/JPEG")
        else:
            if heat is not None and not own_bar:
                _draw_regions(image, regions, heat.shape)
            picture = emb.embed(image, overlay.path, photo=True, alt=f"overlay of {name}",
                                original_width=width)
    bar = "" if own_bar else T.colorbar(
        "probability of being unreal (overlay colour); tick = threshold "
        f"{threshold}", marks=[(threshold.value, "threshold")] if threshold.value is not None
        else [])
    if heat is None:
        table = T.warn_box(f"{heat_problem}: no regions")
    elif threshold.value is None:
        table = T.warn_box("no valid threshold recorded: no regions")
    elif not regions:
        table = f'<p class="note">no pixel reaches the threshold {threshold}</p>'
    else:
        swatch = '<span style="display:inline-block;width:10px;height:10px;background:rgb{}">' \
                 "</span> {}"
        table = T.table(
            ("region", "area px", "area %", "mean score", "box x, y, w×h"),
            [[T.Raw(swatch.format(REGION_COLORS[i % len(REGION_COLORS)], i + 1)), r.area_px,
              100 * r.area_fraction, r.mean_score,
              f"{r.bbox[0]}, {r.bbox[1]}, {r.bbox[2] - r.bbox[0]}×{r.bbox[3] - r.bbox[1]}"]
             for i, r in enumerate(regions)], digits=2)
    stats = (f'<p class="note">max {nums["max"]} · top-1% mean {nums["topk_mean"]} · '
             f"threshold {threshold}</p>")
    return f'<div class="card">{title}{picture}{bar}{stats}{table}</div>'


def _draw_regions(image: Any, regions: Sequence[Region], shape: tuple[int, ...]) -> None:
    sy, sx = image.height / shape[0], image.width / shape[1]
    line = max(2, round(image.width / 160))
    tag = max(14, line * 7)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=tag - 4)
    for i, region in enumerate(regions):
        x0, y0, x1, y1 = region.bbox
        box = (x0 * sx, y0 * sy, max(x1 * sx - 1, x0 * sx), max(y1 * sy - 1, y0 * sy))
        color = REGION_COLORS[i % len(REGION_COLORS)]
        draw.rectangle(box, outline=color, width=line)
        draw.rectangle((box[0], box[1], box[0] + tag, box[1] + tag), fill=color)
        draw.text((box[0] + tag / 2, box[1] + tag / 2), str(i + 1), fill=(0, 0, 0), font=font,
                  anchor="mm")


def _figures(paths: Sequence[Path], folder: Path, emb: Embedder,
             caption: Callable[[Path], str]) -> str:
    if not paths:
        return ""
    return '<div class="figs">' + "".join(emb.figure(p, folder, caption(p))
                                          for p in paths) + "</div>"


def _featdiff(folder: Path, emb: Embedder) -> Part:
    payload = _read_dict(folder, "featdiff.json")
    tags = {str(k): _text(v) for k, v in _dict(payload.get("weights_tags")).items()}
    random = [b for b, t in tags.items() if t == "random"]
    parts = []
    if random:
        parts.append(f'<p class="banner">RANDOM weights for {T.esc(", ".join(random))}: these '
                     "maps and numbers say nothing about realism.</p>")
    items = []
    for name, record in _dict(payload.get("backbones")).items():
        record = _dict(record)
        if record.get("status") == "skipped":
            items.append(f"{T.esc(name)}: skipped ({T.esc(_text(record.get('reason')))})")
        else:
            tag = T.weights_tag(_maybe_text(record.get("weights_tag")))
            items.append(f"{T.esc(name)}: weights {tag}")
    if items:
        parts.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    summary = [r for r in map(_dict, _list(payload.get("summary"))) if r]
    rows = []
    for r in summary:
        r["_ssim"] = T.num(r.get("ssim_mean"))
        layer = _text(r.get("layer")) + (" (random-init)" if r.get("random_init") is True else "")
        rows.append([_text(r.get("backbone")), layer, T.num(r.get("stride")),
                     T.num(r.get("mse_mean"), 4), T.num(r.get("mse_std"), 4), r["_ssim"],
                     T.num(r.get("ssim_std")), T.num(r.get("n_pairs"))])
    if rows:
        parts.append(T.table(("backbone", "layer", "stride", "MSE mean", "MSE std", "SSIM mean",
                              "SSIM std", "pairs"), rows))
    definitions = _dict(payload.get("definitions"))
    if definitions:
        parts.append('<p class="note">' + " ".join(T.esc(_text(v)) for v in definitions.values())
                     + "</p>")
    for item in _skipped(payload):
        parts.append(T.warn_box(f"pair {item.input} skipped: {item.reason}"))
    grids = sorted(folder.glob("grid_*.png"))
    if grids:
        parts.append(T.colorbar("|F(R) − F(S)| in each cell (dark = alike, bright = the layer "
                                "sees a difference)", low="0", high="the cell's 99th percentile"))
        parts.append(_figures(grids, folder, emb, lambda g: f"{T.esc(g.stem[5:])}: rows = "
                              "layers, columns = backbones"))
    parts.append(T.provenance(payload.get("config"), _dict(payload.get("versions"))))
    glance = []
    scored = [r for r in summary if r["_ssim"].value is not None]
    n_pairs = len(_list(payload.get("pairs")))
    if scored:
        worst = min(scored, key=lambda r: r["_ssim"].value)
        glance.append(f"Feature discrepancy over {n_pairs} pair(s): lowest SSIM (most "
                      f"different) at <b>{T.esc(_text(worst.get('backbone')))} · "
                      f"{T.esc(_text(worst.get('layer')))}</b>: {worst['_ssim']}.")
    config = _dict(payload.get("config"))
    data = config.get("pairs") or config.get("synthetic")
    return Part("".join(parts), glance, [f"featdiff {b}" for b in random],
                [Audited(_maybe_text(data), f"{n_pairs} pair(s) compared layer by layer")])


def _num_or_text(column: str, text: str) -> Any:
    if column == "significant":
        return "yes" if text.strip() in ("1", "True", "true") else "no"
    try:
        value = float(text)
    except ValueError:
        return text
    return T.num(int(value) if value.is_integer() and "." not in text else value, 4)


def _fingerprints(folder: Path, emb: Embedder) -> Part:
    fp = _read_dict(folder, "fingerprint.json")
    peaks = [p for p in map(_dict, _list(fp.get("peaks")))]
    significant = sum(p.get("significant") is True for p in peaks)
    energy, null = T.num(fp.get("energy")), T.num(fp.get("energy_null"))
    numbers = {
        "transform": _text(fp.get("transform_label", fp.get("transform"))),
        "crop size": T.num(fp.get("size")), "crop": _text(fp.get("crop")),
        "real images": T.num(fp.get("n_real")), "synthetic images": T.num(fp.get("n_synthetic")),
        "energy (mean |FP|, no DC)": energy,
        "energy from chance alone": null,
        **{f"energy, {band} band": T.num(v)
           for band, v in _dict(fp.get("band_energy")).items()},
        "peak z threshold (5 % family-wise)": T.num(fp.get("z_threshold")),
        "significant peaks (of listed)": f"{significant} of {len(peaks)}",
    }
    parts = [T.key_values(numbers)]
    first = ("fingerprint.png", "radial_spectra.png")
    pngs = sorted(folder.glob("*.png"),
                  key=lambda p: (first.index(p.name) if p.name in first else len(first), p.name))
    parts.append(_figures(pngs, folder, emb, lambda p: T.esc(p.stem.replace("_", " "))))
    if (folder / "peaks.csv").is_file():
        rows = _read_csv(folder / "peaks.csv", folder)
        head = list(rows[0]) if rows else []
        if head:
            parts.append(T.details(
                f"top {len(rows)} spectral peaks ({significant} significant)",
                T.table(head, [[_num_or_text(h, r[h] or "") for h in head] for r in rows]),
                open_=significant > 0))
    config = {k: fp.get(k) for k in ("definition", "transform", "crop", "size", "eps",
                                     "energy_definition", "bands_cycles_per_pixel")}
    parts.append(T.provenance(config, _dict(fp.get("versions"))))
    glance = []
    if energy.value is not None:
        glance.append(f"Spectral fingerprint energy {energy} (chance level {null}); "
                      f"{significant} significant peak(s).")
    n = sum(v for v in (T.num(fp.get("n_real")).value, T.num(fp.get("n_synthetic")).value)
            if v is not None)
    return Part("".join(parts), glance,
                audited=[Audited(None, f"{n} image(s) in a spectral fingerprint")])


def _attacks(folder: Path, emb: Embedder) -> Part:
    attack = _read_dict(folder, "attack.json")
    energy = _dict(attack.get("fingerprint"))
    before, after = _dict(energy.get("before")), _dict(energy.get("after"))
    method = _text(attack.get("method")).upper()
    k, psnr = T.num(attack.get("k")), T.num(attack.get("mean_psnr_db"), 1)
    e_before, e_after = T.num(before.get("energy")), T.num(after.get("energy"))
    row = [method, k, T.num(attack.get("t")), T.num(attack.get("size")),
           T.num(attack.get("n_attacked")), psnr, e_before, e_after,
           T.num(energy.get("energy_change")), T.num(before.get("energy_null"))]
    html = T.table(("method", "k", "t", "crop", "images", "mean PSNR dB", "energy before",
                    "energy after", "change", "chance level"), [row])
    config = {k: attack.get(k) for k in ("method", "definition", "domain", "k", "t", "size",
                                         "eps", "psnr_note")}
    config["fingerprint_note"] = energy.get("note")
    html += T.provenance(config, _dict(attack.get("versions")))
    glance = [f"{T.esc(method)} attack (k = {k}): fingerprint energy {e_before} → {e_after}, "
              f"mean PSNR {psnr} dB."]
    return Part(html, glance)


def _fid(folder: Path, emb: Embedder) -> Part:
    rows, glance, notes = [], [], []
    for path in _fid_files(folder, {p.name for p in folder.iterdir()}):
        fid = _read_dict(folder, path.name)
        name, value = _text(fid.get("name"), "FD"), T.num(fid.get("value"), 2)
        n_a, n_b = T.num(fid.get("n_a")), T.num(fid.get("n_b"))
        rows.append([path.name, name, value, _text(fid.get("feature_space")), n_a, n_b,
                     T.num(fid.get("size")), _text(fid.get("a"), "–"), _text(fid.get("b"), "–")])
        glance.append(f"{T.esc(name)} = {value} between set A ({n_a} images) and set B ({n_b}) "
                      f"({T.esc(path.name)}).")
        if fid.get("note"):
            notes.append(f"{path.name}: {_text(fid['note'])}")
    html = T.table(("file", "name", "distance", "feature space", "images A", "images B",
                    "input px", "set A", "set B"), rows)
    if notes:
        html += '<p class="note">' + T.esc(" ".join(notes)) + "</p>"
    return Part(html, glance)


def _mean_std_cell(stat: Any) -> T.Raw:
    """A mean ± std entry of results.json as one cell (each part validated)."""
    stat = _dict(stat)
    mean, std = T.num(stat.get("mean"), 2), T.num(stat.get("std"), 2)
    # non-breaking spaces: a narrow column never splits "0.91 ± 0.01" over three lines
    return T.Raw(str(mean) if stat.get("std") is None else f"{mean}\u00a0±\u00a0{std}")


def _composition(folder: Path, emb: Embedder) -> Part:
    results = _read_dict(folder, "results.json")
    classes = _dict(results.get("classes"))
    name_a, name_b = _text(classes.get("0"), "A"), _text(classes.get("1"), "B")
    settings = _dict(results.get("settings"))
    n_test = _dict(results.get("n_test"))
    seeds = len(_list(settings.get("seeds")))
    body, glance_cells = [], []
    for row in map(_dict, _list(results.get("rows"))):
        sources = _dict(row.get("train_source"))
        accuracy = _dict(row.get("accuracy"))
        removal = _text(row.get("defingerprint"), "–").upper()
        balanced = _mean_std_cell(row.get("balanced_accuracy"))
        body.append([removal, _text(sources.get(name_a)), _text(sources.get(name_b)),
                     _text(row.get("image_size")), _mean_std_cell(accuracy.get(name_a)),
                     _mean_std_cell(accuracy.get(name_b)), balanced,
                     _mean_std_cell(row.get("roc_auc"))])
        after = "" if removal == "–" else f" after {T.esc(removal)}"
        glance_cells.append(f"{T.esc(_text(row.get('composition')))}{after} {balanced}")
    parts = [f"<p>Task: class {T.esc(name_a)} vs class {T.esc(name_b)}; tested on held-out real "
             f"images only ({T.num(n_test.get(name_a))} {T.esc(name_a)}, "
             f"{T.num(n_test.get(name_b))} {T.esc(name_b)}); {seeds} seed(s).</p>",
             T.table(("FP removal", f"{name_a} (train)", f"{name_b} (train)", "image size",
                      f"ACC {name_a}", f"ACC {name_b}", "balanced acc.", "ROC AUC"), body)]
    attacks = [_dict(a) for a in _list(results.get("attacks"))]
    if attacks:
        parts.append("<h4>Fingerprint removal</h4>" + T.table(
            ("attack", "class", "crop", "fitted on real", "fitted on synthetic", "attacked",
             "mean PSNR dB", "FP energy before", "after", "chance level"),
            [[_text(a.get("method")).upper(), _text(a.get("class_name")), T.num(a.get("size")),
              T.num(a.get("n_fit_real")), T.num(a.get("n_fit_synthetic")),
              T.num(a.get("n_attacked")), T.num(a.get("mean_psnr_db"), 1),
              T.num(a.get("energy_before")), T.num(a.get("energy_after")),
              T.num(a.get("energy_null"))] for a in attacks]))
    parts.append(T.provenance(settings, _dict(results.get("versions"))))
    glance = [f"Composition experiment ({T.esc(name_a)} vs {T.esc(name_b)}, {seeds} seed(s), "
              "tested on real images): balanced accuracy " + "; ".join(glance_cells) + "."]
    folders = _dict(results.get("folders"))
    labels = {"a": name_a, "b": name_b}
    audited = []
    for key, path in folders.items():
        cls, _, kind = _text(key).partition("_")
        what = f"{kind} images of class {labels.get(cls, cls)} (composition experiment)"
        audited.append(Audited(_maybe_text(path), what))
    return Part("".join(parts), glance if glance_cells else [], audited=audited)


#: evaluation table columns read from each method row of metrics.json
_EVAL_COLUMNS = (("Dice (micro)", ("overall", "dice")), ("IoU (micro)", ("overall", "iou")),
                 ("Dice img-mean", ("overall", "dice_macro")),
                 ("F1 oracle/img", ("oracle_f1_per_image",)),
                 ("pixel AUC", ("overall", "pixel_auc")), ("FP real", ("fp_real",)),
                 ("img AUC", ("image_level", "roc_auc")))


def _get(row: dict[str, Any], keys: Sequence[str]) -> Any:
    value: Any = row
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _evaluation(folder: Path, emb: Embedder) -> Part:
    metrics = _read_dict(folder, "metrics.json")
    results = _dict(metrics.get("results"))
    parts = [f"<p><b>{T.esc(_text(metrics.get('title'), 'evaluation'))}</b> "
             f"(mode: {T.esc(_text(metrics.get('mode')))})</p>"]
    if metrics.get("split_note"):
        parts.append(f'<p class="note">{T.esc(_text(metrics["split_note"]))}</p>')
    glance: list[str] = []
    failures: list[tuple[str, str]] = []
    for section, rows in results.items():
        rows = [r for r in map(_dict, _list(rows)) if r]
        if not rows:
            continue
        section = _text(section)
        extras = list(dict.fromkeys(str(c) for r in rows for c in _dict(r.get("extra"))))
        head = ["method", "thr", *(name for name, _ in _EVAL_COLUMNS), "s", *extras]
        cells: dict[str, dict[str, T.Num]] = {}
        body = []
        for r in rows:
            name = _text(r.get("name"))
            nums = {"thr": T.num(r.get("threshold"))}
            nums.update({label: T.num(_get(r, keys)) for label, keys in _EVAL_COLUMNS})
            cells[name] = nums
            body.append([name, *nums.values(), _rounded(r.get("seconds")),
                         *(_rounded(_get(r, ("extra", c))) for c in extras)])
        parts.append(f"<h4>{T.esc(section)}</h4>" + T.table(head, body))
        for key, what in (("per_class", "class"), ("per_kind", "composite kind"),
                          ("per_pair", "test pair")):
            groups = list(dict.fromkeys(str(g) for r in rows for g in _dict(r.get(key))))
            if groups:
                table = []
                for r in rows:
                    dice = [T.num(_get(r, (key, g, "dice"))) for g in groups]
                    valid = [d.value for d in dice if d.value is not None]
                    mean = T.num(float(np.mean(valid)) if len(valid) == len(dice) else None)
                    table.append([_text(r.get("name")), *dice, mean])
                parts.append(T.details(f"Dice (micro) per {what}", T.table(
                    ["method", *groups, f"mean over {what}es" if what == "class" else "mean"],
                    table)))
        sources = sorted({f"{_text(r.get('name'))}: {_text(r.get('threshold_source'))}"
                          for r in rows if r.get("threshold_source")})
        if sources:
            parts.append('<p class="note">thr (pixel threshold) chosen by — '
                         + T.esc("; ".join(sources)) + ". Micro = over all pixels of the "
                         "set; img-mean = mean over images.</p>")
        slug = _slug(section)
        figs = [emb.figure(folder / f"{prefix}{slug}.png", folder, T.esc(f"{what}: {section}"))
                for prefix, what in (("curves_", "pixel ROC and precision-recall"),
                                     ("dice_hist_", "Dice per image"))
                if (folder / f"{prefix}{slug}.png").is_file()]
        if figs:
            parts.append('<div class="figs">' + "".join(figs) + "</div>")
        gallery = folder / f"failures_{slug}.png"
        if gallery.is_file():
            anchor = emb.next_id("failures")
            parts.append(f'<div id="{anchor}">' + emb.figure(
                gallery, folder, T.esc(f"worst test images: {section}")) + "</div>")
            failures.append((anchor, section))
        if not glance:
            glance.append(_evaluation_glance(section, rows, cells))
    config = {k: v for k, v in metrics.items() if k not in ("results", "versions")}
    parts.append(T.provenance(config, _dict(metrics.get("versions"))))
    data = metrics.get("data") or metrics.get("images")
    n_test = len(_list(metrics.get("test_pairs")))
    what = (f"evaluation on {n_test} test pair(s)" if n_test else
            f"evaluation ({_text(metrics.get('mode'))} mode)")
    return Part("".join(parts), [g for g in glance if g], audited=[Audited(_maybe_text(data),
                                                                           what)],
                failures=failures)


def _evaluation_glance(section: str, rows: list[dict[str, Any]],
                       cells: dict[str, dict[str, T.Num]]) -> str:
    model = next((r for r in rows if r.get("name") == "model"), rows[0])
    name = _text(model.get("name"))
    own = cells[name]
    others = [_text(r.get("name")) for r in rows if r is not model]
    best = max(others, key=lambda n: cells[n]["Dice (micro)"].value or 0.0, default=None)
    source = _text(model.get("threshold_source"), "given")
    vs = "" if best is None else (f"; best trivial row: {cells[best]['Dice (micro)']} "
                                  f"('{T.esc(best)}', thr {cells[best]['thr']})")
    source = source if source == "given" else f"chosen on {source}"
    return (f"Evaluation ({T.esc(section)}): Dice (micro) of '{T.esc(name)}' "
            f"{own['Dice (micro)']} at pixel threshold {own['thr']} ({T.esc(source)}){vs}; "
            f"pixel AUC {own['pixel AUC']} (no threshold).")


def _rounded(value: Any, digits: int = 1) -> T.Num:
    """Seconds, parameter counts: rounded, never in scientific form."""
    checked = T.num(value, digits)
    return checked if checked.value is None else T.num(round(checked.value, digits), digits)


_IMAGE_COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"),
                  ("f1", "F1"), ("balanced_accuracy", "balanced acc."), ("roc_auc", "ROC AUC"),
                  ("average_precision", "AP"), ("eer", "EER"))


def _image_table(reports: dict[str, Any], first: str) -> tuple[str, dict[str, dict[str, T.Num]]]:
    """Image-level metrics, one row per report; also the cells, for the glance."""
    cells: dict[str, dict[str, T.Num]] = {}
    body = []
    for name, report in reports.items():
        report = _dict(report)
        nums = {label: T.num(report.get(key)) for key, label in _IMAGE_COLUMNS}
        cells[str(name)] = nums
        body.append([str(name), T.num(report.get("n")), T.num(report.get("n_positive")),
                     T.num(report.get("threshold")), *nums.values()])
    head = (first, "images", "synthetic", "threshold", *(label for _, label in _IMAGE_COLUMNS))
    return T.table(head, body), cells


def _detection(folder: Path, emb: Embedder) -> Part:
    metrics = _read_dict(folder, "metrics.json")
    threshold = T.num(metrics.get("threshold"))
    score = _text(metrics.get("score"), "score")
    parts = [f"<p>Scorer: {T.esc(_text(metrics.get('scorer_description')))}. An image is called"
             f" synthetic when <code>{T.esc(score)}</code> ≥ {threshold}.</p>"]
    seen = T.num(metrics.get("n_seen_in_training"))
    if seen.value:
        parts.append(f'<p class="banner">{seen} of these images were used in training or '
                     "validation: these numbers are not a held-out estimate.</p>")
    shortcuts = [_text(m) for m in metrics.get("shortcuts") or [] if isinstance(m, str)]
    parts += [f'<p class="banner">{T.esc(m)}</p>' for m in shortcuts]
    reports = {"all": metrics.get("overall")}
    reports.update(_dict(metrics.get("per_source")))
    html, cells = _image_table(reports, "subset")
    parts.append(html)
    parts.append(T.provenance(metrics.get("config"), _dict(metrics.get("versions"))))
    n = T.num(metrics.get("n"))
    overall = cells["all"]
    glance = [f"Classifier evaluation ({T.esc(_text(metrics.get('scorer')))} scorer, {n} images"
              f", synthetic when {T.esc(score)} ≥ {threshold}): balanced accuracy "
              f"{overall['balanced acc.']}, ROC AUC {overall['ROC AUC']} (no threshold)"
              + (f"; {seen} image(s) were seen in training" if seen.value else "")
              + ("; <b>the labels can be read off the frame or size</b>, so these scores "
                 "mean nothing" if shortcuts else "") + "."]
    return Part("".join(parts), glance, audited=[Audited(
        _maybe_text(metrics.get("data")), f"{n} labelled image(s) scored by a classifier")])


def _history_plot(history: list[dict[str, Any]], losses: Sequence[str], vals: Sequence[str],
                  marker: tuple[float, str] | None = None) -> str:
    """Loss and validation curves; ``marker``: (x, label) of the saved checkpoint."""
    x_key = "step" if all("step" in h for h in history) else "epoch"

    def series(key: str) -> list[float]:
        out = []
        for h in history:
            value = T.num(h.get(key)).value
            out.append(float("nan") if value is None else float(value))
        return out

    xs = series(x_key)

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
            if marker is not None:
                ax.axvline(marker[0], color="grey", ls="--", lw=1, label=marker[1])
            if ax.lines:
                ax.legend(fontsize=8)

    return plot_uri(draw, (9.0, 3.2))


def _history(folder: Path) -> list[dict[str, Any]]:
    path = folder / "history.json"
    return [h for h in map(_dict, _list(read_json(path, folder) if path.is_file() else []))
            if h]


def _checkpoint_meta(folder: Path) -> tuple[Path | None, dict[str, Any]]:
    path = next((p for p in (folder / "best" / "model.json", folder / "last" / "model.json")
                 if p.is_file()), None)
    return path, (_read_dict(folder, *path.relative_to(folder).parts) if path else {})


def _checkpoint_line(tag: Any, meta_path: Path | None) -> str:
    return (f"<p>Backbone weights: {T.weights_tag(_maybe_text(tag))}"
            + (f" · checkpoint <code>{T.esc(meta_path.parent.name)}</code>" if meta_path
               else ' · <span class="warn">no checkpoint metadata found</span>') + "</p>")


def _training(folder: Path, emb: Embedder) -> Part:
    meta_path, meta = _checkpoint_meta(folder)
    config = _dict(meta.get("config"))
    tag = meta.get("weights_tag")
    val = _dict(meta.get("val"))
    threshold = T.num(meta.get("threshold"))
    f1 = T.num(val.get("f1_best"))
    model_name = _text(meta.get("model", config.get("model")))
    numbers = {"model": model_name, "backbone": _text(config.get("backbone")),
               "layers": ", ".join(map(_text, _list(meta.get("layers")))),
               "steps trained": T.num(meta.get("step")),
               "parameters": T.num(meta.get("n_parameters")),
               "pixel threshold (best F1 on validation)": threshold,
               "validation F1 at that threshold": f1,
               **{f"validation {k}": T.num(v) for k, v in val.items()
                  if k not in ("threshold", "f1_best")}}
    parts = [_checkpoint_line(tag, meta_path), T.key_values(numbers)]
    history = _history(folder)
    if history:
        marker = None
        step = T.num(meta.get("step")).value
        if meta_path is not None and step is not None and all("step" in h for h in history):
            marker = (step, f"{meta_path.parent.name} checkpoint")
        losses = sorted({k for h in history for k in h if k.startswith("loss")})
        vals = [k for k in ("val_f1_best", "val_dice@0.5", "val_iou@0.5", "val_pixel_auc")
                if any(k in h for h in history)]
        parts.append(T.figure(_history_plot(history, losses, vals, marker),
                              f"{len(history)} epochs from history.json"
                              + ("; dashed: the checkpoint shown above" if marker else ""),
                              fig_id=emb.next_id(), alt="training curves"))
    config_text = (read_text(folder / "config.yaml", folder)
                   if (folder / "config.yaml").is_file() else None)
    parts.append(T.provenance(config, _dict(meta.get("versions")), config_text=config_text))
    glance = []
    if f1.value is not None:
        backbone = T.esc(_text(config.get("backbone")))
        glance.append(f"Heat-map model {T.esc(model_name)} on {backbone}"
                      f" ({T.weights_tag(_maybe_text(tag))}): validation F1 {f1} at pixel "
                      f"threshold {threshold} (the threshold predict uses).")
    split = _dict(meta.get("split"))
    counts = {k: len(_list(split.get(k))) for k in ("train", "val", "test")}
    unit = "image(s) with masks" if meta.get("masks") else "pair(s)"  # train --images --masks
    audited = [Audited(_maybe_text(meta.get("data")),
                       f"{sum(counts.values())} {unit} split train {counts['train']} / val "
                       f"{counts['val']} / test {counts['test']} (training run {folder.name})")]
    return Part("".join(parts), glance, [f"training run {folder}"] if tag == "random" else [],
                audited)


def _classifier(folder: Path, emb: Embedder) -> Part:
    meta_path, meta = _checkpoint_meta(folder)
    config = _dict(meta.get("config")) or _read_dict(folder, "config.json")
    tag = meta.get("weights_tag", config.get("weights_tag"))
    threshold = T.num(meta.get("threshold"))
    val = _dict(meta.get("val"))
    numbers: dict[str, Any] = {
        "backbone": _text(meta.get("backbone", config.get("backbone"))),
        "input": f"{_text(meta.get('fit'))} {_text(meta.get('size'))} px",
        "best epoch": T.num(meta.get("epoch")),
        "decision threshold on P(synthetic)": threshold}
    parts = [_checkpoint_line(tag, meta_path), T.key_values(numbers)]
    if val:
        html, cells = _image_table({"validation": val}, "split")
        parts.append(html)
    history = _history(folder)
    if history:
        # the trainer's entries (loss_bce, val_*), or older runs' (train_loss, nested val)
        flat = [{"epoch": h.get("epoch"), "train_loss": h.get("train_loss", h.get("loss_bce")),
                 "val_loss": h.get("val_loss"),
                 **{f"val_{k}": v for k, v in _dict(h.get("val")).items()},
                 **{k: v for k, v in h.items() if k.startswith("val_") and k != "val_loss"}}
                for h in history]
        marker = None
        epoch = T.num(meta.get("epoch")).value
        if meta_path is not None and epoch is not None:
            marker = (epoch, f"{meta_path.parent.name} checkpoint")
        vals = [k for k in ("val_balanced_accuracy", "val_roc_auc", "val_f1")
                if any(k in h for h in flat)]
        parts.append(T.figure(_history_plot(flat, ["train_loss", "val_loss"], vals, marker),
                              f"{len(history)} epochs from history.json",
                              fig_id=emb.next_id(), alt="classifier training curves"))
    parts.append(T.provenance(config, _dict(meta.get("versions"))))
    glance = []
    if val:
        row = cells["validation"]
        glance.append(f"Classifier {T.esc(numbers['backbone'])} ({T.weights_tag(_maybe_text(tag))}"
                      f"): validation balanced accuracy {row['balanced acc.']}, ROC AUC "
                      f"{row['ROC AUC']} at P(synthetic) ≥ {threshold} (best epoch "
                      f"{numbers['best epoch']}).")
    split = _read_dict(folder, "split.json")
    n_train, n_val = len(_list(split.get("train"))), len(_list(split.get("val")))
    audited = [Audited(_maybe_text(meta.get("data", config.get("data"))),
                       f"{n_train + n_val} labelled image(s) (train {n_train} / val {n_val}) "
                       f"for classifier run {folder.name}")]
    return Part("".join(parts), glance, [f"classifier run {folder}"] if tag == "random" else [],
                audited)


# --------------------------------------------------------------------------- what was audited


def _demo_facts(folder: Path) -> tuple[str, int] | None:
    """(disclaimer, number of pairs) when ``folder`` holds a fakeseg demo.json, else None."""
    from fakeseg.data.demo import DEMO_JSON, DEMO_KIND, DISCLAIMER

    try:
        payload = read_json(folder / DEMO_JSON, folder)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("kind") != DEMO_KIND:
        return None
    return DISCLAIMER, len(_list(payload.get("pairs")))


def _audit_html(audited: Sequence[Audited], datasets: Sequence[Path],
                inputs: Sequence[Path], out: Path) -> str:
    by_data: dict[str, list[str]] = {}
    for item in audited:
        by_data.setdefault(item.data or "", []).append(item.what)
    for dataset in datasets:  # a demo dataset among the inputs that no result names
        if not any(_same_folder(d, dataset, inputs) for d in by_data if d):
            by_data.setdefault(str(dataset), []).append("dataset folder found among the inputs")
    lines = [T.esc(w) for w in by_data.pop("", [])]
    for data, whats in by_data.items():
        folder = _resolve_data(data, inputs)
        demo = _demo_facts(folder) if folder is not None else None
        line = f"data folder <code>{T.esc(_display_path(Path(data), out))}</code>"
        if demo is not None:
            line += (f' <span class="flag">simulated demo data</span>: {demo[1]} pairs '
                     f"({2 * demo[1]} images, demo.json). "
                     f'<span class="note">{T.esc(demo[0])}</span>')
        elif folder is None:
            line += ' <span class="note">(not found from here)</span>'
        lines.append(line + "<ul>" + "".join(f"<li>{T.esc(w)}</li>" for w in whats) + "</ul>")
    return "".join(f"<li>{line}</li>" for line in lines)


def _resolve_data(data: str, inputs: Sequence[Path]) -> Path | None:
    """A data folder named in a result file, as recorded or relative to an input folder."""
    if "\x00" in data:
        return None
    path = Path(data)
    candidates = [path] if path.is_absolute() else [path, *(i / path for i in inputs)]
    return next((c for c in candidates if c.is_dir()), None)


def _same_folder(data: str, folder: Path, inputs: Sequence[Path]) -> bool:
    found = _resolve_data(data, inputs)
    return found is not None and found.resolve() == folder.resolve()


# --------------------------------------------------------------------------- the report


def report(inputs: Sequence[str | Path], out: str | Path, *, title: str = "fakeseg audit",
           max_images: int = 24, display_px: int = 480) -> Path:
    """Write one self-contained HTML report of every fakeseg result under ``inputs``.

    Sections appear only for results that exist; each shows how to read it and the config
    and versions that produced it. Images are embedded at their own resolution (up to 2048 px
    wide), shown ``display_px`` wide in the image cards, and open full size inside the page.
    Only files inside the result folder being shown are embedded or linked. Written
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
    sections_found = [f for f in found if f.kind in KINDS]
    if not sections_found:
        raise FakesegError(
            f"no fakeseg results under {', '.join(map(str, inputs))} (looked for results.jsonl,"
            " featdiff.json, fingerprint.json, attack.json, metrics.json, an fid JSON, "
            "results.json + test_split.json, config.yaml or config.json + history.json); point "
            "at run, predict, evaluate, fingerprint, fid, featdiff, classify or experiment "
            "folders")
    emb = Embedder(out, display_px)
    builders: dict[str, Callable[[Path], Part]] = {
        "predictions": lambda f: _predictions(f, emb, max_images),
        "featdiff": lambda f: _featdiff(f, emb), "fingerprints": lambda f: _fingerprints(f, emb),
        "attacks": lambda f: _attacks(f, emb), "evaluation": lambda f: _evaluation(f, emb),
        "detection": lambda f: _detection(f, emb), "training": lambda f: _training(f, emb),
        "fid": lambda f: _fid(f, emb), "composition": lambda f: _composition(f, emb),
        "classifier": lambda f: _classifier(f, emb),
        enhance_section.KIND: lambda f: Part(*_section(enhance_section.render(f, emb))),
    }
    sections: list[str] = []
    toc: list[str] = []
    parts: list[Part] = []
    number = 0
    for kind in KINDS:
        folders = [f.folder for f in sections_found if f.kind == kind]
        if not folders:
            continue
        number += 1
        subs, sub_toc = [], []
        for i, folder in enumerate(folders, 1):
            sub_id = f"{kind}-{i}"
            try:
                part = builders[kind](folder)
            except (OSError, ValueError, KeyError, TypeError, AttributeError,
                    RecursionError) as exc:  # one unreadable result never stops the report
                report_warning(f"could not read {folder} ({kind}): {exc}")
                part = Part(T.warn_box(f"could not read this result: {type(exc).__name__}: "
                                       f"{exc}"))
            parts.append(part)
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
    roots = [Path(i) for i in inputs]
    subtitle = (f'<p class="meta">{len(sections_found)} result folder(s) from '
                f"{T.esc(', '.join(_display_path(r, out) for r in roots))} · generated "
                f"{T.esc(when)} by fakeseg {T.esc(__version__)}</p>")
    random = [r for p in parts for r in p.random]
    if random:
        subtitle += (f'<p class="banner">RANDOM backbone weights in: {T.esc("; ".join(random))}.'
                     " Those results come from an untrained feature extractor.</p>")
    subtitle += _glance(parts, [f.folder for f in found if f.kind == "dataset"], roots, out)
    toc_html = f'<nav class="toc"><b>Contents</b><ol>{"".join(toc)}</ol></nav>'
    write_text(out, T.page(title, subtitle, toc_html, "\n".join(sections)))
    return out


def _section(section: enhance_section.EnhanceSection) -> tuple[str, list[str]]:
    return section.html, section.glance


def _glance(parts: Sequence[Part], datasets: Sequence[Path], roots: Sequence[Path],
            out: Path) -> str:
    audited = _audit_html([a for p in parts for a in p.audited], datasets, roots, out)
    numbers = "".join(f"<li>{g}</li>" for p in parts for g in p.glance)
    failures = [f for p in parts for f in p.failures]
    html = '<div class="glance"><b>At a glance</b>'
    if audited:
        html += f"<p>What was audited:</p><ul>{audited}</ul>"
    if numbers:
        html += ("<p>Headline numbers (each exactly as in its table below):</p>"
                 f"<ul>{numbers}</ul><p class=\"note\">{T.esc(THRESHOLD_STORY)}</p>")
    if failures:
        html += ("<p>Where the model fails: worst test images of "
                 + ", ".join(f'<a href="#{a}">{T.esc(label)}</a>' for a, label in failures)
                 + ".</p>")
    return html + "</div>"


def _display_path(path: Path, out: Path) -> str:
    """A folder as the reader should see it: relative to the report when that is shorter."""
    try:
        rel = os.path.relpath(path.resolve(), out.resolve().parent)
    except (OSError, ValueError):  # another drive, or a name no file system accepts
        return str(path)
    return rel if len(rel) < len(str(path)) else str(path)
