"""Running the CLI against a case and checking the outcome the same way every time."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from fakeseg.cli import main

#: a training run that takes seconds on one CPU thread (random backbone weights)
TINY_RUN = dict(backbone_weights="random", crop_size=64, batch_size=2, steps=4,
                steps_per_epoch=2, encoder="resnet18", reduce_channels=8, amp=False,
                device="cpu", val_fraction=0.25, test_fraction=0.25, p_reencode=0.0,
                early_stopping=0)


def tiny_sets(**changes: object) -> list[str]:
    """``--set KEY=VALUE`` pairs for :data:`TINY_RUN` with ``changes``."""
    args: list[str] = []
    for key, value in {**TINY_RUN, **changes}.items():
        args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return args


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``fakeseg ARGS --quiet`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> str:
    """stderr is exactly one ``fakeseg: error:`` line holding every fragment; no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    line = lines[0]
    assert line.startswith("fakeseg: error: "), line
    assert "Traceback" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def assert_problem_line(err: str, *fragments: str) -> str:
    """Among ``data check``'s one-line problems, one holds every fragment."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "internal error" not in err, err
    assert all(line.startswith("fakeseg: problem: ") for line in lines), err
    hits = [line for line in lines if all(f in line for f in fragments)]
    assert hits, f"no problem line with {fragments} in {err!r}"
    return hits[0]


# --------------------------------------------------------------- processes that can be killed


def _cli_child(argv: list[str], kill_at: str | None) -> None:
    import torch

    torch.set_num_threads(1)  # fast on a busy machine, and the same in every child
    if kill_at:
        os.environ["FAKESEG_TEST_KILL_AT"] = kill_at
    raise SystemExit(main(argv))


_context: multiprocessing.context.BaseContext | None = None


def forked_cli(argv: list[str], kill_at: str | None = None, timeout: float = 300) -> int:
    """Run the CLI in a separate process (forked from a server that imported fakeseg once,
    so each run skips the slow torch import); returns its exit code (-9: SIGKILLed)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["fakeseg.cli", "fakeseg.training.segmentation",
                                         "tests.robustness.helpers"])
    process = _context.Process(target=_cli_child, args=(argv, kill_at))  # type: ignore[attr-defined]
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        raise AssertionError(f"fakeseg {' '.join(argv)} did not finish in {timeout} s")
    return int(process.exitcode or 0)


def weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))
