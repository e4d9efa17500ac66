"""The detection methods by name: a family (one module each) plus preset options.

Importing this module is cheap (no torch): the CLI lists the names in its help. Families are
imported when a method is fitted or loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakeseg.detection.common import DETECTOR_KIND
from fakeseg.errors import FakesegError
from fakeseg.registry import Registry

if TYPE_CHECKING:
    from fakeseg.detection.common import Scorer

#: family → "module:class"
FAMILIES: dict[str, str] = {
    "probe": "fakeseg.detection.probe:ProbeScorer",
    "spectral": "fakeseg.detection.spectral:SpectralScorer",
    "npr": "fakeseg.detection.npr:NPRScorer",
    "cnn": "fakeseg.detection.cnn:CNNScorer",
    "ensemble": "fakeseg.detection.ensemble:EnsembleScorer",
}

#: method → (family, preset options); a user's options override the preset.
METHODS: Registry[tuple[str, dict[str, Any]]] = Registry("detection method",
                                                        normalize=lambda n: n.strip().lower())
for _name, _entry in (
    ("probe", ("probe", {})),
    ("probe_lite0", ("probe", {"trunks": "efficientnet_lite0"})),
    ("probe_concat", ("probe", {"trunks": "mobilenet_v2+efficientnet_lite0"})),
    ("spectral", ("spectral", {})),
    ("npr", ("npr", {})),
    ("cnn", ("cnn", {})),
    ("cnn_blurjpeg", ("cnn", {"augment": "flip,blur,jpeg"})),
    ("ensemble", ("ensemble", {})),
):
    METHODS.register(_name, _entry)

#: ``classify train``'s default. In the leave-one-generator-out benchmark on the CNNDetection
#: sample with its label-revealing frames cropped off (benchmarks/results/detection_logo_cropped)
#: no method is clearly ahead: LOGO mean ROC AUC 0.61–0.71 with bootstrap intervals that all
#: overlap (20 + 20 test images per generator); the probe (0.675) fits in seconds, ten times
#: faster than npr or the ensemble.
DEFAULT_METHOD = "probe"


def check_method(name: str) -> str:
    """The method name, or a one-line error with did-you-mean and the list."""
    METHODS[name]  # raises with did-you-mean
    return str(name).strip().lower()


def check_methods(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(check_method(n) for n in names))


def family_class(family: str) -> type[Scorer]:
    module, _, attr = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module), attr)


def method_family(name: str) -> str:
    return METHODS[check_method(name)][0]


def fit_method(name: str, train: Sequence[Any], val: Sequence[Any] = (),
               options: Mapping[str, Any] | None = None, *, progress: bool = False,
               **extra: Any) -> Scorer:
    """Fit method ``name`` on labelled items (``classify.LabeledImage``); ``val`` may be empty."""
    key = check_method(name)
    family, preset = METHODS[key]
    return family_class(family).fit(list(train), list(val), {**preset, **(options or {})},
                                    method=key, progress=progress, **extra)


def is_detector_folder(path: str | Path) -> bool:
    """True when ``path`` (a run or checkpoint folder) holds a non-CNN detection scorer."""
    import json

    from fakeseg.models.checkpoint import META_FILE

    path = Path(path)
    for folder in (path, path / "best"):
        meta = folder / META_FILE
        if meta.is_file():
            try:
                return json.loads(meta.read_text()).get("kind") == DETECTOR_KIND
            except (ValueError, UnicodeDecodeError, AttributeError):
                return False
    return False


def load_scorer(path: str | Path) -> Scorer:
    """A saved scorer from a run folder, its ``best/``, or a scorer folder (any family)."""
    from fakeseg.models.checkpoint import load_checkpoint

    state, meta, folder = load_checkpoint(path)
    if meta.get("kind") == DETECTOR_KIND:
        family = meta.get("family")
        if family not in FAMILIES:
            raise FakesegError(f"{folder}: unknown detection family '{family}'; was it saved "
                               "by a newer fakeseg?")
        return family_class(family).from_state(state, meta, folder)
    from fakeseg.detection.cnn import CNNScorer

    return CNNScorer.from_state(state, meta, folder)


@dataclass(frozen=True)
class DetectorRun:
    """What :func:`train_method` wrote: the run folder, its scorer and validation report."""

    run: Path
    best: Path
    method: str
    description: str
    n_train: int
    n_val: int
    val: dict[str, Any] | None  # image_report on the validation images, None without them


def train_method(data: Any, out: str | Path, method: str, *,
                 options: Mapping[str, Any] | None = None, seed: int = 0,
                 val_fraction: float = 0.2, source_pattern: str | None = None,
                 progress: bool = True) -> DetectorRun:
    """``classify train --method`` for the non-CNN families: fit on ``data`` (as
    ``data.labeled.load_labeled`` reads it) and write RUN/config.yaml, RUN/split.json and
    RUN/best/ (the scorer, which ``classify eval|predict`` read)."""
    import yaml

    from fakeseg.data.labeled import check_classes, load_labeled, split_items
    from fakeseg.evaluation.metrics import image_report
    from fakeseg.io import write_json, write_text

    key = check_method(method)
    run = Path(out)
    if (run / "best").exists():
        raise FakesegError(f"{run}: already holds a run; choose another --out")
    items = load_labeled(data, source_pattern=source_pattern)
    check_classes(items, data, ("real", "synthetic"))
    train, val = split_items(items, val_fraction, seed)
    write_json(run / "split.json", {
        "seed": seed, "val_fraction": val_fraction, "stratified_by": "label",
        "train": [i.to_json() for i in train], "val": [i.to_json() for i in val]})
    scorer = fit_method(key, train, val, {**(options or {}), "seed": seed}, progress=progress)
    report = None
    if val:
        report = image_report(scorer.score([i.path for i in val]), [i.label for i in val])
    write_text(run / "config.yaml", yaml.safe_dump(
        {"method": key, "data": str(data), "seed": seed, "val_fraction": val_fraction,
         "options": scorer.options, "source_pattern": source_pattern}, sort_keys=False))
    scorer.save(run / "best")
    return DetectorRun(run=run, best=run / "best", method=key, description=scorer.describe(),
                       n_train=len(train), n_val=len(val), val=report)
