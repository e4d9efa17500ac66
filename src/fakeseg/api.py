"""The verbs a notebook needs, importable as ``fakeseg.<verb>``::

    import fakeseg
    run = fakeseg.train("data/", "runs/a", steps=300)          # -> TrainResult
    model = fakeseg.load("runs/a")                             # -> Localizer
    heat = model.predict("render.png")                         # -> HeatMap
    fakeseg.predict(model, ["renders/"], "out/")               # -> PredictSummary
    fakeseg.evaluate(model, "data/", "eval/")                  # -> Evaluation
    fp = fakeseg.fingerprint(real_paths, synthetic_paths)      # -> Fingerprint (fp.save(dir))
    fakeseg.featdiff("real.png", "render.png", "views/")       # -> FeatdiffResult
    fakeseg.reporting(["runs/a", "out/", "eval/"], "report.html") # -> Path

Each verb is the same function the CLI command of that name calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeseg.config import TrainConfig
    from fakeseg.inference.localizer import Localizer
    from fakeseg.inference.predict import PredictSummary
    from fakeseg.spectral.fingerprint import Fingerprint
    from fakeseg.training.trainer import TrainResult


def load(run: str | Path, *, device: str = "auto") -> Localizer:
    """A trained model from a run folder or checkpoint (see :meth:`Localizer.load`)."""
    from fakeseg.inference.localizer import Localizer

    return Localizer.load(run, device=device)


def train(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
          resume: bool = False, progress: bool = True, **options: Any) -> TrainResult:
    """Train on a paired dataset into the run folder ``out``.

    ``options`` override fields of ``config`` (default :class:`~fakeseg.config.TrainConfig`),
    e.g. ``steps=200, model="catnet"``; they are validated like ``--set``.
    """
    import dataclasses

    from fakeseg.config import TrainConfig
    from fakeseg.training.segmentation import train as run_training

    base = config or TrainConfig()
    merged = dataclasses.replace(base, **options) if options else base
    return run_training(data, out, merged, resume=resume, progress=progress)


def predict(model: str | Path | Localizer, inputs: Sequence[str | Path], out: str | Path,
            **options: Any) -> PredictSummary:
    """Heat maps, masks, overlays and score tables for files, folders or globs."""
    from fakeseg.inference.predict import predict as run_predict

    return run_predict(model, [str(p) for p in inputs], out, **options)


def evaluate(model: str | Path | Localizer, data: str | Path, out: str | Path,
             **options: Any) -> Any:
    """Dice / IoU / AUC … on seeded composites of a paired dataset's held-out pairs."""
    from fakeseg.evaluation.evaluate import evaluate as run_evaluate

    return run_evaluate(model, data, out=out, **options)


def fingerprint(real: Sequence[str | Path], synthetic: Sequence[str | Path],
                **options: Any) -> Fingerprint:
    """FP(R, S) = mean log|T(S)| − mean log|T(R)| of two image sets (computed, not saved)."""
    from fakeseg.io import expand_inputs
    from fakeseg.spectral.fingerprint import compute_fingerprint

    return compute_fingerprint(expand_inputs([str(p) for p in real]),
                               expand_inputs([str(p) for p in synthetic]), **options)


def featdiff(real: str | Path, synthetic: str | Path, out: str | Path, **options: Any) -> Any:
    """Per-layer feature discrepancy views (MSE, SSIM, maps) of pairs across backbones."""
    from fakeseg.features.featdiff import featdiff as run_featdiff

    return run_featdiff(real, synthetic, out, **options)


def report(inputs: Sequence[str | Path], out: str | Path, **options: Any) -> Path:
    """One self-contained HTML file of every fakeseg result found under ``inputs``."""
    from fakeseg.reporting import report as write_report

    return write_report(inputs, out, **options)


VERBS = ("load", "train", "predict", "evaluate", "fingerprint", "featdiff", "report")
