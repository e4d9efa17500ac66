"""``fakeseg benchmark --folds k``: k-fold cross-validation by pair, every method on every fold.

Pairs are shuffled (seed) and cut into k folds; each fold's pairs are tested exactly once. The
validation pairs (early stopping and the threshold) are drawn from the training side of each
fold, so a test pair never chooses anything. Every entry trains with its own budget on each
fold, in ``OUT/repeat<r>/fold<f>/runs/<entry>``; a fold's scores are kept in
``OUT/repeat<r>/fold<f>/scores/<entry>.json``, so a rerun skips what is finished (and resumes a
half-trained run from its last epoch). ``--repeats`` reshuffles the folds and reseeds training.
Several processes (or machines sharing the folder) may work on one cross-validation at once,
each given its own folds (``only_folds``): an entry's fold is locked while it trains, a second
process skips it, and whichever run finds every fold scored writes nothing but returns them all.

:func:`cross_validate` trains and scores (a :class:`CrossValidation`); :func:`save_cv` writes
``metrics.json`` and ``metrics.md`` (mean ± std over folds, then one row per fold).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakeseg.config import TrainConfig, from_dict, to_dict, versions
from fakeseg.data.composites import CompositeItem
from fakeseg.data.pairs import PairIndex, Split, index_pairs, load_pair
from fakeseg.errors import DataError, FakesegError, FolderInUseError
from fakeseg.evaluation.evaluate import SECTION_TITLES, reported_markdown
from fakeseg.evaluation.protocol import (
    MethodScores,
    ProtocolConfig,
    Scorer,
    constant_scorer,
    model_scorer,
    probability_scorer,
    protocol_sets,
    score_items,
)
from fakeseg.io import folder_lock, write_json, write_text
from fakeseg.numbers import fmt, fmt_mean_std, mean_std
from fakeseg.progress import say
from fakeseg.workflows.benchmark import (
    DEFAULT_METHODS,
    PAPER_TABLE1,
    check_trainable,
    default_protocol,
    method_config,
    run_state,
    same_run_config,
    train_entry,
)

#: the per-fold figures kept for every row and composite set
METRICS = ("dice", "iou", "pixel_auc", "fp_real", "miou", "threshold")
FLIP_SUFFIX = " +flip TTA"
FLOOR = "all synthetic"
SCORES_VERSION = 1


def fold_splits(stems: Sequence[str], folds: int, *, val_fraction: float, seed: int,
                train_pairs: int | None = None) -> list[Split]:
    """k splits whose test parts partition the pairs; validation drawn from each training side.

    The validation share of the training side is ``val_fraction`` (at least one pair).
    ``train_pairs`` keeps that many of each fold's training pairs (a learning curve): the
    first of a seeded order, so a smaller set is part of every larger one; validation and test
    pairs are unchanged.
    """
    ordered = sorted(stems)
    if folds < 2 or folds > len(ordered):
        raise DataError(f"--folds {folds}: needs 2 ≤ folds ≤ the {len(ordered)} pairs")
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    chunks = [list(chunk) for chunk in np.array_split(np.array(shuffled, dtype=object), folds)]
    splits = []
    for fold, test in enumerate(chunks):
        rest = [s for other, chunk in enumerate(chunks) if other != fold for s in chunk]
        n_val = max(1, round(len(rest) * val_fraction))
        if len(rest) - n_val < 1:
            raise DataError(f"{len(ordered)} pairs in {folds} folds leave no training pair; "
                            "use fewer folds or a smaller val_fraction")
        splits.append(Split(sorted(rest[n_val:]), sorted(rest[:n_val]), sorted(test), seed))
    if train_pairs is None:
        return splits
    fewest = min(len(split.train) for split in splits)  # folds may differ by a pair
    if not 1 <= train_pairs <= fewest:
        raise DataError(f"--train-pairs {train_pairs}: the smallest fold has {fewest} "
                        f"training pairs; choose 1 to {fewest}")
    orders = [np.random.default_rng([seed, fold]).permutation(len(split.train))
              for fold, split in enumerate(splits)]
    return [dataclasses.replace(split, train=sorted(split.train[i] for i in order[:train_pairs]))
            for split, order in zip(splits, orders, strict=True)]


@dataclass(frozen=True)
class Fold:
    """One test fold of a cross-validation: its split and the composites it is scored on."""

    repeat: int
    fold: int
    split: Split
    protocol: ProtocolConfig


def plan_folds(stems: Sequence[str], folds: int, repeats: int, base: TrainConfig,
               protocol: ProtocolConfig | None = None, *,
               train_pairs: int | None = None) -> list[Fold]:
    """Every fold of every repeat, in order. Repeat r shuffles the pairs with seed
    ``base.seed + r`` and draws its composites with ``protocol.seed + r`` (the protocol
    defaults to the benchmark's); scripts that rescore finished runs use this same plan.
    ``train_pairs``: see :func:`fold_splits`."""
    protocol = protocol or default_protocol(base)
    return [Fold(repeat, fold, split, dataclasses.replace(protocol, seed=protocol.seed + repeat))
            for repeat in range(repeats)
            for fold, split in enumerate(fold_splits(stems, folds, val_fraction=base.val_fraction,
                                                     seed=base.seed + repeat,
                                                     train_pairs=train_pairs))]


@dataclass
class FoldScores:
    """One row (an entry, or an entry scored with flip TTA, or a floor) on one fold."""

    row: str
    repeat: int
    fold: int
    test_pairs: list[str]
    metrics: dict[str, dict[str, float | None]]  # composite set → METRICS
    steps: int = 0
    train_s: float = 0.0
    load_avg: list[float] = field(default_factory=list)  # 1-min load while training (start, end)
    # composite set → test pair → Dice, IoU, FP real (empty in score files older than it)
    per_pair: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)


@dataclass
class CrossValidation:
    """Every fold's scores, and what they were measured with (write with :func:`save_cv`)."""

    folds: list[FoldScores]
    meta: dict[str, Any]
    rows: list[str]
    # "repeat r, fold f: entry" not scored by this run (other folds, or held by another process)
    missing: list[str] = field(default_factory=list)

    @property
    def gaps(self) -> str | None:
        """What is still unscored, in one line (None: every fold is scored)."""
        if not self.missing:
            return None
        return (f"{len(self.missing)} fold scores are still missing (e.g. {self.missing[0]}); "
                "the run that finds every fold scored writes the table")

    def summary(self, row: str, section: str, metric: str) -> tuple[float | None, float | None]:
        """Mean ± sample std over folds (and repeats) of one row's metric in one set."""
        return mean_std(f.metrics[section].get(metric) for f in self.folds if f.row == row)


def _metrics(scores: MethodScores) -> dict[str, float | None]:
    overall = scores.overall
    return {"dice": overall["dice"], "iou": overall["iou"], "pixel_auc": overall["pixel_auc"],
            "fp_real": scores.fp_real, "miou": overall["miou"], "threshold": scores.threshold}


def flip_scorer(model: Any) -> Scorer:
    """Flip test-time augmentation: the mean of the map and the unflipped map of the mirror."""
    return probability_scorer(lambda x: model.predict_tensor(x, flip_tta=True))


def _score_sets(scorer: Scorer, sets: dict[str, dict[str, list[CompositeItem]]],
                name: str) -> dict[str, Any]:
    """``FoldScores`` fields ``metrics`` and ``per_pair`` of one scorer on every set."""
    scores = {section: score_items(name, scorer, parts["val"], parts["test"])
              for section, parts in sets.items()}
    return {"metrics": {section: _metrics(s) for section, s in scores.items()},
            "per_pair": {section: s.per_pair for section, s in scores.items()}}


def _read_scores(path: Path, key: dict[str, Any], config: TrainConfig | None = None,
                 sections: Sequence[str] = ()) -> list[FoldScores] | None:
    """A fold's saved rows, if made with this key (split, protocol) and ``config`` (up to its
    hardware options), and scored on every one of ``sections``."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    saved, wanted = payload.get("key"), json.loads(json.dumps(key))
    if not isinstance(saved, dict) or (
            config is not None and not same_run_config(saved.get("config"), config)) or {
            k: v for k, v in saved.items() if k != "config"} != {
            k: v for k, v in wanted.items() if k != "config"}:
        return None
    rows = [FoldScores(**row) for row in payload["rows"]]
    if any(set(sections) - set(row.metrics) for row in rows):
        return None
    return rows


def scored_run(work: str | Path, repeat: int, fold: int, name: str) -> Path:
    """The run folder of entry ``name`` on one fold of a cross-validation in ``work``, checked
    to hold the run its saved scores were made with: finished, with that config. A rescoring
    script loads models through this, so a run replaced since (another config's training,
    interrupted) is a one-line error, never rescored as if it were the scored one."""
    fold_dir = Path(work) / f"repeat{repeat}" / f"fold{fold}"
    run, score_file = fold_dir / "runs" / name, fold_dir / "scores" / f"{name}.json"
    try:
        config = json.loads(score_file.read_text())["key"]["config"]
        state, _ = run_state(run, from_dict(TrainConfig, config, source=str(score_file)))
    except (OSError, ValueError, KeyError, TypeError, FakesegError):
        raise FakesegError(f"{score_file}: no readable scores of '{name}' on this fold; run "
                           "the cross-validation first") from None
    if state != "finished":
        raise FakesegError(f"{run}: not the finished run its scores ({score_file}) were made "
                           "with (replaced or interrupted since); delete both and rerun the "
                           "cross-validation")
    return run


def split_sets(index: PairIndex, split: Split, protocol: ProtocolConfig, *,
               allow_resize: bool = False, sections: Sequence[str] = tuple(SECTION_TITLES)
               ) -> dict[str, dict[str, list[CompositeItem]]]:
    """A split's composite sets (section → "val"/"test" → items), each pair decoded once."""
    loaded = {pair.stem: load_pair(pair, allow_resize=allow_resize)
              for pair in index.subset(split.val + split.test)}
    sets = protocol_sets([loaded[s] for s in split.val], [loaded[s] for s in split.test],
                         protocol)
    return {name: parts for name, parts in sets.items() if name in sections}


def _lazy_sets(index: PairIndex, split: Split, protocol: ProtocolConfig, allow_resize: bool,
               sections: Sequence[str]) -> Callable[[], dict[str, dict[str, list[CompositeItem]]]]:
    """A fold's composite sets, built on the first call only (nothing to score: never)."""
    return functools.cache(functools.partial(split_sets, index, split, protocol,
                                             allow_resize=allow_resize, sections=sections))


def cross_validate(data: str | Path, out: str | Path, *,
                   entries: Sequence[tuple[str, TrainConfig]] | None = None,
                   base: TrainConfig | None = None, methods: Sequence[str] = DEFAULT_METHODS,
                   folds: int = 3, repeats: int = 1, protocol: ProtocolConfig | None = None,
                   flip_tta: Collection[str] = (), sections: Sequence[str] = tuple(SECTION_TITLES),
                   train_pairs: int | None = None, only_folds: Collection[int] | None = None,
                   progress: bool = True) -> CrossValidation:
    """Train and score each (name, config) entry on every fold (see the module docstring).

    ``flip_tta`` names the entries that get a second row, scored with flip test-time
    augmentation (the same model; it doubles their scoring time). ``sections``: the composite
    sets scored, with shortcut controls ("controlled") and without ("raw"). ``train_pairs``
    trains on only that many of each fold's training pairs (a learning curve, see
    :func:`fold_splits`). ``only_folds`` (fold numbers from 0, in every repeat) trains and
    scores only those folds; the others' finished scores are gathered, and what is still
    unscored is listed in ``missing`` (:func:`save_cv` refuses a table with gaps).
    Nothing but runs and per-fold score files is written (see :func:`save_cv`).
    """
    out, data = Path(out), Path(data)
    base = (base or TrainConfig()).validate()
    entries = list(entries or [(m, method_config(base, m)) for m in methods])
    if len({name for name, _ in entries}) != len(entries):
        raise FakesegError("benchmark entries need distinct names")
    if repeats < 1:
        raise FakesegError(f"--repeats {repeats}: must be at least 1")
    if only_folds is not None and not set(only_folds) <= set(range(folds)):
        raise FakesegError(f"--only-folds {','.join(map(str, sorted(only_folds)))}: folds are "
                           f"numbered 0 to {folds - 1}")
    for _, config in entries:  # before any training: a typo must not cost the runs before it
        check_trainable(config.model)
    protocol = protocol or default_protocol(base)
    index = index_pairs(data)
    index.require_unambiguous()
    if not sections or set(sections) - set(SECTION_TITLES):
        raise FakesegError(f"sections must be among {', '.join(SECTION_TITLES)}")
    unknown = set(flip_tta) - {name for name, _ in entries}
    if unknown:
        raise FakesegError(f"flip TTA for unknown entries {sorted(unknown)}")
    rows = [FLOOR] + [n + suffix for n, _ in entries for suffix in
                      ("", FLIP_SUFFIX) if suffix == "" or n in flip_tta]
    scored: list[FoldScores] = []
    missing: list[str] = []
    for planned in plan_folds(index.stems, folds, repeats, base, protocol,
                              train_pairs=train_pairs):
        repeat, fold, split = planned.repeat, planned.fold, planned.split
        fold_protocol = planned.protocol
        fold_dir = out / f"repeat{repeat}" / f"fold{fold}"
        composite_sets = _lazy_sets(index, split, fold_protocol, base.allow_resize, sections)
        where = f"repeat {repeat + 1}/{repeats}, fold {fold + 1}/{folds}"
        ours = only_folds is None or fold in only_folds
        floor_key = {"version": SCORES_VERSION, "split": split.to_json(),
                     "protocol": dataclasses.asdict(fold_protocol)}
        floor_file = fold_dir / "scores" / "_floor.json"
        floor = _read_scores(floor_file, floor_key, sections=sections)
        if floor is None and ours:
            floor = [FoldScores(FLOOR, repeat, fold, split.test, **_score_sets(
                constant_scorer(1.0), composite_sets(), FLOOR))]
            write_json(floor_file, {"key": floor_key, "rows": [
                dataclasses.asdict(f) for f in floor]})
        if floor is None:
            missing.append(f"{where}: {FLOOR}")
        scored += floor or []
        for name, config in entries:
            config = dataclasses.replace(config, seed=config.seed + repeat)
            flip = name in flip_tta
            key = {**floor_key, "config": to_dict(config), "flip_tta": flip}
            score_file = fold_dir / "scores" / f"{name}.json"
            done = _read_scores(score_file, key, config, sections)
            if done is None and ours:
                (fold_dir / "runs").mkdir(parents=True, exist_ok=True)
                try:  # one process per entry and fold: a second one must not rmtree its run
                    with folder_lock(fold_dir / "runs", "benchmark", share=_share(name)):
                        done = _read_scores(score_file, key, config, sections)
                        if done is None:
                            done = _train_and_score(data, fold_dir / "runs" / name, config,
                                                    planned, f"{where}: {name}", composite_sets,
                                                    flip, progress)
                            write_json(score_file, {"key": key, "rows": [
                                dataclasses.asdict(f) for f in done]})
                except FolderInUseError as exc:
                    if progress:
                        say(f"[benchmark] {where}: {name} skipped: {exc}")
            elif done is not None and progress:
                say(f"[benchmark] {where}: {name} already scored")
            if done is None:
                missing.append(f"{where}: {name}")
            scored += done or []
    meta = {
        "title": f"fakeseg benchmark, {folds}-fold cross-validation by pair, on {data}"
                 + (f", trained on {train_pairs} of each fold's training pairs" if train_pairs
                    else ""),
        "mode": "benchmark-cv", "data": str(data), "folds": folds, "repeats": repeats,
        "val_fraction": base.val_fraction, "train_pairs": train_pairs,
        "protocol": dataclasses.asdict(protocol), "flip_tta": sorted(flip_tta),
        "sections": list(sections),
        "entries": {name: to_dict(config) for name, config in entries},
        "note": ("every pair is tested exactly once per repeat; validation pairs (early "
                 "stopping, threshold) come from the training side of each fold"),
    }
    return CrossValidation(scored, meta, rows, missing)


def _share(name: str) -> str:
    """An entry's lock name inside a fold's ``runs`` folder (letters, digits, ``._-``)."""
    return "entry-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _train_and_score(data: Path, run_dir: Path, config: TrainConfig, planned: Fold, label: str,
                     composite_sets: Callable[[], dict[str, dict[str, list[CompositeItem]]]],
                     flip: bool, progress: bool) -> list[FoldScores]:
    """Train (or resume, or reuse) one entry's run on a fold and score it (+ flip TTA)."""
    from fakeseg.inference.localizer import Localizer

    load_before = os.getloadavg()[0]
    seconds = train_entry(data, run_dir, config, split=planned.split, label=label,
                          progress=progress)
    load_after = os.getloadavg()[0]
    model = Localizer.load(run_dir, device=config.device)
    history = json.loads((run_dir / "history.json").read_text())
    name = run_dir.name
    plain = FoldScores(
        name, planned.repeat, planned.fold, planned.split.test,
        **_score_sets(model_scorer(model), composite_sets(), name),
        steps=int(history[-1]["step"]) if history else 0, train_s=round(seconds, 1),
        load_avg=[round(load_before, 2), round(load_after, 2)])
    if not flip:
        return [plain]
    return [plain, dataclasses.replace(plain, row=name + FLIP_SUFFIX, **_score_sets(
        flip_scorer(model), composite_sets(), name))]


