"""Per-layer feature-discrepancy views across backbones (seed 001's evaluation protocol).

For every pair, backbone and tapped layer: the discrepancy map D = mean_c |F(R) − F(S)| (the
very definition FakeSegment trains on, from :func:`fakeseg.features.target.discrepancy_maps`)
overlaid on the synthetic image, the MSE between the activations and their SSIM. A grid per
pair and a table aggregated over pairs make the layers and backbones comparable at a glance.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.data.pairs import Pair
from fakeseg.errors import FakesegError, Skipped
from fakeseg.features.backbones import FeatureExtractor
from fakeseg.features.trunks import Trunk
from fakeseg.numbers import fmt, fmt_mean_std, mean_std
from fakeseg.progress import progress_bar, warn
from fakeseg.viz import new_figure, overlay, save_figure

DEFAULT_BACKBONES: tuple[str, ...] = ("ssdlite_mobilenet_v2", "efficientnet_lite0")
SSIM_MAX_WIN = 7
MSE_DEFINITION = ("MSE = mean over channels and positions of (F(R) − F(S))², at the layer's "
                  "native resolution")
SSIM_DEFINITION = (
    "SSIM = mean over channels of skimage structural_similarity on each channel's (h, w) map "
    f"of F(R) vs F(S): uniform window of min({SSIM_MAX_WIN}, largest odd ≤ min(h, w)), "
    "data_range = max − min of that channel over both maps; channels constant in both maps "
    "are skipped; maps smaller than 3×3 get no SSIM (null)"
)
MAP_DEFINITION = ("D = mean_c |F(R) − F(S)| (FakeSegment's target, one layer), bilinearly "
                  "upsampled to the image; each overlay is scaled by its own 99th percentile")
READING = ("Lower MSE and higher SSIM: the backbone sees the synthetic image more like the "
           "real one. MSE is in each layer's own feature units, so compare it across pairs, not "
           "across layers or backbones; SSIM is scale-free.")
RANDOM_WARNING = ("RANDOM WEIGHTS: features of an untrained network; the maps and numbers say "
                  "nothing about realism")


# --------------------------------------------------------------------------- metrics


def activation_mse(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Mean over (C, h, w) of (F(R) − F(S))²."""
    diff = np.asarray(real, np.float64) - np.asarray(synthetic, np.float64)
    return float(np.mean(diff * diff))


@dataclass(frozen=True)
class SsimResult:
    """SSIM of two (C, h, w) activations, reduced over channels (see SSIM_DEFINITION)."""

    value: float | None
    n_channels: int  # channels that entered the mean
    n_constant: int  # channels skipped because both maps are constant
    win_size: int | None
    note: str = ""


def ssim_window(height: int, width: int) -> int | None:
    """min(7, largest odd ≤ min(h, w)); None for maps smaller than 3×3."""
    side = min(height, width)
    if side < 3:
        return None
    return min(SSIM_MAX_WIN, side if side % 2 else side - 1)


def activation_ssim(real: np.ndarray, synthetic: np.ndarray) -> SsimResult:
    """Per-channel SSIM of (C, h, w) activations, averaged over the non-constant channels."""
    from skimage.metrics import structural_similarity

    real = np.asarray(real, np.float64)
    synthetic = np.asarray(synthetic, np.float64)
    height, width = real.shape[-2:]
    win = ssim_window(height, width)
    if win is None:
        return SsimResult(None, 0, 0, None, f"map {width}x{height} is smaller than 3x3")
    values: list[float] = []
    constant = 0
    for a, b in zip(real, synthetic, strict=True):
        low, high = min(a.min(), b.min()), max(a.max(), b.max())
        if high - low <= 0:
            constant += 1
            continue
        values.append(float(structural_similarity(a, b, win_size=win, data_range=high - low)))
    if not values:
        return SsimResult(None, 0, constant, win, "every channel is constant in both maps")
    return SsimResult(float(np.mean(values)), len(values), constant, win)


# --------------------------------------------------------------------------- inputs


