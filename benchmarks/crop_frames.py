"""Copy a labelled image folder with a fixed border cropped off every image (lossless PNG).

The shared CNNDetection sample (``../shared/data/cnndetection``) frames each 256 × 256 picture
in a 50-pixel band whose colour gives the label away (grey: real; a colour per generator:
synthetic); ``fakeseg.data.shortcuts`` finds it. JPEG smears the band's colour a block or two
into the picture, so the default crop keeps the central 232 × 232 (68 pixels off each side).
The copy is checked with :func:`fakeseg.data.shortcuts.find_shortcuts` before it is used.

    python benchmarks/crop_frames.py ../shared/data/cnndetection /tmp/cnndetection_cropped
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from fakeseg.data.labeled import load_labeled
from fakeseg.data.shortcuts import find_shortcuts
from fakeseg.io import list_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with real/ and fake/ (or synthetic/)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--border", type=int, default=68, help="pixels cropped off each side")
    args = parser.parse_args()
    for path in list_images(args.data, recursive=True):
        target = args.out / path.relative_to(args.data).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            b = args.border
            image.convert("RGB").crop((b, b, image.width - b, image.height - b)).save(target)
    found = find_shortcuts(load_labeled(args.out))
    for shortcut in found:
        print(shortcut.message(args.out))
    if found:
        raise SystemExit(f"{args.out}: still has a shortcut; crop more (--border)")
    print(f"{args.out}: no edge-colour or size shortcut left")


if __name__ == "__main__":
    main()
