"""Failure cases: the test images a method gets most wrong, as one picture.

Rows: the ``k`` mixed test images with the lowest Dice at the method's threshold, then the
pure-real image with the most false alarms. Columns: the image, the ground truth, the
predicted probability, the errors at the threshold (green = hit, red = false alarm, blue =
miss) and, when a pair oracle is given, the oracle's |F(R) − F(C)| map beside them, which
tells apart "the features see no difference here" from "the model missed a visible one".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from fakeseg.data.composites import CompositeItem
from fakeseg.evaluation.protocol import (
    LayerMapCache,
    MethodScores,
    Scorer,
    fit_oracle_scales,
    is_mixed,
    oracle_scorer,
)
from fakeseg.viz import colorize, new_figure, overlay, save_figure

HIT, FALSE_ALARM, MISS = (0.2, 0.8, 0.2), (0.9, 0.15, 0.15), (0.2, 0.4, 1.0)
#: font size (points) of the row labels and column titles: at the default 110 dpi and the report's
#: display width (≤ 1.2 × downscale) this stays ≥ 11 px on screen
LABEL_PT = 10


def error_map(prob: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W, 3): hits green, false alarms red, misses blue, true negatives black."""
    flagged = prob >= threshold
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


def failure_gallery(scores: MethodScores, scorer: Scorer, test: Sequence[CompositeItem],
                    path: str | Path, *, k: int = 4,
                    oracle_extractor: torch.nn.Module | None = None,
                    oracle_cache: LayerMapCache | None = None) -> Path:
    """Draw the worst ``k`` mixed test images plus the worst pure-real one; returns ``path``.

    ``oracle_extractor``: a feature backbone for the pair-oracle column (layer scales are fit
    on the rows shown); ``oracle_cache`` shares its maps with the caller's oracle scoring.
    """
    rows: list[tuple[CompositeItem, np.ndarray, str]] = []
    for item, dice in worst_items(scores, test, k):
        rows.append((item, scorer(item), f"{item.name}\nDice {dice:.2f}, "
                                         f"synthetic {item.mask.mean():.0%}"))
    reals = [(item, scorer(item)) for item in test if item.kind == "pure_real"]
    if reals:
        item, prob = max(reals, key=lambda pair: float(np.mean(pair[1] >= scores.threshold)))
        rows.append((item, prob, f"{item.name}\nflagged {np.mean(prob >= scores.threshold):.1%}"
                                 " (all real)"))
    oracle = None
    if oracle_extractor is not None and rows:
        scales = fit_oracle_scales(oracle_extractor, [item for item, _, _ in rows],
                                   cache=oracle_cache)
        oracle = oracle_scorer(oracle_extractor, scales, cache=oracle_cache)
    titles = ["image", "ground truth (synthetic)", "probability",
              f"errors at thr {scores.threshold:.2f}"] + (["pair oracle"] if oracle else [])
    fig = new_figure(2.4 * len(titles), 2.0 * max(len(rows), 1) + 1.3)
    n_rows = max(len(rows), 1)  # plus a thin row of colour bars under the columns
    grid = fig.subplots(n_rows + 1, len(titles), squeeze=False,
                        gridspec_kw={"height_ratios": [1.0] * n_rows + [0.06]})
    axes, bar_axes = grid[:n_rows], grid[n_rows]
    for r, (item, prob, caption) in enumerate(rows):
        oracle_map = oracle(item) if oracle else None
        panels = [item.image, overlay(item.image, item.mask.astype(np.float32), cmap="viridis",
                                      strength=0.5),
                  colorize(prob), error_map(prob, item.mask, scores.threshold)]
        if oracle_map is not None:
            panels.append(colorize(oracle_map / max(float(oracle_map.max()), 1e-6)))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(np.clip(panel, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=LABEL_PT)
        axes[r, 0].set_ylabel(caption, fontsize=LABEL_PT)
    bars = {2: "probability of 'unreal'", 4: "|F(R) − F(C)| / row max"}
    for column, ax in enumerate(bar_axes):  # colour scales of the probability and oracle columns
        if column in bars and rows and (column != 4 or oracle):
            bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="inferno"), cax=ax,
                               orientation="horizontal")
            bar.set_label(bars[column], fontsize=LABEL_PT - 1)
            bar.ax.tick_params(labelsize=LABEL_PT - 2)
        else:
            ax.axis("off")
    fig.suptitle(f"{scores.name}: worst test images (green hit, red false alarm, blue miss)",
                 fontsize=LABEL_PT + 1)
    return save_figure(fig, path)