def resolve_pairs(real: str | Path | None, synthetic: str | Path | None,
                  pairs_root: str | Path | None = None) -> tuple[list[Pair], list[str]]:
    """Pairs from two files, two folders (matched by stem) or a dataset root; plus problems."""
    from fakeseg.data.pairs import REAL_DIR, SYNTHETIC_DIR, index_pairs, pair_folders

    if pairs_root is not None:
        if real is not None or synthetic is not None:
            raise FakesegError("give either --pairs DATASET or --real and --synthetic, not both")
        index = index_pairs(pairs_root)
        return index.pairs, [str(p) for p in index.problems]
    if real is None or synthetic is None:
        raise FakesegError("give --real and --synthetic (two files or two folders), or --pairs")
    real, synthetic = Path(real), Path(synthetic)
    for path in (real, synthetic):
        if not path.exists():
            raise FakesegError(f"{path}: no such file or folder; check the path")
    if real.is_file() and synthetic.is_file():
        return [Pair(synthetic.stem, real, synthetic)], []
    if not (real.is_dir() and synthetic.is_dir()):
        raise FakesegError(f"{real} and {synthetic}: give two image files or two folders, "
                           "not one of each")
    if (real.parent.resolve() == synthetic.parent.resolve() and real.name == REAL_DIR
            and synthetic.name == SYNTHETIC_DIR):
        return resolve_pairs(None, None, real.parent)
    index = pair_folders(real, synthetic)
    return index.pairs, [str(p) for p in index.problems]


def fit_long_side(images: Sequence[np.ndarray], max_side: int | None
                  ) -> tuple[list[np.ndarray], float]:
    """Downscale images whose long side exceeds ``max_side``; returns them and the factor."""
    height, width = images[0].shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return list(images), 1.0
    from skimage.transform import resize

    factor = max_side / max(height, width)
    shape = (max(round(height * factor), 1), max(round(width * factor), 1), 3)
    return [resize(im, shape, order=1, anti_aliasing=True).astype(np.float32)
            for im in images], factor


# --------------------------------------------------------------------------- backbones

#: Trunks (``features/trunks.py``; what ``fakeseg classify train`` trains) whose layers a
#: registered backbone already taps: trunk → (that backbone, the name its plan gives the
#: trunk's body: "" = the plan addresses the body's own modules).
CLASSIFIER_TAPS: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("ssdlite_mobilenet_v2", ""),  # torchvision MobileNetV2 ``features.*``
    "efficientnet_lite0": ("efficientnet_lite0", "trunk"),  # timm ``conv_stem``, ``blocks.*``
}