def _ratio_rows(result: CrossValidation, section: str, reference: str) -> dict[str, str]:
    """Per row: mean ± std over folds of IoU / the reference row's IoU on the same fold."""
    ref = {(f.repeat, f.fold): f.metrics[section]["iou"] for f in result.folds
           if f.row == reference}
    cells = {}
    for row in result.rows:
        ratios = [f.metrics[section]["iou"] / ref[(f.repeat, f.fold)]  # type: ignore[operator]
                  for f in result.folds if f.row == row and ref.get((f.repeat, f.fold))
                  and f.metrics[section]["iou"] is not None]
        cells[row] = fmt_mean_std(*mean_std(ratios), digits=2)
    return cells


def ratio_reference(rows: Sequence[str]) -> str | None:
    """The row other rows' IoU is divided by: the first CAT-Net row (``catnet``, or a variant
    named ``catnet@…`` / ``catnet_…``), if any."""
    return next((r for r in rows if r == "catnet" or r.startswith(("catnet@", "catnet_"))),
                None)


def cv_markdown(result: CrossValidation, reference: str | None = None) -> str:
    """The summary tables (mean ± std over folds) and the per-fold rows; IoU ÷ ``reference``
    (default :func:`ratio_reference`) per row when that row is present."""
    folds, repeats = result.meta["folds"], result.meta["repeats"]
    reference = reference or ratio_reference(result.rows)
    if reference is not None and reference not in result.rows:
        raise FakesegError(f"IoU reference row {reference!r} is not among {result.rows}")
    lines = [f"# {result.meta['title']}\n",
             f"{folds} folds × {repeats} repeat(s); mean ± sample std over the "
             f"{folds * repeats} test folds. {result.meta['note']}. Dice/IoU: micro, at the "
             "threshold chosen on each fold's validation composites; FP real: share of pixels "
             "flagged on pure-real test images. steps / train s: mean per fold (early stopping "
             "or the time budget may end a run before its step budget); load: the 1-minute "
             "load average when each fold's training started and ended.\n"]
    sections = result.meta["sections"]
    for section in sections:
        title = SECTION_TITLES[section]
        ratio = _ratio_rows(result, section, reference) if reference else {}
        lines += [f"## {title}\n",
                  "| row | Dice | IoU | pixel AUC | FP real | thr |"
                  + (f" IoU ÷ {reference} |" if reference else "") + " steps | train s |",
                  "|---|" + "---|" * (7 + bool(reference))]
        for row in result.rows:
            mine = [f for f in result.folds if f.row == row]
            cells = [fmt_mean_std(*result.summary(row, section, m))
                     for m in ("dice", "iou", "pixel_auc", "fp_real", "threshold")]
            if reference:
                cells.append(ratio[row])
            cells += [fmt(mean_std(f.steps for f in mine)[0], 0),
                      fmt(mean_std(f.train_s for f in mine)[0], 1)]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    section = sections[0]
    lines += [f"## per fold ({SECTION_TITLES[section]})\n",
              "| row | repeat | fold | test pairs | Dice | IoU | pixel AUC | FP real | thr | "
              "steps | train s | load |", "|---|" + "---|" * 11]
    for f in sorted(result.folds, key=lambda f: (result.rows.index(f.row), f.repeat, f.fold)):
        m = f.metrics[section]
        lines.append(f"| {f.row} | {f.repeat} | {f.fold} | {', '.join(f.test_pairs)} | "
                     + " | ".join(fmt(m[k]) for k in ("dice", "iou", "pixel_auc", "fp_real",
                                                      "threshold"))
                     + f" | {f.steps} | {fmt(f.train_s, 1)} | "
                     + "→".join(fmt(v, 2) for v in f.load_avg) + " |")
    lines += ["", *_per_pair_markdown(result, section), reported_markdown(PAPER_TABLE1)]
    return "\n".join(lines)


