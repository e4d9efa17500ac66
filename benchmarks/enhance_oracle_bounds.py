"""How far can any refiner move the pair oracle and the FD? Edits of known quality.

``fakeseg enhance`` is judged by the pair oracle, mean |F(R) − F(y)| over a backbone's layers
(R the real partner, y the edited render), and by the Fréchet distance between y's tiles and
the real partners' tiles. This script applies edits whose relation to R is known, on the
benchmark split's test pairs, and reports the oracle's relative fall and the FD for each:

* ``toward R ×k``: y = x + k·(R − x), every pixel k of the way (k = 0.25, 0.5);
* ``coarse part of R − x, σ``: y = x + G_σ * (R − x), a perfect correction of everything
  coarser than a Gaussian of σ pixels: what a refiner that knew R's tone and shading exactly,
  but none of its pixel-level detail, would score;
* ``fine part of R − x (σ = 2)``: the rest, y = x + (R − x) − G_2 * (R − x);
* ``global colour``: x's per-channel mean and spread matched to R's (uses R: an upper bound
  of any global colour grade) and an affine colour map fitted on the training pairs;
* ``linear K×K filter``: the least-squares K×K×3 → 3 filter from x to R − x, fitted on pixels
  of the training pairs and applied to the test renders: how much of R − x a shift-invariant
  linear map of x predicts.

    python benchmarks/enhance_oracle_bounds.py --split RUN/split.json

Writes ``benchmarks/results/enhance_vistas/oracle_bounds.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter

from fakeseg.config import versions
from fakeseg.data.pairs import index_pairs, load_pair, load_split, make_split
from fakeseg.enhance.verify import oracle_discrepancy, tile_moments, tile_side
from fakeseg.features.frechet import frechet_from_moments
from fakeseg.features.registry import build_backbone
from fakeseg.features.trunks import build_trunk
from fakeseg.io import write_json, write_text

HERE = Path(__file__).resolve().parent
SHARED = Path("/work/shared/data/epe_vistas")
Edit = tuple[str, np.ndarray]


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(image, (sigma, sigma, 0)).astype(np.float32)


def neighbourhoods(image: np.ndarray, side: int) -> np.ndarray:
    """(H·W, side²·3 + 1): every pixel's reflect-padded side × side neighbourhood, and a 1."""
    half = side // 2
    padded = np.pad(image, ((half, half), (half, half), (0, 0)), mode="reflect")
    windows = sliding_window_view(padded, (side, side), axis=(0, 1))
    flat = windows.reshape(image.shape[0] * image.shape[1], -1)
    return np.concatenate([flat, np.ones((len(flat), 1), flat.dtype)], axis=1)


def fit_filter(train: list[tuple[np.ndarray, np.ndarray]], side: int, per_pair: int,
               seed: int) -> np.ndarray:
    """Ridge least squares from x's neighbourhoods to R − x, on sampled training pixels."""
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for real, synthetic in train:
        rows = neighbourhoods(synthetic, side)
        take = rng.choice(len(rows), min(per_pair, len(rows)), replace=False)
        inputs.append(rows[take])
        targets.append((real - synthetic).reshape(-1, 3)[take])
    a, b = np.concatenate(inputs).astype(np.float64), np.concatenate(targets)
    return np.linalg.solve(a.T @ a + 1e-2 * np.eye(a.shape[1]), a.T @ b)