class _Recorder(torch.nn.Module):
    """Calls an extractor and keeps its activations, so D and the metrics share one pass."""

    def __init__(self, extractor: FeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.features: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.features = self.extractor(x)
        return self.features


def _layers_for(key: str, available: Sequence[str],
                layers: Mapping[str, Sequence[str] | str] | None) -> Sequence[str] | None:
    """The taps asked for ``key`` (or ``"*"``); "all" → ``available``; None → the defaults."""
    wanted = None if layers is None else layers.get(key, layers.get("*"))
    if wanted is None:
        return None
    if wanted == "all" or (not isinstance(wanted, str) and list(wanted) == ["all"]):
        return available
    return wanted  # a list, or a comma-separated string that check_layers splits


@dataclass
class TappedNetwork:
    """A network other than a registered backbone, already tapped like one: e.g. the trunk of
    a classifier trained by ``fakeseg classify train`` (``fakeseg.featdiff`` and the CLI load
    run folders into these)."""

    name: str
    extractor: FeatureExtractor
    record: dict[str, Any]  # featdiff.json's backbone record (see :func:`backbone_record`)


def tap_trunk(trunk: Trunk, layers: Sequence[str] | str | None = None,
              *, source: str = "") -> FeatureExtractor:
    """A pooled-feature trunk tapped at the layers the registered backbone over the same
    network defines (its SSDLite extra blocks are not part of a trunk).

    ``layers``: those taps, "all", or None for the backbone's default taps. ``source`` names
    the trunk's origin (a checkpoint) in errors.
    """
    from fakeseg.features import get_spec

    origin = f"{source}: " if source else ""
    if trunk.name not in CLASSIFIER_TAPS:
        raise FakesegError(
            f"{origin}a network on trunk '{trunk.name}', whose layers no registered backbone "
            f"taps; featdiff can tap trunks {', '.join(CLASSIFIER_TAPS)}")
    spec_name, prefix = CLASSIFIER_TAPS[trunk.name]
    spec = get_spec(spec_name)
    infos = [info for info in spec.layer_infos if info.pretrained]  # the trunk's own layers
    taps = [info.name for info in infos]
    wanted = _layers_for("*", taps, None if layers is None else {"*": layers})
    chosen = spec.check_layers(wanted)
    outside = [t for t in chosen if t not in taps]
    if outside:
        raise FakesegError(f"{origin}layers {', '.join(outside)} are not in a {trunk.name} "
                           f"trunk; choose from {', '.join(taps)}")
    plan = [stage for stage in spec.plan if stage.tap in taps]
    body: torch.nn.Module = trunk.body
    if prefix:  # the backbone's plan addresses the same modules one level down
        body = torch.nn.Module()
        body.add_module(prefix, trunk.body)
    return FeatureExtractor(spec.name, body, plan, infos, chosen, mean=spec.mean, std=spec.std,
                            weights_tag=trunk.weights_tag, prune=False)


def build_backbones(names: Sequence[str | TappedNetwork], weights: str,
                    layers: Mapping[str, Sequence[str] | str] | None, device: torch.device
                    ) -> tuple[dict[str, FeatureExtractor], dict[str, dict[str, Any]]]:
    """Extractors by name, plus a record per backbone (weights tag, or why it was skipped).

    A :class:`TappedNetwork` is taken as it is (``weights`` and ``layers`` do not apply).
    In ``auto`` mode a backbone without weights is skipped with a warning; if none is left,
    that is an error. Unknown names and layers always raise.
    """
    from fakeseg.features import build_extractor, get_spec

    extractors: dict[str, FeatureExtractor] = {}
    records: dict[str, dict[str, Any]] = {}
    for raw_name in names:
        if isinstance(raw_name, TappedNetwork):
            if raw_name.name in records:
                raise FakesegError(f"backbone name '{raw_name.name}' is given twice")
            extractors[raw_name.name] = raw_name.extractor.to(device)
            records[raw_name.name] = raw_name.record
            continue
        if Path(raw_name).exists():
            raise FakesegError(f"{raw_name}: a path, not a backbone name; classifier run "
                               "folders are read by 'fakeseg featdiff' and fakeseg.featdiff")
        spec = get_spec(raw_name)
        chosen = spec.check_layers(_layers_for(spec.name, spec.available_layers, layers))
        try:
            extractor = build_extractor(spec.name, weights=weights, layers=chosen)
        except FakesegError as exc:
            if weights != "auto":
                raise
            warn(f"featdiff: skipping {spec.name}: {exc}")
            records[spec.name] = {"status": "skipped", "reason": str(exc)}
            continue
        extractors[spec.name] = extractor.to(device)
        if extractor.weights_tag == "random":
            warn(f"featdiff: {spec.name} uses {RANDOM_WARNING}")
        records[spec.name] = backbone_record(extractor, random_init=[
            t for t in extractor.layers if not spec.layer(t).pretrained])
    if not extractors:
        reasons = "; ".join(f"{n}: {r['reason']}" for n, r in records.items())
        raise FakesegError(f"no backbone could be built ({reasons})")
    return extractors, records


def backbone_record(extractor: FeatureExtractor, random_init: Sequence[str] = ()
                    ) -> dict[str, Any]:
    """featdiff.json's record of a built extractor (``random_init``: its untrained taps)."""
    random = extractor.weights_tag == "random"
    return {"status": "ok", "kind": "backbone", "weights_tag": extractor.weights_tag,
            "random_weights": random, "warning": RANDOM_WARNING if random else None,
            "layers": list(extractor.layers), "strides": dict(extractor.strides),
            "channels": dict(extractor.channels), "random_init_layers": list(random_init)}


# --------------------------------------------------------------------------- one pair


@dataclass
class Cell:
    """One (backbone, layer) result of one pair: the metrics and the native-resolution map."""

    backbone: str
    layer: str
    stride: int
    mse: float
    ssim: SsimResult
    map: np.ndarray  # D at the layer's resolution, float32 (h, w)
    random_init: bool = False  # a layer no shipped weight file trains (SSDLite extras)

    def to_json(self, files: Mapping[str, Any]) -> dict[str, Any]:
        """featdiff.json's record; ``files``: display_scale_p99, overlay_png, map_npy."""
        return {"mse": self.mse, "ssim": self.ssim.value, "ssim_channels": self.ssim.n_channels,
                "ssim_constant_channels": self.ssim.n_constant, "ssim_win_size": self.ssim.win_size,
                "ssim_note": self.ssim.note, "stride": self.stride,
                "map_shape": list(self.map.shape), "random_init": self.random_init, **files}


@dataclass
class PairViews:
    """Every backbone's cells for one pair, at the size they were computed."""

    pair: Pair
    size: tuple[int, int]  # (width, height) of the synthetic file
    processed_size: tuple[int, int]  # after fit_long_side
    downscale_factor: float
    cells: list[Cell]


def pair_cells(extractors: Mapping[str, FeatureExtractor], real: np.ndarray,
               synthetic: np.ndarray, device: torch.device,
               random_init: Mapping[str, Sequence[str]] | None = None) -> list[Cell]:
    """Maps and metrics of one (already size-matched) pair for every backbone."""
    from fakeseg.features.target import discrepancy_maps, to_batch

    real_t, synthetic_t = to_batch(real, device), to_batch(synthetic, device)
    cells: list[Cell] = []
    for name, extractor in extractors.items():
        recorder = _Recorder(extractor)
        maps = discrepancy_maps(recorder, real_t, synthetic_t)
        for layer in extractor.layers:
            feats = recorder.features[layer].float().cpu().numpy()
            cells.append(Cell(
                backbone=name, layer=layer, stride=extractor.strides[layer],
                mse=activation_mse(feats[0], feats[1]), ssim=activation_ssim(feats[0], feats[1]),
                map=maps[layer].cpu()[0, 0].numpy().astype(np.float32),
                random_init=layer in (random_init or {}).get(name, ()),
            ))
    return cells


def cell_overlay(cell: Cell, synthetic: np.ndarray) -> tuple[np.ndarray, float]:
    """The cell's map upsampled onto the synthetic image, scaled by its 99th percentile."""
    from fakeseg.features.target import heat_map

    up = heat_map({cell.layer: torch.from_numpy(cell.map)[None, None]}, synthetic.shape[:2])
    scale = float(np.percentile(up, 99)) or 1.0
    return overlay(synthetic, up / scale), scale


def draw_grid(stem: str, real: np.ndarray, synthetic: np.ndarray, cells: Sequence[Cell],
              overlays: Sequence[np.ndarray], backbones: Sequence[str], tags: Mapping[str, str],
              path: Path) -> Path:
    """Inputs on top; below, rows = layers (shallow → deep), columns = backbones."""
    drawn = list(zip(cells, overlays, strict=True))
    columns = {b: [(c, o) for c, o in drawn if c.backbone == b] for b in backbones}
    n_cols, n_rows = len(backbones), max(len(v) for v in columns.values())
    figure = new_figure(3.4 * max(n_cols, 2), 3.2 * (n_rows + 1))
    grid = figure.add_gridspec(n_rows + 1, 2 * n_cols)
    for k, (label, image) in enumerate((("real", real), ("synthetic", synthetic))):
        ax = figure.add_subplot(grid[0, k * n_cols:(k + 1) * n_cols])
        ax.imshow(image)
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    for col, backbone in enumerate(backbones):
        random = tags[backbone] == "random"
        for row, (cell, picture) in enumerate(columns[backbone]):
            ax = figure.add_subplot(grid[row + 1, 2 * col:2 * col + 2])
            ax.imshow(picture)
            ax.set_title(f"{backbone} · {cell.layer} (stride {cell.stride})"
                         f"{' · random-init layer' if cell.random_init and not random else ''}"
                         f"{' · RANDOM WEIGHTS' if random else ''}\n"
                         f"MSE {fmt(cell.mse)} · SSIM {fmt(cell.ssim.value, 3)}", fontsize=8,
                         color="crimson" if random else "black")
            ax.axis("off")
    weights = "weights: " + ", ".join(f"{b} = {tags[b]}" for b in backbones)
    lines = [f"{stem}: |F(R) − F(S)| per layer, overlaid on the synthetic image",
             "columns = backbones, rows = layers (shallow → deep); bright = features differ; "
             "each cell scaled by its own 99th percentile",
             *textwrap.wrap(weights, int(figure.get_figwidth() * 13))]
    figure.suptitle("\n".join(lines), fontsize=8)
    return save_figure(figure, path)


# --------------------------------------------------------------------------- tables


def summarize(pairs: Sequence[PairViews], records: Mapping[str, Mapping[str, Any]]
              ) -> list[dict[str, Any]]:
    """One row per (backbone, layer): MSE and SSIM as mean and std (ddof=1) over pairs."""
    rows = []
    for backbone, record in records.items():
        if record["status"] != "ok":
            continue
        for layer in record["layers"]:
            values = [c for p in pairs for c in p.cells
                      if c.backbone == backbone and c.layer == layer]
            mse_mean, mse_std = mean_std([c.mse for c in values])
            ssims = [c.ssim.value for c in values if c.ssim.value is not None]
            ssim_mean, ssim_std = mean_std(ssims)
            rows.append({"backbone": backbone, "layer": layer,
                         "random_init": layer in record["random_init_layers"],
                         "stride": record["strides"][layer],
                         "channels": record["channels"][layer],
                         "weights_tag": record["weights_tag"], "n_pairs": len(values),
                         "mse_mean": mse_mean, "mse_std": mse_std, "ssim_mean": ssim_mean,
                         "ssim_std": ssim_std, "ssim_n_pairs": len(ssims)})
    return rows


CSV_COLUMNS = ("backbone", "layer", "stride", "channels", "weights_tag", "random_init",
               "n_pairs", "mse_mean", "mse_std", "ssim_mean", "ssim_std", "ssim_n_pairs")


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    return fmt_mean_std(mean, std, digits)


def rows_markdown(rows: Sequence[Mapping[str, Any]], records: Mapping[str, Mapping[str, Any]],
                  n_pairs: int) -> str:
    lines = [f"# Feature discrepancy per layer ({n_pairs} pair{'s' * (n_pairs != 1)})", ""]
    for name, record in records.items():
        if record["status"] != "ok":
            lines.append(f"- **{name}: skipped** ({record['reason']})")
        elif record.get("kind") == "classifier":
            lines.append(f"- {name}: the {record['trunk']} trunk of a classifier trained by "
                         f"`fakeseg classify train` (`{record['checkpoint']}`, started from "
                         f"`{record['trunk_init_weights']}` weights)")
        elif record["random_weights"]:
            lines.append(f"- **{name}: {RANDOM_WARNING}**")
        else:
            lines.append(f"- {name}: weights `{record['weights_tag']}`")
    lines += ["", "| backbone | layer | stride | MSE | SSIM |", "|---|---|---|---|---|"]
    for row in rows:
        layer = f"{row['layer']} (random-init)" if row["random_init"] else row["layer"]
        lines.append(f"| {row['backbone']} | {layer} | {row['stride']} | "
                     f"{_pm(row['mse_mean'], row['mse_std'], 4)} | "
                     f"{_pm(row['ssim_mean'], row['ssim_std'], 3)} |")
    notes = [f"Mean ± std over pairs; – = not defined. {MSE_DEFINITION}. {SSIM_DEFINITION}. "
             f"{READING}"]
    if any(row["random_init"] for row in rows):
        notes.append("(random-init): a layer no shipped weight file trains (SSDLite extra "
                     "blocks, random-init and frozen): its discrepancy is not learned.")
    lines += ["", "\n\n".join(notes), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


@dataclass
class FeatdiffResult:
    """What :func:`featdiff` computes; :func:`save_featdiff` writes it.

    Holds the metrics and each layer's native-resolution map, not the images: the overlays and
    grids are drawn from the input files when the result is saved.
    """

    config: dict[str, Any]
    backbones: dict[str, dict[str, Any]]  # name → record (weights, layers; or why skipped)
    pairs: list[PairViews]
    skipped: list[Skipped]  # pairs that could not be read (by stem)
    input_problems: list[str]
    summary: list[dict[str, Any]]  # one row per (backbone, layer), over pairs

    @property
    def weights_tags(self) -> dict[str, str]:
        return {n: r["weights_tag"] for n, r in self.backbones.items() if r["status"] == "ok"}

    @property
    def random_weights(self) -> list[str]:
        return sorted(n for n, r in self.backbones.items() if r.get("random_weights"))

    @property
    def definitions(self) -> dict[str, str]:
        return {"map": MAP_DEFINITION, "mse": MSE_DEFINITION, "ssim": SSIM_DEFINITION,
                "reading": READING,
                "aggregate": "mean and sample std (ddof=1) over pairs; std null for one pair; "
                             "SSIM over the pairs where it is defined"}


def featdiff(real: str | Path | None, synthetic: str | Path | None, *,
             pairs: str | Path | None = None,
             backbones: Sequence[str | TappedNetwork] = DEFAULT_BACKBONES, weights: str = "auto",
             layers: Mapping[str, Sequence[str] | str] | None = None,
             allow_resize: bool = False, max_side: int | None = 768, device: str = "auto",
             progress: bool = True) -> FeatdiffResult:
    """Per-layer discrepancy maps, MSE and SSIM of each pair under each backbone (computed,
    not saved: see :func:`save_featdiff`).

    Inputs: two image files, two folders (pairs match by file stem) or ``pairs=DATASET`` with
    ``real/`` and ``synthetic/``. ``backbones``: registered names and/or
    :class:`TappedNetwork` entries (``fakeseg.featdiff`` turns classifier run folders from
    ``fakeseg classify train`` into these). ``layers`` maps a backbone name (or ``"*"``) to
    its taps or ``"all"``; unnamed backbones use their default taps. A pair that cannot be
    read is skipped.
    """
    from fakeseg.data.pairs import load_pair
    from fakeseg.device import resolve_device

    if isinstance(backbones, str):
        backbones = [b.strip() for b in backbones.split(",") if b.strip()]
    if not backbones:
        raise FakesegError("no backbones given; name at least one (see 'fakeseg weights')")
    if max_side is not None and max_side < 32:
        raise FakesegError(f"max_side {max_side} is too small; use at least 32 (or None)")
    torch_device = resolve_device(device)
    pair_list, problems = resolve_pairs(real, synthetic, pairs)
    extractors, records = build_backbones(backbones, weights, layers, torch_device)
    random_init = {n: r["random_init_layers"] for n, r in records.items() if r["status"] == "ok"}
    done: list[PairViews] = []
    skipped: list[Skipped] = []
    for pair in progress_bar(pair_list, desc="featdiff", unit="pair", enabled=progress):
        try:
            loaded = load_pair(pair, allow_resize=allow_resize)
            (real_im, synthetic_im), factor = fit_long_side([loaded.real, loaded.synthetic],
                                                            max_side)
            cells = pair_cells(extractors, real_im, synthetic_im, torch_device, random_init)
        except FakesegError as exc:
            skipped.append(Skipped(pair.stem, str(exc)))
            warn(f"featdiff: skipped pair {skipped[-1]}")
            continue
        height, width = loaded.synthetic.shape[:2]
        done.append(PairViews(pair, (width, height),
                              (synthetic_im.shape[1], synthetic_im.shape[0]), factor, cells))
    if not done:
        first = str(skipped[0]) if skipped else "no pairs"
        raise FakesegError(f"no pair could be processed (first problem: {first})")
    config = {"real": None if real is None else str(real),
              "synthetic": None if synthetic is None else str(synthetic),
              "pairs": None if pairs is None else str(pairs),
              "backbones": [b.name if isinstance(b, TappedNetwork) else b for b in backbones],
              "weights": weights,
              "layers": {b: r["layers"] for b, r in records.items() if r["status"] == "ok"},
              "allow_resize": allow_resize, "max_side": max_side, "device": str(torch_device)}
    return FeatdiffResult(config, records, done, skipped, problems, summarize(done, records))


def save_featdiff(result: FeatdiffResult, out: str | Path, *,
                  progress: bool = True) -> dict[str, Path]:
    """``pairs/<stem>/`` maps (.npy) and overlays, ``grid_<stem>.png``, ``featdiff.csv``,
    ``featdiff.md`` and ``featdiff.json`` under ``out``; returns the files by role."""
    from fakeseg.config import versions
    from fakeseg.data.pairs import load_pair
    from fakeseg.io import write_csv, write_image, write_json, write_npy, write_text

    out = Path(out)
    allow_resize, max_side = result.config["allow_resize"], result.config["max_side"]
    tags, names = result.weights_tags, list(result.weights_tags)
    pair_records: list[dict[str, Any]] = []
    for views in progress_bar(result.pairs, desc="drawing", unit="pair", enabled=progress):
        loaded = load_pair(views.pair, allow_resize=allow_resize)
        (real_im, synthetic_im), _ = fit_long_side([loaded.real, loaded.synthetic], max_side)
        folder = out / "pairs" / views.pair.stem
        layers: dict[str, dict[str, Any]] = {b: {} for b in names}
        overlays = []
        for cell in views.cells:
            picture, scale = cell_overlay(cell, synthetic_im)
            overlays.append(picture)
            stem = f"{cell.backbone}__{cell.layer}".replace(":", "_")
            layers[cell.backbone][cell.layer] = cell.to_json({
                "display_scale_p99": scale,
                "overlay_png": str(write_image(folder / f"{stem}.png", picture)),
                "map_npy": str(write_npy(folder / f"{stem}.npy", cell.map))})
        grid = draw_grid(views.pair.stem, real_im, synthetic_im, views.cells, overlays, names,
                         tags, out / f"grid_{views.pair.stem}.png")
        pair_records.append({
            "stem": views.pair.stem, "real": str(views.pair.real),
            "synthetic": str(views.pair.synthetic), "size": list(views.size),
            "processed_size": list(views.processed_size),
            "downscale_factor": views.downscale_factor, "grid": str(grid), "layers": layers})
    files = {"csv": write_csv(out / "featdiff.csv", CSV_COLUMNS, result.summary),
             "markdown": write_text(out / "featdiff.md", rows_markdown(
                 result.summary, result.backbones, len(result.pairs)))}
    payload: dict[str, Any] = {
        "title": "feature discrepancy per layer", "config": result.config,
        "definitions": result.definitions, "backbones": result.backbones,
        "weights_tags": tags, "random_weights": result.random_weights, "versions": versions(),
        "summary": result.summary, "pairs": pair_records,
        "skipped": [s.to_json() for s in result.skipped], "input_problems": result.input_problems,
        "files": {"csv": str(files["csv"]), "markdown": str(files["markdown"]),
                  "grids": [p["grid"] for p in pair_records],
                  "json": str(out / "featdiff.json")},
    }
    files["json"] = write_json(out / "featdiff.json", payload)
    return files


__all__ = [
    "CLASSIFIER_TAPS",
    "DEFAULT_BACKBONES",
    "FeatdiffResult",
    "SsimResult",
    "TappedNetwork",
    "activation_mse",
    "activation_ssim",
    "backbone_record",
    "featdiff",
    "resolve_pairs",
    "save_featdiff",
    "ssim_window",
    "tap_trunk",
]