def _per_pair_markdown(result: CrossValidation, section: str) -> list[str]:
    """Dice per test pair and row, the mean over the folds that tested it: which pairs are
    unlike the others. Empty when no score file has per-pair figures (older ones)."""
    stems = sorted({stem for f in result.folds for stem in f.per_pair.get(section, {})})
    if not stems:
        return []
    lines = [f"## Dice per test pair ({SECTION_TITLES[section]}; mean over the folds and "
             "repeats that tested it; a pair far below the others is unlike them)\n",
             "| row | " + " | ".join(stems) + " |", "|---|" + "---|" * len(stems)]
    for row in result.rows:
        cells = [fmt(mean_std(f.per_pair.get(section, {}).get(stem, {}).get("dice")
                              for f in result.folds if f.row == row)[0]) for stem in stems]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def save_cv(result: CrossValidation, out: str | Path,
            reference: str | None = None) -> dict[str, Path]:
    """``metrics.json`` (meta, versions, summary, per-fold rows) and ``metrics.md`` (IoU ÷
    ``reference``, see :func:`cv_markdown`)."""
    out = Path(out)
    if result.gaps:
        raise FakesegError(result.gaps)
    summary = {row: {section: {metric: dict(zip(("mean", "std"),
                                                result.summary(row, section, metric),
                                                strict=True))
                               for metric in METRICS}
                     for section in result.meta["sections"]}
               for row in result.rows}
    payload = {**result.meta, "versions": versions(), "rows": result.rows, "summary": summary,
               "folds": [dataclasses.asdict(f) for f in result.folds],
               "reported_in_paper": PAPER_TABLE1}
    return {"metrics_json": write_json(out / "metrics.json", payload),
            "metrics_md": write_text(out / "metrics.md", cv_markdown(result, reference))}
