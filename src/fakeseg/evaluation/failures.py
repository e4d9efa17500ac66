"""Failure cases: the test images a method gets most wrong, as one picture.

Rows: the ``k`` mixed test images with the lowest Dice at the method's threshold, then the
pure-real image with the most false alarms. Columns: the image, the ground truth, the
predicted probability, the errors at the threshold (green = hit, red = false alarm, blue =
miss) and, when a pair oracle is given, the oracle's |F(R) − F(C)| map beside them, which
tells apart "the features see no difference here" from "the model missed a visible one".
With several methods (``benchmark``), each method's map on the same images replaces the
probability and error columns, as in the paper's Fig. 5.

:func:`failure_cases` computes what a gallery shows; :func:`draw_failures` draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from fakeseg.data.composites import CompositeItem
from fakeseg.evaluation.metrics import dice
from fakeseg.evaluation.protocol import (
    LayerMapCache,
    MethodScores,
    Scorer,
    fit_oracle_scales,
    is_mixed,
    oracle_scorer,
)
from fakeseg.numbers import at_or_above
from fakeseg.viz import colorize, new_figure, overlay, save_figure

HIT, FALSE_ALARM, MISS = (0.2, 0.8, 0.2), (0.9, 0.15, 0.15), (0.2, 0.4, 1.0)
#: font size (points) of the row labels and column titles: at the default 110 dpi and the report's
#: display width (≤ 1.2 × downscale) this stays ≥ 11 px on screen
LABEL_PT = 10


def error_map(prob: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W, 3): hits green, false alarms red, misses blue, true negatives black."""
    flagged = at_or_above(prob, threshold)
    picture = np.zeros((*mask.shape, 3), dtype=np.float32)
    picture[flagged & mask] = HIT
    picture[flagged & ~mask] = FALSE_ALARM
    picture[~flagged & mask] = MISS
    return picture


def worst_items(scores: MethodScores, test: Sequence[CompositeItem], k: int
                ) -> list[tuple[CompositeItem, float]]:
    """The ``k`` mixed test items with the lowest Dice, worst first."""
    mixed = [item for item in test if is_mixed(item)]
    order = np.argsort(scores.dice_per_image, kind="stable")[:k]
    return [(mixed[i], float(scores.dice_per_image[i])) for i in order]


@dataclass
class GalleryRow:
    """One test image of a gallery: each method's probability map and a note per map."""

    item: CompositeItem
    caption: str
    probs: list[np.ndarray]  # in the gallery's method order
    notes: list[str]  # "Dice 0.42" on mixed images, "flagged 3.1%" on pure-real ones
    oracle: np.ndarray | None = None


@dataclass
class FailureGallery:
    """What one ``failures_*.png`` shows (computed by :func:`failure_cases`, drawn by
    :func:`draw_failures`): the headline method's worst test images and, on the same images,
    every method's map (the paper's Fig. 5)."""

    methods: list[str]
    thresholds: list[float]
    rows: list[GalleryRow] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return self.methods[0]


def _note(item: CompositeItem, prob: np.ndarray, threshold: float) -> str:
    if is_mixed(item):
        return f"Dice {dice(prob, item.mask, threshold=threshold):.2f}"
    return f"flagged {np.mean(at_or_above(prob, threshold)):.1%}"


