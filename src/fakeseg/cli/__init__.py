"""The ``fakeseg`` command: a thin shell over the public functions.

Each module in :data:`COMMAND_MODULES` adds its subcommands through ``register(subparsers,
common)``; a command handler parses nothing itself beyond argparse and only prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fakeseg import __version__
from fakeseg.errors import FakesegError

COMMAND_MODULES: tuple[str, ...] = (
    "fakeseg.cli.data_commands",
    "fakeseg.cli.model_commands",
    "fakeseg.cli.eval_commands",
    "fakeseg.cli.view_commands",
    "fakeseg.cli.spectral_commands",
    "fakeseg.cli.classify_commands",
    "fakeseg.cli.detection_commands",
)

#: commands that take more than a moment: they announce themselves before importing torch
LONG_COMMANDS = frozenset({"train", "predict", "evaluate", "benchmark", "featdiff", "fingerprint",
                           "defingerprint", "fid", "classify", "experiment", "demo", "heatmap"})


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    common.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars or progress lines (errors and results still print)")
    common.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="decompression-bomb limit per image in pixels (default 100,000,000)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = OneLineParser(
        prog="fakeseg",
        description="Show where and why synthetic images look unreal.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fakeseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=OneLineParser)
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    from fakeseg.progress import say, set_quiet

    set_quiet(bool(getattr(args, "quiet", False)))
    if args.command in LONG_COMMANDS:  # before the heavy imports, so a user sees life at once
        say(f"fakeseg {args.command}: loading…")
    try:
        from fakeseg.io import set_max_pixels

        if getattr(args, "max_pixels", None) is not None:
            set_max_pixels(args.max_pixels)
        return int(args.handler(args) or 0)
    except FakesegError as exc:
        if debug:
            raise
        print(f"fakeseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fakeseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(
            f"fakeseg: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
