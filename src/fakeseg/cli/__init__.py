"""The ``fakeseg`` command: a thin shell over the public functions.

Each module in :data:`COMMAND_MODULES` adds its subcommands through ``register(subparsers,
common)``; a command handler parses nothing itself beyond argparse and only prints. Every parser
uses :class:`HelpFormatter` (each option shows its default) and ends its help with one
:func:`example`. Exit codes live in :data:`EXIT_CODES` (printed by ``fakeseg --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

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
    "fakeseg.cli.enhance_commands",
)

#: commands that take more than a moment: they announce themselves before importing torch
LONG_COMMANDS = frozenset({"benchmark-detection",
                           "train", "predict", "evaluate", "benchmark", "featdiff", "fingerprint",
                           "defingerprint", "fid", "classify", "experiment", "demo", "heatmap",
                           "enhance"})

EXIT_OK = 0
EXIT_SOME_INPUTS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

#: what each exit code means; shown in ``fakeseg --help`` and the README
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_SOME_INPUTS_FAILED: "some inputs failed (each is named on stderr); the rest was written",
    EXIT_USAGE: "usage or input error: one line 'fakeseg: error: ...' names the file and the fix",
    EXIT_INTERNAL: "internal error, a bug: rerun with --debug and please report the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); rerun with --resume where the command has it",
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option that takes a value shows its default; text keeps its line breaks.

    Descriptions and epilogs wrap line by line; lines that start with a space (examples, the
    exit-code table) stay as written.

    An option whose default is ``None`` (decided later, e.g. "the backbone's") must say what
    that means in its own help text, as ``(default: ...)``; tests/test_cli.py checks it.
    """

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("max_help_position", 32)
        super().__init__(prog, **kwargs)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                lines.append(indent + line)
            else:
                lines += textwrap.wrap(line, width, initial_indent=indent,
                                       subsequent_indent=indent)
        return "\n".join(lines)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        takes_value = bool(action.option_strings) and action.nargs != 0
        if (takes_value and not action.required and "(default" not in text
                and action.default not in (None, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


EXAMPLE_WIDTH = 78


def example(command: str) -> str:
    """The epilog that ends a command's help: one realistic invocation.

    A long command is broken before an option (never between an option and its value), with
    shell line continuations, so it can be pasted as it is shown.
    """
    groups: list[str] = []
    for token in command.split():
        if token.startswith("-") or not groups:
            groups.append(token)
        else:
            groups[-1] += f" {token}"
    lines = ["  " + groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + len(group) + 3 > EXAMPLE_WIDTH:
            lines[-1] += " \\"
            lines.append("      " + group)
        else:
            lines[-1] += f" {group}"
    return "Example:\n" + "\n".join(lines)


DEVICE_HELP = "auto | cpu | cuda; auto picks cuda when present"


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default auto), as every command that runs a network has it."""
    parser.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)


def add_mask_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--images``, ``--masks``, ``--resize-masks`` and ``--invert-masks``: a localisation set
    (images + binary masks of the same stems), as ``train`` and ``evaluate`` read it."""
    parser.add_argument("--images", metavar="DIR",
                        help=f"image folder, {what} (default: none, paired mode)")
    parser.add_argument("--masks", metavar="DIR",
                        help="binary ground-truth masks (0/1 or 0/255, white = synthetic) with "
                             "the images' stems (default: none)")
    parser.add_argument("--resize-masks", action="store_true",
                        help="resample masks whose size differs from the image (default: "
                             "refuse them)")
    parser.add_argument("--invert-masks", action="store_true",
                        help="masks mark real (not manipulated) pixels (default: they mark "
                             "synthetic pixels)")


def exit_code_help() -> str:
    rows = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())
    return f"Exit codes:\n{rows}"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line that points at --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def common_options() -> argparse.ArgumentParser:
    """--debug, --quiet and --max-pixels, accepted before or after the command name.

    Their default is SUPPRESS so that a subcommand's parser does not reset a value given
    before the command (``fakeseg -q train ...``); readers use ``getattr(args, name, default)``.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or progress lines (errors and results still print)")
    common.add_argument(
        "--max-pixels", type=int, default=argparse.SUPPRESS, metavar="N",
        help="refuse images larger than N pixels, a decompression-bomb guard "
             "(default: 100000000)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = OneLineParser(
        prog="fakeseg",
        description="Show where and why synthetic images look unreal.",
        epilog=f"{exit_code_help()}\n\nEvery command has --help with its options and an "
               "example.\n\n" + example("fakeseg predict runs/demo/train renders/ --out heat"),
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fakeseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                       parser_class=OneLineParser)
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers, common)
    return parser


def _run(args: argparse.Namespace) -> int:
    from fakeseg.progress import say, set_quiet

    set_quiet(bool(getattr(args, "quiet", False)))
    if args.command in LONG_COMMANDS:  # before the heavy imports, so a user sees life at once
        say(f"fakeseg {args.command}: loading…")
    from fakeseg.io import set_max_pixels

    set_max_pixels(getattr(args, "max_pixels", None))
    return int(args.handler(args) or EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see :data:`EXIT_CODES`).

    Usage errors exit 2 from argparse itself (``SystemExit``), as ``--help`` exits 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given (``train --nproc`` hands it to torchrun)
    debug = bool(getattr(args, "debug", False))
    try:
        return _run(args)
    except FakesegError as exc:
        if debug:
            raise
        print(f"fakeseg: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fakeseg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        print(
            f"fakeseg: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
