"""``fakeseg fingerprint``, ``fakeseg defingerprint`` and ``fakeseg fid``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example

    fp = subparsers.add_parser(
        "fingerprint", parents=[common], help="spectral fingerprint of synthetic vs real images",
        description="FP(R,S) = mean log|T(S)| - mean log|T(R)| per channel and on luminance "
                    "(Wimmer et al. Eq. 1); writes fingerprint.png, fingerprint_channels.png, "
                    "radial_spectra.png, peaks.csv, fingerprint.npy and fingerprint.json.",
        epilog=example("fakeseg fingerprint --real data/pairs/real --synthetic "
                       "data/pairs/synthetic --out runs/fingerprint --transform dct"),
    )
    fp.add_argument("--real", required=True, nargs="+", metavar="PATH",
                    help="real images: folders, files or globs")
    fp.add_argument("--synthetic", required=True, nargs="+", metavar="PATH",
                    help="synthetic images: folders, files or globs")
    fp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    fp.add_argument("--transform", choices=("fft", "dct"), default="fft",
                    help="the spectrum: Fourier magnitude or type-II DCT")
    fp.add_argument("--crop", choices=("center", "tiles"), default="center",
                    help="one centre crop per image, or every non-overlapping tile")
    fp.add_argument("--size", type=int, default=256, metavar="PX", help="crop side in pixels")
    fp.add_argument("--peaks", type=int, default=10, metavar="N",
                    help="how many peaks to list in peaks.csv")
    fp.set_defaults(handler=_fingerprint)

    de = subparsers.add_parser(
        "defingerprint", parents=[common], help="remove a generator fingerprint (MSA / FPA)",
        description="Fits the Mean-Spectrum (msa) or Frequency-Peaks (fpa) attack of Wesselkamp "
                    "et al. on real vs synthetic images and applies it to --apply-to (default: "
                    "the synthetic images); writes images/, filter.npy and attack.json.",
        epilog=example("fakeseg defingerprint --method fpa --real photos/ --synthetic renders/ "
                       "--out runs/fpa --k 0.5"),
    )
    de.add_argument("--method", required=True, choices=("msa", "fpa"),
                    help="mean-spectrum attack, or frequency-peaks attack")
    de.add_argument("--real", required=True, nargs="+", metavar="PATH",
                    help="real images: folders, files or globs")
    de.add_argument("--synthetic", required=True, nargs="+", metavar="PATH",
                    help="synthetic images: folders, files or globs")
    de.add_argument("--apply-to", nargs="+", metavar="PATH",
                    help="images to attack (default: the synthetic images)")
    de.add_argument("--out", required=True, metavar="DIR", help="output folder")
    de.add_argument("--k", type=float, default=1.0, metavar="K",
                    help="attack strength (1: the full fitted correction)")
    de.add_argument("--t", type=float, default=None, metavar="T",
                    help="FPA peak threshold in [0, 1] (default: 0.3)")
    de.add_argument("--size", type=int, default=256, metavar="PX", help="crop side in pixels")
    de.set_defaults(handler=_defingerprint)

    fid = subparsers.add_parser(
        "fid", parents=[common], help="Fréchet distance between two image sets",
        description="FID in InceptionV3 pool features when those weights are local (or given); "
                    "otherwise FD in the pooled features of the package-shipped MobileNetV2 or "
                    "EfficientNet-Lite0, named as such (FD[mobilenet_v2]), never 'FID'.",
        epilog=example("fakeseg fid data/pairs/real data/pairs/synthetic --out runs/fid.json"),
    )
    fid.add_argument("a", metavar="A", help="set A: folder or glob")
    fid.add_argument("b", metavar="B", help="set B: folder or glob")
    fid.add_argument("--features", default="auto", metavar="NAME",
                     help="auto | inception_v3 | mobilenet_v2 | efficientnet_lite0 | "
                          "efficientnet_b0 | densenet121")
    fid.add_argument("--weights", "--backbone-weights", dest="weights", default="auto",
                     metavar="WEIGHTS",
                     help="auto | imagenet | random | PATH (random is named in the output)")
    fid.add_argument("--size", type=int, default=None, metavar="PX",
                     help="resize side (default: 299 for InceptionV3, else 224)")
    fid.add_argument("--batch-size", type=int, default=16, metavar="N",
                     help="images per forward pass")
    fid.add_argument("--out", metavar="FILE.json",
                     help="also write the result to this JSON file (default: print only)")
    fid.set_defaults(handler=_fid)


def _fingerprint(args: argparse.Namespace) -> int:
    from fakeseg.io import expand_inputs
    from fakeseg.spectral.fingerprint import compute_fingerprint, save_fingerprint_outputs

    fp = compute_fingerprint(expand_inputs(args.real), expand_inputs(args.synthetic),
                             size=args.size, transform=args.transform, crop=args.crop,
                             progress=True)
    files = save_fingerprint_outputs(fp, args.out, k=args.peaks)
    null = "n/a" if fp.energy_null is None else f"{fp.energy_null:.4f}"
    print(f"fingerprint ({fp.transform_label}, {fp.n_real} real vs {fp.n_synthetic} synthetic, "
          f"{fp.size}px {fp.crop}): {files['luminance_png']}")
    print(f"energy {fp.energy:.4f} (chance level {null}); bands "
          + ", ".join(f"{k} {v:.4f}" for k, v in fp.band_energy.items()))
    for rank, peak in enumerate(fp.peaks(min(3, args.peaks)), 1):
        flag = "significant" if fp.is_significant(peak) else "within chance"
        z = "" if peak.z is None else f", z {peak.z:.1f}"
        print(f"  peak {rank}: (fy {peak.fy:+.3f}, fx {peak.fx:+.3f}) cycles/px, "
              f"FP {peak.magnitude:+.3f}{z} ({flag})")
    if fp.skipped:
        print(f"fakeseg: {len(fp.skipped)} image(s) skipped, see {files['json']}",
              file=sys.stderr)
        return 1
    return 0


def _defingerprint(args: argparse.Namespace) -> int:
    from fakeseg.io import expand_inputs
    from fakeseg.spectral.attacks import DEFAULT_T, defingerprint

    apply_to = expand_inputs(args.apply_to) if args.apply_to else None
    result = defingerprint(args.method, expand_inputs(args.real),
                           expand_inputs(args.synthetic), apply_to, args.out, k=args.k,
                           t=DEFAULT_T if args.t is None else args.t, size=args.size,
                           progress=True)
    energy = result["fingerprint"]
    psnr = result["mean_psnr_db"]
    print(f"{args.method.upper()}: {result['n_attacked']} image(s) in {args.out}/images "
          f"(details: {result['attack_json']})")
    print(f"fingerprint energy {energy['before']['energy']:.4f} → "
          f"{energy['after']['energy']:.4f} (chance level "
          f"{energy['after']['energy_null'] or float('nan'):.4f}); mean PSNR "
          + ("n/a" if psnr is None else f"{psnr:.1f} dB"))
    if result["skipped"]:
        print(f"fakeseg: {len(result['skipped'])} image(s) skipped, see {result['attack_json']}",
              file=sys.stderr)
        return 1
    return 0


def _fid(args: argparse.Namespace) -> int:
    from fakeseg.config import versions
    from fakeseg.features.frechet import frechet_distance
    from fakeseg.io import write_json

    result = frechet_distance(args.a, args.b, features=args.features, weights=args.weights,
                              batch_size=args.batch_size, size=args.size, progress=True)
    print(str(result))
    if result.note:
        print(f"note: {result.note}")
    if args.out:
        print(f"written to {write_json(args.out, {**result.to_json(), 'versions': versions()})}")
    return 0