def failure_cases(methods: Sequence[tuple[MethodScores, Scorer]],
                  test: Sequence[CompositeItem], *, k: int = 4,
                  oracle_extractor: torch.nn.Module | None = None,
                  oracle_cache: LayerMapCache | None = None) -> FailureGallery:
    """The first method's worst ``k`` mixed test images plus its worst pure-real one, with
    every method's map on those images.

    ``oracle_extractor``: a feature backbone for the pair-oracle column (layer scales are fit
    on the rows shown); ``oracle_cache`` shares its maps with the caller's oracle scoring.
    """
    if not methods:
        raise ValueError("a failure gallery needs at least one method")
    headline, scorer = methods[0]
    chosen: list[tuple[CompositeItem, np.ndarray, str]] = []
    for item, score in worst_items(headline, test, k):
        chosen.append((item, scorer(item), f"{item.name}\nDice {score:.2f}, "
                                           f"synthetic {item.mask.mean():.0%}"))
    reals = [(item, scorer(item)) for item in test if item.kind == "pure_real"]
    if reals:
        item, prob = max(reals, key=lambda pair: float(np.mean(pair[1] >= headline.threshold)))
        chosen.append((item, prob, f"{item.name}\nflagged "
                                   f"{np.mean(prob >= headline.threshold):.1%} (all real)"))
    oracle = None
    if oracle_extractor is not None and chosen:
        scales = fit_oracle_scales(oracle_extractor, [item for item, _, _ in chosen],
                                   cache=oracle_cache)
        oracle = oracle_scorer(oracle_extractor, scales, cache=oracle_cache)
    gallery = FailureGallery([m.name for m, _ in methods], [m.threshold for m, _ in methods])
    for item, prob, caption in chosen:
        probs = [prob] + [other(item) for _, other in methods[1:]]
        notes = [_note(item, p, t) for p, t in zip(probs, gallery.thresholds, strict=True)]
        gallery.rows.append(GalleryRow(item, caption, probs, notes,
                                       oracle(item) if oracle else None))
    return gallery


def draw_failures(gallery: FailureGallery, path: str | Path) -> Path:
    """One method: image, ground truth, probability, errors at its threshold (and the pair
    oracle). Several: image, ground truth, then each method's map on the same images."""
    single = len(gallery.methods) == 1
    with_oracle = any(row.oracle is not None for row in gallery.rows)
    titles = ["image", "ground truth (synthetic)"]
    titles += (["probability", f"errors at thr {gallery.thresholds[0]:.2f}"] if single else
               [f"{name} (thr {thr:.2f})" for name, thr in zip(gallery.methods,
                                                               gallery.thresholds, strict=True)])
    titles += ["pair oracle"] if with_oracle else []
    n_rows = max(len(gallery.rows), 1)  # plus a thin row of colour bars under the columns
    fig = new_figure(2.4 * len(titles), 2.0 * n_rows + 1.3)
    grid = fig.subplots(n_rows + 1, len(titles), squeeze=False,
                        gridspec_kw={"height_ratios": [1.0] * n_rows + [0.06]})
    axes, bar_axes = grid[:n_rows], grid[n_rows]
    bars = {c: "probability of 'unreal'" for c in range(2, 2 + len(gallery.methods))}
    if with_oracle:
        bars[len(titles) - 1] = "|F(R) − F(C)| / row max"
    for r, row in enumerate(gallery.rows):
        item = row.item
        panels = [item.image, overlay(item.image, item.mask.astype(np.float32), cmap="viridis",
                                      strength=0.5)]
        panels += [colorize(p) for p in row.probs]
        notes = ["", "", *row.notes]
        if single:
            panels.append(error_map(row.probs[0], item.mask, gallery.thresholds[0]))
            notes = ["", "", "", row.notes[0]]
        if row.oracle is not None:
            panels.append(colorize(row.oracle / max(float(row.oracle.max()), 1e-6)))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(np.clip(panel, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=LABEL_PT)
            if c < len(notes) and notes[c]:
                ax.set_xlabel(notes[c], fontsize=LABEL_PT - 1)
        axes[r, 0].set_ylabel(row.caption, fontsize=LABEL_PT)
    for column, ax in enumerate(bar_axes):  # colour scales of the probability and oracle columns
        if column in bars and gallery.rows:
            bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="inferno"), cax=ax,
                               orientation="horizontal")
            bar.set_label(bars[column], fontsize=LABEL_PT - 1)
            bar.ax.tick_params(labelsize=LABEL_PT - 2)
        else:
            ax.axis("off")
    what = ("green hit, red false alarm, blue miss" if single else
            "each method's probability on the same images")
    fig.suptitle(f"{gallery.headline}: worst test images ({what})", fontsize=LABEL_PT + 1)
    return save_figure(fig, path)
