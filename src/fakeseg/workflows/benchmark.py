"""``fakeseg benchmark``: train every method with one budget, score all on the same composites.

Every method goes through the same trainer, the same split (same seed), the same composites
and the same number of steps; the table carries the pair oracle (an upper reference that needs
the real image) and the trivial floors "all synthetic" and "all real", and, apart from them,
the seed paper's own Table 1 figures (other data) so a reader sees both without confusing them.
:func:`benchmark` trains and scores (a :class:`BenchmarkResult`); ``save_evaluation`` writes
its tables.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakeseg.config import TrainConfig, to_dict, upgraded
from fakeseg.data.pairs import Split, class_names, index_pairs, load_pair, load_split, save_split
from fakeseg.errors import FakesegError
from fakeseg.evaluation.evaluate import (
    SECTION_TITLES,
    Evaluation,
    section_slug,
    trivial_rows,
)
from fakeseg.evaluation.failures import failure_cases
from fakeseg.evaluation.protocol import (
    LayerMapCache,
    ProtocolConfig,
    Scorer,
    fit_oracle_scales,
    model_scorer,
    oracle_scorer,
    protocol_sets,
    score_items,
)
from fakeseg.progress import progress_bar, say

#: options that never change what a run learns: a run differing only in them is reused
HARDWARE = ("threads", "device")
DEFAULT_METHODS = ("fakesegment", "unet_rgb", "mantranet", "mag", "catnet")

#: The seed paper's Table 1 (Dice, its own test split): quoted, never measured here.
PAPER_TABLE1: dict[str, Any] = {
    "title": "reported in the paper, different data (not measured here)",
    "note": ("Seed 000 (FakeSegment), Table 1 \"Quantitative evaluation in terms of Dice "
             "coefficient\", on the test split of the paper's own landing dataset (classes "
             "runway and background). Other images, other training budget and protocol: set "
             "them beside the measured rows above only as a sense of scale, never as a "
             "comparison of numbers."),
    "columns": ["Dice runway", "Dice background", "Dice avg"],
    "rows": [
        {"method": "ManTraNet", "Dice runway": 0.38, "Dice background": 0.41, "Dice avg": 0.40},
        {"method": "MAG", "Dice runway": 0.25, "Dice background": 0.28, "Dice avg": 0.27},
        {"method": "FakeSegment", "Dice runway": 0.51, "Dice background": 0.49,
         "Dice avg": 0.50},
    ],
}


@dataclass
class BenchmarkResult:
    """The scored comparison (write it with ``save_evaluation(result.evaluation, out)``) and
    the run folder of every entry."""

    evaluation: Evaluation
    runs: dict[str, Path]


def default_protocol(base: TrainConfig) -> ProtocolConfig:
    """The composites a benchmark scores when none is given: seeded apart from training's."""
    return ProtocolConfig(seed=base.seed + 2024)


def check_trainable(model: str) -> None:
    """A one-line error unless ``model`` is a trainable registered model."""
    from fakeseg.models.registry import MODELS

    if not MODELS[model].trainable:
        raise FakesegError(f"'{model}' is not trained: every benchmark table already carries "
                           "it as a reference row; leave it out of the methods")


def method_config(base: TrainConfig, method: str) -> TrainConfig:
    """The base budget for one method; baselines learn the binary composite mask."""
    if method == "fakesegment":
        return dataclasses.replace(base, model="fakesegment")
    return dataclasses.replace(base, model=method, target_mode="mask", adv_weight=0.0)


