"""Leave-one-generator-out (LOGO) benchmark of the detection methods.

For every method, seed and generator G of a labelled dataset (sources from the file names, as
``classify`` reads them): fit on the real and synthetic images of every other generator, test
on G's real and synthetic images. Each generator's real images come from that generator's own
source data set (ImageNet for BigGAN, horses/zebras for CycleGAN, ...), so they go with it: a
held-out cell is a new generator *and* a new image domain, and no real image is in both training
and test. A random fraction of the training images (stratified by label, seeded) is kept aside
for validation (epoch selection, stacking). One more cell per method and seed,
``in-distribution``, splits all images at random (stratified by source and label) into train
and test: the figure to compare with in-distribution references.

Each (method, held-out set, seed) cell is written to ``OUT/cells/METHOD/HELD_OUT/seedS.json``
(test scores, labels, metrics, fit seconds) as soon as it is done; a rerun skips finished cells,
so an interrupted benchmark resumes. ``OUT/metrics.json`` and ``OUT/metrics.md`` summarise every
finished cell in OUT: per method the mean ± sample std of ROC AUC over held-out generators,
a bootstrap 95 % interval of that mean (real and synthetic test images resampled within each
generator), the worst generator, per-generator rows, the in-distribution ROC AUC, and the
longest fit (cached probe features are cleared before each method, so its first fit includes
feature extraction; later cells of the method reuse them).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.config import versions
from fakeseg.data.labeled import DEFAULT_SOURCE_PATTERN, LabeledImage, load_labeled, split_items
from fakeseg.data.shortcuts import warn_shortcuts
from fakeseg.detection.probe import clear_feature_cache
from fakeseg.detection.registry import METHODS, check_methods, fit_method, method_family
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.metrics import image_report
from fakeseg.io import check_output_dir, folder_lock, write_json, write_text
from fakeseg.numbers import mean_std
from fakeseg.progress import say

IN_DISTRIBUTION = "in-distribution"
DEFAULT_BENCH_METHODS: tuple[str, ...] = tuple(METHODS)
BOOTSTRAP = 2000
#: Seed 003 (Wimmer et al.), Table 2: a classifier trained and tested on real images of the
#: same sources reaches balanced accuracy 0.91 — an in-distribution figure.
SEED_003_REAL_REAL_BALANCED_ACCURACY = 0.91


@dataclass
class DetectionBenchmark:
    """Every finished cell of a LOGO benchmark, summarised (``metrics.json``)."""

    commands: list[str]  # the commands that wrote the cells
    data: str
    n_images: int
    generators: list[str]
    n_test_per_generator: dict[str, int]
    val_fraction: float
    test_fraction: float
    seeds: int
    methods: dict[str, dict[str, Any]]  # method → summarise_method(...)
    best_method: str | None
    machine: str
    # cues other than the pictures that give the label away (fakeseg.data.shortcuts)
    shortcuts: list[str] = field(default_factory=list)
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return {
            "what": "leave-one-generator-out real-vs-synthetic detection",
            "commands": self.commands, "data": self.data, "n_images": self.n_images,
            "generators": self.generators,
            "n_test_per_generator": ", ".join(f"{g} {n}"
                                              for g, n in self.n_test_per_generator.items()),
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "seeds": self.seeds, "methods": self.methods,
            "seed_003_real_real_balanced_accuracy": SEED_003_REAL_REAL_BALANCED_ACCURACY,
            "machine": self.machine, "date": self.date, "versions": versions(),
            "best_method": self.best_method, "shortcuts": self.shortcuts,
        }


def _cell_path(out: Path, method: str, held_out: str, seed: int) -> Path:
    return out / "cells" / method / held_out / f"seed{seed}.json"


def _in_distribution_split(items: Sequence[LabeledImage], fraction: float, seed: int
                           ) -> tuple[list[LabeledImage], list[LabeledImage]]:
    rng = np.random.default_rng(seed)
    train: list[LabeledImage] = []
    test: list[LabeledImage] = []
    groups: dict[tuple[str, int], list[LabeledImage]] = {}
    for item in sorted(items, key=lambda i: str(i.path)):
        groups.setdefault((item.source or "", item.label), []).append(item)
    for group in groups.values():
        order = rng.permutation(len(group))
        n_test = min(max(1, round(len(group) * fraction)), len(group) - 1) if len(group) > 1 \
            else 0
        test += [group[i] for i in order[:n_test]]
        train += [group[i] for i in order[n_test:]]
    return train, test


def cell_splits(items: Sequence[LabeledImage], held_out: str, seed: int, *,
                val_fraction: float, test_fraction: float
                ) -> tuple[list[LabeledImage], list[LabeledImage], list[LabeledImage]]:
    """(train, validation, test) of one benchmark cell."""
    if held_out == IN_DISTRIBUTION:
        pool, test = _in_distribution_split(items, test_fraction, seed)
    else:
        pool = [i for i in items if i.source != held_out]
        test = [i for i in items if i.source == held_out]
    train, val = split_items(pool, val_fraction, seed)
    return train, val, test


def rank_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC of each row pair (Mann–Whitney U with mid-ranks for ties, the value
    ``sklearn.metrics.roc_auc_score`` gives): (R, P) synthetic and (R, N) real scores → (R,)."""
    from scipy.stats import rankdata

    pos, neg = np.atleast_2d(positives), np.atleast_2d(negatives)
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return (ranks[:, :n_pos].sum(1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _bootstrap_mean_auc(groups: Sequence[tuple[np.ndarray, np.ndarray]], reps: int,
                        seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of the mean per-group ROC AUC, resampling each group's real
    and synthetic images (with replacement) separately."""
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    aucs = []
    for scores, labels in groups:
        pos, neg = scores[labels == 1], scores[labels == 0]
        aucs.append(rank_auc(pos[rng.integers(0, len(pos), (reps, len(pos)))],
                             neg[rng.integers(0, len(neg), (reps, len(neg)))]))
    low, high = np.percentile(np.mean(aucs, axis=0), [2.5, 97.5])
    return float(low), float(high)


def summarise_method(cells: Sequence[dict[str, Any]], *, reps: int = BOOTSTRAP
                     ) -> dict[str, Any]:
    """Per-generator rows and LOGO / in-distribution summaries of one method's cells."""
    logo = [c for c in cells if c["held_out"] != IN_DISTRIBUTION]
    ind = [c for c in cells if c["held_out"] == IN_DISTRIBUTION]
    rows: dict[str, dict[str, Any]] = {}
    groups = []
    for held_out in sorted({c["held_out"] for c in logo}):
        runs = [c for c in logo if c["held_out"] == held_out]
        auc, auc_std = mean_std(c["report"]["roc_auc"] for c in runs)
        bal, _ = mean_std(c["report"]["balanced_accuracy"] for c in runs)
        ap, _ = mean_std(c["report"]["average_precision"] for c in runs)
        labels = np.asarray(runs[0]["labels"])
        scores = np.mean([np.asarray(c["scores"]) for c in runs], axis=0)  # seed-averaged
        if 0 < labels.sum() < len(labels):
            groups.append((scores, labels))
        rows[held_out] = {"roc_auc": auc, "roc_auc_std_over_seeds": auc_std,
                          "average_precision": ap, "balanced_accuracy": bal,
                          "n_test": len(labels), "n_synthetic": int(labels.sum()),
                          "seeds": sorted(c["seed"] for c in runs)}
    per_seed = {}
    for seed in sorted({c["seed"] for c in logo}):
        aucs = [c["report"]["roc_auc"] for c in logo if c["seed"] == seed]
        per_seed[seed] = mean_std(aucs)[0]
    mean, std = mean_std(r["roc_auc"] for r in rows.values())
    worst = min(rows.items(), key=lambda kv: kv[1]["roc_auc"] or 0.0) if rows else None
    ind_auc, ind_std = mean_std(c["report"]["roc_auc"] for c in ind)
    ind_bal, _ = mean_std(c["report"]["balanced_accuracy"] for c in ind)
    return {
        "logo_roc_auc_mean": mean, "logo_roc_auc_std_over_generators": std,
        "logo_roc_auc_ci95": _bootstrap_mean_auc(groups, reps) if groups else None,
        "logo_roc_auc_by_seed": per_seed,
        "logo_roc_auc_std_over_seeds": mean_std(per_seed.values())[1] if len(per_seed) > 1
        else None,
        "logo_balanced_accuracy_mean": mean_std(r["balanced_accuracy"]
                                                 for r in rows.values())[0],
        "worst_generator": worst[0] if worst else None,
        "worst_roc_auc": worst[1]["roc_auc"] if worst else None,
        "per_generator": rows,
        "in_distribution_roc_auc": ind_auc, "in_distribution_roc_auc_std_over_seeds": ind_std,
        "in_distribution_balanced_accuracy": ind_bal,
        "max_fit_seconds": max((c["fit_seconds"] for c in cells), default=None),
        "n_cells": len(cells), "description": cells[0].get("description") if cells else None,
    }


#: Methods whose LOGO mean ROC AUC is within this of the best count as tied (20 + 20 test
#: images per generator cannot separate them); among tied methods the fastest fit wins.
TIE_MARGIN = 0.01


def best_method(methods: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The benchmark's pick: the highest LOGO mean ROC AUC, the fastest fit among ties
    (within :data:`TIE_MARGIN`)."""
    scored = {n: m for n, m in methods.items() if m.get("logo_roc_auc_mean") is not None}
    if not scored:
        return None
    top = max(m["logo_roc_auc_mean"] for m in scored.values())
    tied = [n for n, m in scored.items() if m["logo_roc_auc_mean"] >= top - TIE_MARGIN]
    return min(tied, key=lambda n: (scored[n].get("max_fit_seconds") or 0.0, n))


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _markdown(payload: dict[str, Any]) -> str:
    methods = payload["methods"]
    generators = sorted({g for m in methods.values() for g in m["per_generator"]})
    lines = [
        "# Leave-one-generator-out detection", "",
        *(f"**Warning: {w}.**\n" for w in payload.get("shortcuts", [])),
        "Reproduce (every cell is resumable; the commands below wrote them):", "",
        *(f"    {c}" for c in payload["commands"]), "",
        f"Data: {payload['data']} ({payload['n_images']} images, generators "
        f"{', '.join(payload['generators'])}). Each LOGO cell trains on every other generator's "
        "real + synthetic images and tests on the held-out generator's real + synthetic images "
        f"(a new generator and a new image domain); {payload['val_fraction']:.0%} of the "
        "training images are kept for validation. Scores at native resolution. "
        f"In-distribution: random {payload['test_fraction']:.0%} test split stratified by "
        "generator and label.", "",
        "## Summary (ROC AUC)", "",
        "| method | LOGO mean ± std over generators | bootstrap 95 % CI of the mean | "
        "std over seeds | worst generator | LOGO balanced acc. | in-distribution | "
        "longest fit (s) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(methods.items(), key=lambda kv: -(kv[1]["logo_roc_auc_mean"] or 0.0))
    for name, m in ranked:
        ci = m["logo_roc_auc_ci95"]
        seeds = sorted({s for r in m["per_generator"].values() for s in r["seeds"]})
        lines.append(
            f"| {name} | {_f(m['logo_roc_auc_mean'])} ± "
            f"{_f(m['logo_roc_auc_std_over_generators'])} | "
            f"{'–' if ci is None else f'{ci[0]:.3f}–{ci[1]:.3f}'} | "
            f"{_f(m['logo_roc_auc_std_over_seeds'])} | {m['worst_generator']} "
            f"{_f(m['worst_roc_auc'])} | {_f(m['logo_balanced_accuracy_mean'])} | "
            f"{_f(m['in_distribution_roc_auc'])} | {_f(m['max_fit_seconds'], 0)} | "
            f"{len(seeds)} |")
    for key, title in (("roc_auc", "ROC AUC, mean over seeds"),
                       ("balanced_accuracy", "balanced accuracy at P(synthetic) ≥ 0.5")):
        lines += ["", f"## Per held-out generator ({title})", "",
                  "| method | " + " | ".join(generators) + " |",
                  "|---|" + "---|" * len(generators)]
        for name, m in ranked:
            cells = [_f(m["per_generator"].get(g, {}).get(key)) for g in generators]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"**Best method** (highest LOGO mean; within {TIE_MARGIN} of it the fastest "
              f"fit wins): `{payload['best_method']}`."]
    lines += ["", "## Methods", ""]
    lines += [f"- {m['description']}" for _, m in ranked if m["description"]]
    lines += [
        "", "## Reading the numbers", "",
        f"- Each held-out generator has {payload['n_test_per_generator']} test images; a ROC AUC "
        "on 20 + 20 images has a standard error of about 0.03 near 0.95 and 0.06–0.09 near "
        "0.6–0.8 (Hanley & McNeil). The bootstrap interval resamples the test images of every "
        "generator; it does not include training noise (the seed column does).",
        f"- Seed 003 (Wimmer et al.) reports balanced accuracy "
        f"{SEED_003_REAL_REAL_BALANCED_ACCURACY} for its real/real composition: a classifier "
        "trained and tested on the same sources. It is an in-distribution figure; compare it "
        "with the in-distribution column, not with the LOGO columns.",
        "- ROC AUC measures the ranking; balanced accuracy uses the fixed threshold 0.5, which "
        "need not transfer to a new generator: its scores can shift as a whole while the "
        "ranking stays perfect (balanced accuracy 0.5 next to ROC AUC 1.0).",
        "- Near-ceiling numbers on a small sample are an upper bound: real and synthetic images "
        "of one source may also differ in processing history (resizing, re-encoding), which a "
        "detector can learn instead of the generator's traces; test on generators and "
        "pipelines it never saw before trusting it.",
        f"- Fit times: wall-clock on {payload['machine']}, shared with other jobs; a probe's "
        "first fit includes feature extraction, later folds reuse cached features.", ""]
    return "\n".join(lines)


def _add_member_fit_times(cells: dict[str, list[dict[str, Any]]]) -> None:
    """An ensemble cell that reused its members' fits (same split, same process) gets their
    fit seconds added: its fit time is what fitting it from scratch costs. (Cells written
    before ``reused_members`` was recorded reused every member.)"""
    index = {(c["method"], c["held_out"], c["seed"]): float(c["fit_seconds"])
             for group in cells.values() for c in group}
    for group in cells.values():
        for cell in group:
            members = str((cell.get("options") or {}).get("members") or "")
            if not members:
                continue
            reused = cell.get("reused_members", members.split(","))
            cell["fit_seconds"] = float(cell["fit_seconds"]) + sum(
                index.get((m, cell["held_out"], cell["seed"]), 0.0) for m in reused)


def _previous_commands(metrics: Path) -> list[str]:
    """The commands that wrote the cells so far (a benchmark may be built in several runs)."""
    try:
        return [str(c) for c in json.loads(metrics.read_text()).get("commands", [])]
    except (OSError, ValueError, AttributeError):
        return []


def _load_cells(out: Path, methods: Sequence[str] | None) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "cells").glob("*/*/seed*.json")):
        cell = json.loads(path.read_text())
        if methods is None or cell["method"] in methods:
            found.setdefault(cell["method"], []).append(cell)
    return found


def benchmark_detection(
    data: str | Path | Sequence[LabeledImage],
    out: str | Path,
    *,
    methods: Sequence[str] | None = None,
    seeds: int = 1,
    val_fraction: float = 0.2,
    test_fraction: float = 0.3,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    source_pattern: str | None = DEFAULT_SOURCE_PATTERN,
    threads: int | None = None,
    bootstrap: int = BOOTSTRAP,
    command: str = "",
    progress: bool = True,
) -> DetectionBenchmark:
    """Run (or resume) the benchmark into ``out`` (every finished cell is kept); summarise
    every cell found there and write ``metrics.json`` and ``metrics.md``."""
    chosen = check_methods(methods or DEFAULT_BENCH_METHODS)
    if seeds < 1:
        raise FakesegError(f"seeds must be ≥ 1, got {seeds}")
    items = load_labeled(data, source_pattern=source_pattern)
    missing = [i.path for i in items if not i.source]
    if missing:
        raise DataError(f"{missing[0]}: no generator name in the file name; name files "
                        "N_GENERATOR_{real,fake}.jpg, pass --source-pattern, or give a CSV "
                        "with a source column")
    generators = sorted({str(i.source) for i in items})
    for generator in generators:
        present = {i.label for i in items if i.source == generator}
        if present != {0, 1}:
            raise DataError(f"generator '{generator}' has only "
                            f"{'real' if present == {0} else 'synthetic'} images; every "
                            "generator needs real and synthetic images for its test cell")
    if len(generators) < 2:
        raise DataError(f"only one generator ({generators[0]}); leave-one-out needs two or more")
    shortcuts = warn_shortcuts(items, data)
    out_dir = check_output_dir(out)
    if threads:
        torch.set_num_threads(threads)
    held_outs = [*generators, IN_DISTRIBUTION]
    # fitted scorers by (seed, held-out set), kept so an ensemble reuses its members' fits
    fitted: dict[tuple[int, str], dict[str, Any]] = {}
    keep = any(method_family(m) == "ensemble" for m in chosen)
    with folder_lock(out_dir, "benchmark-detection"):
        for method in chosen:
            clear_feature_cache()  # the method's first fit is timed cold
            for seed in range(seeds):
                for held_out in held_outs:
                    target = _cell_path(out_dir, method, held_out, seed)
                    if target.exists():
                        continue
                    train, val, test = cell_splits(items, held_out, seed,
                                                   val_fraction=val_fraction,
                                                   test_fraction=test_fraction)
                    extra: dict[str, Any] = {}
                    if method_family(method) == "ensemble":
                        extra["fitted"] = fitted.get((seed, held_out), {})
                    say(f"benchmark-detection: {method}, held out {held_out}, seed {seed} "
                        f"({len(train)} train / {len(val)} val / {len(test)} test)")
                    started = time.time()
                    scorer = fit_method(method, train, val,
                                        {**(options or {}).get(method, {}), "seed": seed},
                                        progress=progress, **extra)
                    fit_seconds = time.time() - started
                    scores = scorer.score([i.path for i in test], progress=progress)
                    labels = np.array([i.label for i in test])
                    report = image_report(scores, labels)
                    write_json(target, {
                        "method": method, "held_out": held_out, "seed": seed,
                        "description": scorer.describe(), "options": scorer.options,
                        "fit_seconds": fit_seconds,
                        "score_seconds": time.time() - started - fit_seconds,
                        "n_train": len(train), "n_val": len(val), "n_test": len(test),
                        "reused_members": sorted(extra.get("fitted", {})),
                        "report": report, "scores": scores.tolist(), "labels": labels.tolist(),
                        "test_images": [i.path.name for i in test],
                        "threads": torch.get_num_threads(), "versions": versions()})
                    say(f"  ROC AUC {_f(report['roc_auc'])}, fit {fit_seconds:.0f} s")
                    if keep and method_family(method) != "ensemble":
                        fitted.setdefault((seed, held_out), {})[method] = scorer
        cells = _load_cells(out_dir, None)
        _add_member_fit_times(cells)
        commands = _previous_commands(out_dir / "metrics.json")
        command = command or f"fakeseg benchmark-detection {data} --out {out}"
        summaries = {m: summarise_method(c, reps=bootstrap) for m, c in cells.items()}
        result = DetectionBenchmark(
            commands=[*(c for c in commands if c != command), command],
            data=str(data) if isinstance(data, str | Path) else "list",
            n_images=len(items), generators=generators,
            n_test_per_generator={g: sum(i.source == g for i in items) for g in generators},
            val_fraction=val_fraction, test_fraction=test_fraction, seeds=seeds,
            methods=summaries, best_method=best_method(summaries),
            machine=f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), CPU",
            shortcuts=shortcuts)
        save_detection_benchmark(result, out_dir)
    return result


def save_detection_benchmark(result: DetectionBenchmark, out: str | Path) -> None:
    """``metrics.json`` and ``metrics.md`` of a benchmark."""
    payload = result.to_json()
    write_json(Path(out) / "metrics.json", payload)
    write_text(Path(out) / "metrics.md", _markdown(payload))

