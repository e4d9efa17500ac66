"""The verbs a notebook needs, importable as ``fakeseg.<verb>``::

    import fakeseg
    run = fakeseg.train("data/", "runs/a", steps=300)          # -> TrainResult
    fakeseg.train_masked("images/", "masks/", "runs/b")        # -> TrainResult (Task B)
    model = fakeseg.load("runs/a")                             # -> Localizer
    heat = model.predict("render.png")                         # -> HeatMap
    fakeseg.predict(model, ["renders/"], "out/")               # -> PredictSummary
    fakeseg.evaluate(model, "data/", "eval/")                  # -> Evaluation
    fakeseg.evaluate_masks(model, "images/", "masks/", "eval/") # -> Evaluation
    fp = fakeseg.fingerprint(real_paths, synthetic_paths)      # -> Fingerprint (fp.save(dir))
    fakeseg.featdiff("real.png", "render.png", "views/")       # -> FeatdiffResult
    fakeseg.reporting(["runs/a", "out/", "eval/"], "report.html") # -> Path

Each verb is the same function the CLI command of that name calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeseg.config import TrainConfig
    from fakeseg.evaluation.evaluate import Evaluation
    from fakeseg.features.featdiff import FeatdiffResult, TappedNetwork
    from fakeseg.inference.localizer import Localizer
    from fakeseg.inference.predict import PredictSummary
    from fakeseg.spectral.fingerprint import Fingerprint
    from fakeseg.training.trainer import TrainResult


def load(run: str | Path, *, device: str = "auto", backend: str | None = None) -> Localizer:
    """A trained model from a run folder, checkpoint or exported ONNX file; ``backend`` is
    ``torch`` or ``onnx`` (see :meth:`Localizer.load`)."""
    from fakeseg.inference.localizer import Localizer

    return Localizer.load(run, device=device, backend=backend)


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


def train_masked(images: str | Path, masks: str | Path, out: str | Path,
                 config: TrainConfig | None = None, *, resume: bool = False,
                 progress: bool = True, invert_masks: bool = False, resize_masks: bool = False,
                 missing_mask: str = "error", **options: Any) -> TrainResult:
    """Train on images with ground-truth masks (MediaEval Task B) into the run folder ``out``;
    ``options`` override fields of ``config`` as in :func:`train` (``target_mode`` stays
    ``mask``). ``missing_mask="real"`` trains on images without a mask as all real."""
    import dataclasses

    from fakeseg.config import TrainConfig
    from fakeseg.data.masked import MaskOptions
    from fakeseg.training.masked import train_masked as run_training

    base = config or TrainConfig()
    merged = dataclasses.replace(base, **options) if options else base
    mask_options = MaskOptions(invert=invert_masks, resize=resize_masks,
                               missing=missing_mask)  # type: ignore[arg-type]
    return run_training(images, masks, out, merged, options=mask_options, resume=resume,
                        progress=progress)


def predict(model: str | Path | Localizer, inputs: Sequence[str | Path], out: str | Path,
            **options: Any) -> PredictSummary:
    """Heat maps, masks, overlays and score tables for files, folders or globs."""
    from fakeseg.inference.predict import predict as run_predict

    return run_predict(model, [str(p) for p in inputs], out, **options)


def evaluate(model: str | Path | Localizer, data: str | Path, out: str | Path | None = None,
             **options: Any) -> Evaluation:
    """Dice / IoU / AUC … on seeded composites of a paired dataset's held-out pairs; saved
    under ``out`` when it is given (see :func:`~fakeseg.evaluation.evaluate.evaluate_pairs`)."""
    from fakeseg.evaluation.evaluate import evaluate_pairs, save_evaluation

    result = evaluate_pairs(model, data, **options)
    if out is not None:
        save_evaluation(result, out)
    return result


def evaluate_masks(model: str | Path | Localizer, images: str | Path, masks: str | Path,
                   out: str | Path | None = None, **options: Any) -> Evaluation:
    """The same metrics on images with ground-truth masks (MediaEval Task B style); saved
    under ``out`` when given (see :func:`~fakeseg.evaluation.evaluate.evaluate_masks`)."""
    from fakeseg.evaluation.evaluate import evaluate_masks as run_evaluate_masks
    from fakeseg.evaluation.evaluate import save_evaluation

    result = run_evaluate_masks(model, images, masks, **options)
    if out is not None:
        save_evaluation(result, out)
    return result


def fingerprint(real: Sequence[str | Path], synthetic: Sequence[str | Path],
                **options: Any) -> Fingerprint:
    """FP(R, S) = mean log|T(S)| − mean log|T(R)| of two image sets (computed, not saved)."""
    from fakeseg.io import expand_inputs
    from fakeseg.spectral.fingerprint import compute_fingerprint

    return compute_fingerprint(expand_inputs([str(p) for p in real]),
                               expand_inputs([str(p) for p in synthetic]), **options)


def featdiff(real: str | Path | None, synthetic: str | Path | None,
             out: str | Path | None = None, **options: Any) -> FeatdiffResult:
    """Per-layer feature discrepancy (MSE, SSIM, maps) of pairs across backbones; views saved
    under ``out`` when it is given (see :func:`~fakeseg.features.featdiff.featdiff`).

    ``backbones`` may name run folders of ``fakeseg classify train`` beside registered
    backbones: each classifier's trained trunk is tapped like the backbone over the same
    network (:func:`~fakeseg.features.featdiff.tap_trunk`).
    """
    from fakeseg.features.featdiff import DEFAULT_BACKBONES, save_featdiff
    from fakeseg.features.featdiff import featdiff as run_featdiff

    names = options.pop("backbones", DEFAULT_BACKBONES)
    if isinstance(names, str):
        names = [b.strip() for b in names.split(",") if b.strip()]
    taken: set[str] = set()
    options["backbones"] = [classifier_backbone(n, options.get("layers"), taken)
                            if isinstance(n, str | Path) and Path(n).exists() else n
                            for n in names]
    result = run_featdiff(real, synthetic, **options)
    if out is not None:
        save_featdiff(result, out, progress=options.get("progress", True))
    return result


def classifier_backbone(path: str | Path, layers: Mapping[str, Any] | None = None,
                        taken: set[str] | None = None) -> TappedNetwork:
    """A ``fakeseg classify train`` run as a featdiff backbone named
    ``classifier:<run folder>`` (unique among ``taken``, which it extends). ``layers``:
    featdiff's mapping, keyed by ``str(path)`` or ``"*"``."""
    import re

    from fakeseg.features.featdiff import TappedNetwork, backbone_record, tap_trunk
    from fakeseg.models.classifier import load_classifier

    model, meta, folder = load_classifier(path)
    wanted = None if layers is None else layers.get(str(path), layers.get("*"))
    extractor = tap_trunk(model.trunk, wanted, source=str(folder))
    init = meta.get("weights_tag", "unknown")
    extractor.weights_tag = f"trained classifier ({init} init)"
    run = folder.parent if folder.name in ("best", "last") else folder
    base = "classifier:" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name)
    taken = set() if taken is None else taken
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    record = {**backbone_record(extractor), "kind": "classifier", "checkpoint": str(folder),
              "trunk": model.trunk.name, "trunk_init_weights": init,
              "trained_config": meta.get("config")}
    return TappedNetwork(name, extractor, record)


def report(inputs: Sequence[str | Path], out: str | Path, **options: Any) -> Path:
    """One self-contained HTML file of every fakeseg result found under ``inputs``."""
    from fakeseg.reporting import report as write_report

    return write_report(inputs, out, **options)


VERBS = ("load", "train", "predict", "evaluate", "evaluate_masks", "fingerprint", "featdiff",
         "report")