def fit_colour_map(train: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Affine RGB → RGB map from the training renders to their real partners."""
    x = np.concatenate([s.reshape(-1, 3) for _, s in train])
    y = np.concatenate([r.reshape(-1, 3) for r, _ in train])
    design = np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1)[::7]
    return np.linalg.lstsq(design, y[::7], rcond=None)[0]


def edits(real: np.ndarray, synthetic: np.ndarray, colour_map: np.ndarray,
          filters: dict[int, np.ndarray]) -> list[Edit]:
    difference = real - synthetic
    height, width = synthetic.shape[:2]
    found: list[Edit] = [("(the render x itself)", synthetic)]
    found += [(f"toward R ×{k}", synthetic + k * difference) for k in (0.25, 0.5)]
    found += [(f"coarse part of R − x, σ = {s} px", synthetic + smooth(difference, s))
              for s in (1, 2, 4, 8)]
    found.append(("fine part of R − x (σ = 2 px)",
                  synthetic + difference - smooth(difference, 2)))
    mean, spread = synthetic.mean((0, 1)), synthetic.std((0, 1))
    found.append(("global colour: mean and spread of R (uses R)",
                  (synthetic - mean) / spread * real.std((0, 1)) + real.mean((0, 1))))
    flat = np.concatenate([synthetic.reshape(-1, 3), np.ones((height * width, 1),
                                                             np.float32)], axis=1)
    found.append(("global colour: affine map fitted on the training pairs",
                  (flat @ colour_map).reshape(synthetic.shape)))
    for side, weights in filters.items():
        predicted = (neighbourhoods(synthetic, side) @ weights).reshape(synthetic.shape)
        found.append((f"linear {side}×{side} filter fitted on the training pairs",
                      synthetic + predicted))
    return [(name, np.clip(image, 0, 1).astype(np.float32)) for name, image in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vistas", type=Path, default=SHARED)
    parser.add_argument("--split", type=Path, help="a run's split.json (default: fakeseg "
                        "train's split of --vistas, seed 0)")
    parser.add_argument("--backbones", default="ssdlite_mobilenet_v2,efficientnet_lite0")
    parser.add_argument("--fd-features", default="mobilenet_v2,efficientnet_lite0")
    parser.add_argument("--filter-sides", default="3,7")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "enhance_vistas")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    index = index_pairs(args.vistas)
    split = load_split(args.split) if args.split else make_split(index.stems)
    pairs = {p.stem: load_pair(p) for p in index.pairs if p.stem in split.train + split.test}
    train = [(pairs[s].real, pairs[s].synthetic) for s in split.train]
    colour_map = fit_colour_map(train)
    filters = {side: fit_filter(train, side, 40_000, seed=0)
               for side in map(int, args.filter_sides.split(","))}
    device = torch.device("cpu")
    edited = {s: edits(pairs[s].real, pairs[s].synthetic, colour_map, filters)
              for s in split.test}
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.backbones.split(","):
        extractor = build_backbone(name)
        for stem, found in edited.items():
            real, synthetic = pairs[stem].real, pairs[stem].synthetic
            before = oracle_discrepancy(extractor, real, synthetic, device)
            for edit, image in found:
                after = oracle_discrepancy(extractor, real, image, device)
                rows.setdefault(edit, {}).setdefault(name, {})[stem] = after / before - 1
                rows[edit].setdefault("pixel L1", {})[stem] = float(np.abs(image - real).mean())
    # FD as enhance measures it: tiles of the edited test renders against their real partners
    reals = [pairs[s].real for s in split.test]
    fds: dict[str, dict[str, float]] = {}
    for name in args.fd_features.split(","):
        trunk = build_trunk(name, "auto").eval()
        side = tile_side(reals)
        real_moments = tile_moments(trunk, reals, trunk.dims, side, device)
        for group in zip(*edited.values(), strict=True):
            moments = tile_moments(trunk, [image for _, image in group], trunk.dims, side,
                                   device)
            fds.setdefault(group[0][0], {})[name] = frechet_from_moments(
                moments.mean, moments.covariance, real_moments.mean, real_moments.covariance)
    names = args.backbones.split(",")
    fd_names = args.fd_features.split(",")
    intro = (f"test pairs {', '.join(split.test)}; fitted edits use the training pairs "
             f"{', '.join(split.train)}. Oracle: relative change of mean |F(R) − F(y)| against "
             "y = x, mean over the test pairs (per pair in the JSON). Pixel L1: mean |y − R|. "
             "FD: the edited test renders' tiles against their real partners' (as `fakeseg "
             "enhance` measures it).")
    lines = ["# How far any edit moves the pair oracle and the FD: edits of known quality on "
             "the test pairs", "", intro, "",
             "| edit | " + " | ".join(f"oracle, {n}" for n in names) + " | pixel L1 | "
             + " | ".join(f"FD, {n}" for n in fd_names) + " |",
             "|---|" + "---|" * (len(names) + 1 + len(fd_names))]
    for edit, values in rows.items():
        cells = [f"{np.mean(list(values[n].values())):+.1%}" if n in values else ""
                 for n in names]
        lines.append(f"| {edit} | " + " | ".join(cells)
                     + f" | {np.mean(list(values['pixel L1'].values())):.3f} | "
                     + " | ".join(f"{fds[edit][n]:.2f}" for n in fd_names) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "oracle_bounds.json", {
        "split": {"train": split.train, "test": split.test}, "rows": rows, "fd": fds,
        "versions": versions()})
    write_text(args.out / "oracle_bounds.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