def run_state(run_dir: Path, config: TrainConfig) -> tuple[str, float]:
    """("finished" | "partial" | "none", training seconds so far) of a run with this config.

    A run with another config, or an unreadable one, counts as "none" (it is retrained). A run
    that stopped early (patience or time budget) is finished.
    """
    try:
        meta = json.loads((run_dir / "last" / "model.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return "none", 0.0
    if not same_run_config(meta.get("config"), config):
        return "none", 0.0
    seconds = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
    done = int(meta.get("step", 0)) >= config.steps or stopped_early(history, config)
    return ("finished" if done else "partial"), seconds


def same_run_config(saved: Any, config: TrainConfig) -> bool:
    """Whether a saved run config is ``config`` up to the hardware options a resume may change
    (``threads``, ``device``): such a run is resumed or reused, not retrained."""
    if not isinstance(saved, dict):
        return False
    saved = upgraded(type(config), saved)  # older runs still match
    wanted = json.loads(json.dumps(to_dict(config)))
    return all(saved.get(k) == v for k, v in wanted.items() if k not in HARDWARE) and \
        set(saved) == set(wanted)


def stopped_early(history: Sequence[dict[str, Any]], config: TrainConfig) -> bool:
    """Whether a run's history ends by early stopping or by its time budget."""
    if not history:
        return False
    if config.minutes > 0 and float(history[-1].get("elapsed_s", 0.0)) >= 60 * config.minutes:
        return True
    scores = [float(h.get("val_f1_best", float("-inf"))) for h in history]
    best_epoch = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return bool(config.early_stopping) and len(scores) - 1 - best_epoch >= config.early_stopping


def train_entry(data: Path, run_dir: Path, config: TrainConfig, *, split: Split | None = None,
                label: str = "", progress: bool = True) -> float:
    """Train (or resume, or reuse when finished) one entry's run; its training seconds.

    ``split`` (a cross-validation fold) is written as the run's ``split.json`` before a fresh
    run starts, so the trainer uses it instead of drawing its own.
    """
    from fakeseg.training.segmentation import train

    state, seconds = run_state(run_dir, config)
    if split is not None and state != "none" and load_split(run_dir / "split.json") != split:
        state = "none"
    if state == "finished":
        if progress:
            say(f"[benchmark] {label}: reusing finished run {run_dir}")
        return seconds
    if state == "none" and run_dir.exists():
        shutil.rmtree(run_dir)  # a run of this entry with another config or split
    if split is not None and state == "none":
        save_split(split, run_dir / "split.json")
    if progress:
        verb = "resuming" if state == "partial" else "training"
        say(f"[benchmark] {label}: {verb} ({config.steps} steps)")
    result = train(data, run_dir, config, resume=state == "partial", progress=progress)
    return float(result.history[-1]["elapsed_s"]) if result.history else 0.0


def benchmark(data: str | Path, out: str | Path, *,
              entries: Sequence[tuple[str, TrainConfig]] | None = None,
              base: TrainConfig | None = None, methods: Sequence[str] = DEFAULT_METHODS,
              protocol: ProtocolConfig | None = None, oracle: bool = True,
              progress: bool = True) -> BenchmarkResult:
    """Train and score each (name, config) entry; default: FakeSegment + every baseline.

    Runs are trained (or resumed, or reused when finished) under ``out/runs/<name>``; the
    tables are computed, not written (see :func:`save_evaluation`).
    """
    from fakeseg.inference.localizer import Localizer

    out, data = Path(out), Path(data)
    base = (base or TrainConfig()).validate()
    entries = list(entries or [(m, method_config(base, m)) for m in methods])
    if len({name for name, _ in entries}) != len(entries):
        raise FakesegError("benchmark entries need distinct names")
    for _, config in entries:  # before any training: a typo must not cost the runs before it
        check_trainable(config.model)
    protocol = protocol or default_protocol(base)
    trained: list[tuple[str, Any, float, int]] = []
    for number, (name, config) in enumerate(entries, 1):
        run_dir = out / "runs" / name
        seconds = train_entry(data, run_dir, config, label=f"{number}/{len(entries)} {name}",
                              progress=progress)
        model = Localizer.load(run_dir, device=config.device)
        trained.append((name, model, seconds, int(model.meta["n_parameters"])))
    split = load_split(out / "runs" / entries[0][0] / "split.json")
    for name, _ in entries[1:]:
        if load_split(out / "runs" / name / "split.json") != split:
            raise FakesegError(f"{name}: trained on another split; give every entry the same "
                               "seed and fractions")
    index = index_pairs(data)
    allow_resize = any(c.allow_resize for _, c in entries)
    loaded = {p.stem: load_pair(p, allow_resize=allow_resize) for p in progress_bar(
        index.subset(split.val + split.test), desc="loading pairs", enabled=progress)}
    sets = protocol_sets([loaded[s] for s in split.val], [loaded[s] for s in split.test],
                         protocol)
    oracle_extractor = None
    if oracle:
        fs = next((m for _, m, _, _ in trained if m.net.feature_extractor is not None), None)
        oracle_extractor = fs.net.feature_extractor if fs is not None else None
    names = class_names(data)
    meta = {
        "title": f"fakeseg benchmark on {data}", "mode": "benchmark", "data": str(data),
        "split": split.to_json(), "protocol": dataclasses.asdict(protocol),
        "entries": {name: to_dict(config) for name, config in entries},
        "note": "same trainer, split, composites and step budget for every method",
    }
    scored = Evaluation({}, meta, extra_columns=("params", "train_s"), reported=PAPER_TABLE1)
    # one step per (composite set, scored method): the models' and the oracle's rows
    scoring = progress_bar(total=len(sets) * (len(trained) + (oracle_extractor is not None)),
                           desc="scoring", unit="method", enabled=progress)
    for set_name, parts in sets.items():
        rows, scorers = [], []
        for name, model, seconds, n_params in trained:
            scorer: Scorer = model_scorer(model)
            row = score_items(name, scorer, parts["val"], parts["test"], class_names=names)
            row.extra.update(params=n_params, train_s=round(seconds, 1))
            rows.append(row)
            scorers.append(scorer)
            scoring.update()
        oracle_maps: LayerMapCache = {}  # each composite's maps computed once, used throughout
        title = SECTION_TITLES[set_name]
        # the headline method's worst images, with every method's map on them (Fig. 5)
        scored.galleries[section_slug(title)] = failure_cases(
            list(zip(rows, scorers, strict=True)), parts["test"],
            oracle_extractor=oracle_extractor, oracle_cache=oracle_maps)
        if oracle_extractor is not None:
            scales = fit_oracle_scales(oracle_extractor, parts["val"], cache=oracle_maps)
            row = score_items("featdiff_oracle (needs pair)",
                              oracle_scorer(oracle_extractor, scales, cache=oracle_maps),
                              parts["val"], parts["test"], class_names=names)
            row.extra.update(params=0, train_s=0.0)
            rows.append(row)
            scoring.update()
        scored.sections[title] = rows + trivial_rows(parts["test"], names)
        scored.composites[set_name] = parts["test"]
    scoring.close()
    return BenchmarkResult(scored, {name: out / "runs" / name for name, _ in entries})
