"""The command line itself: parsing, help texts, exit codes and progress in a log."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import fakeseg.cli.data_commands as data_commands
from fakeseg.cli import EXIT_CODES, build_parser, main
from fakeseg.cli.model_commands import train_config_from_args
from tests.conftest import make_pairs

ROOT = Path(__file__).resolve().parents[1]
#: train options for a run of a few seconds (random backbone, tiny crops, 2 steps)
TINY_SETS = ["backbone_weights=random", "crop_size=64", "batch_size=4", "steps=2",
             "steps_per_epoch=2", "encoder=resnet18", "reduce_channels=8", "amp=false",
             "device=cpu", "val_fraction=0.25", "test_fraction=0.25", "p_reencode=0"]


def all_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for fakeseg and every command and action under it."""
    pending = [("fakeseg", build_parser())]
    while pending:
        name, parser = pending.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{name} {sub}", p) for sub, p in action.choices.items()]


def option_entries(help_text: str) -> dict[str, str]:
    """Option string → its whole entry (invocation and help, unwrapped) in a help page."""
    entries: list[str] = []
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            entries.append(line.strip())
        elif entries and line.startswith("   ") and line.strip():
            entries[-1] += " " + line.strip()
        elif not line.strip() or not line.startswith(" "):
            entries.append("")  # a blank line or a heading ends the entry before it
    found: dict[str, str] = {}
    for entry in entries:
        for token in re.findall(r"(?:^|, )(--?[\w-]+)", entry):
            found[token] = entry
    return found


def test_set_takes_one_pair_per_flag_and_never_swallows_data() -> None:
    parser = build_parser()
    before = parser.parse_args(["train", "--set", "steps=2", "DATA", "--out", "RUN"])
    after = parser.parse_args(["train", "DATA", "--set", "steps=2", "--set", "lr=0.01",
                               "--out", "RUN"])
    assert (before.data, before.out, before.overrides) == ("DATA", "RUN", ["steps=2"])
    assert (after.data, after.out, after.overrides) == ("DATA", "RUN", ["steps=2", "lr=0.01"])
    config = train_config_from_args(after)
    assert (config.steps, config.lr) == (2, 0.01)
    default = train_config_from_args(parser.parse_args(["train", "D", "--out", "R"]))
    assert (default.steps, default.minutes) == (1500, 5.0)
    assert train_config_from_args(parser.parse_args(
        ["train", "D", "--out", "R", "--minutes", "0"])).minutes == 0
    bench = parser.parse_args(["benchmark", "--set", "steps=2", "DATA", "--out", "B"])
    assert (bench.data, bench.overrides) == ("DATA", ["steps=2"])
    assert train_config_from_args(bench).steps == 2


@pytest.mark.parametrize(("extra", "message"), [
    (["--train-pairs", "1"], "--train-pairs and --only-folds need --folds K"),
    (["--only-folds", "0"], "--train-pairs and --only-folds need --folds K"),
    (["--folds", "3", "--only-folds", "0,3"], "--only-folds 0,3: folds are numbered 0 to 2"),
])
def test_benchmark_fold_options_are_checked_before_any_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
        message: str) -> None:
    data = make_pairs(tmp_path / "pairs", n=3)
    assert main(["benchmark", str(data), "--out", str(tmp_path / "b"), *extra]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("fakeseg: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in err and not (tmp_path / "b" / "repeat0").exists()


def test_benchmark_only_folds_must_be_fold_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["benchmark", "D", "--out", "B", "--only-folds", "a"])
    assert exc.value.code == 2
    assert "expected fold numbers like 0,2, got 'a'" in capsys.readouterr().err


def test_set_with_two_pairs_after_one_flag_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--set", "steps=2", "lr=0.01", "DATA", "--out", "R"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: DATA" in err


def test_common_options_before_the_command_are_kept() -> None:
    parser = build_parser()
    for argv in (["-q", "--max-pixels", "5", "data", "check", "D"],
                 ["data", "check", "D", "-q", "--max-pixels", "5"]):
        args = parser.parse_args(argv)
        assert args.quiet is True and args.max_pixels == 5
    assert not hasattr(parser.parse_args(["data", "check", "D"]), "quiet")


def test_every_help_ends_with_an_example_that_parses() -> None:
    parser = build_parser()
    for name, sub in all_parsers():
        text = sub.format_help()
        assert "\nExample:\n" in text, name
        example = text.rsplit("\nExample:\n", 1)[1].replace("\\\n", " ")
        argv = shlex.split(example)
        assert argv[0] == "fakeseg" and " ".join(argv[1:]).startswith(name[len("fakeseg "):]), \
            (name, example)
        parser.parse_args(argv[1:])  # a usage error would exit


def test_every_option_has_a_meaning_and_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    checked = 0
    for name, parser in all_parsers():
        entries = option_entries(parser.format_help())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
            if not action.option_strings or action.nargs == 0 or action.required:
                continue
            entry = entries[action.option_strings[0]]
            assert "(default: " in entry, f"{name}: {entry}"
            checked += 1
    assert checked > 80


def test_defaults_in_help_texts_are_the_library_defaults() -> None:
    from fakeseg.data.labeled import DEFAULT_AUGMENT, DEFAULT_SOURCE_PATTERN
    from fakeseg.features.frechet import DEFAULT_SIZE, DEFAULT_SIZES
    from fakeseg.io import DEFAULT_MAX_PIXELS
    from fakeseg.spectral.attacks import DEFAULT_T
    from fakeseg.workflows.demo import DEMO_STEPS

    helps = {name: " ".join(p.format_help().split()) for name, p in all_parsers()}
    assert f"(default: {DEFAULT_MAX_PIXELS})" in helps["fakeseg"]
    assert f"(default: {DEMO_STEPS})" in helps["fakeseg demo"]
    assert f"(default: {','.join(DEFAULT_AUGMENT)})" in helps["fakeseg classify train"]
    assert f"(default: '{DEFAULT_SOURCE_PATTERN}'" in helps["fakeseg classify eval"]
    assert f"(default: {DEFAULT_T})" in helps["fakeseg defingerprint"]
    assert (f"(default: {DEFAULT_SIZES['inception_v3']} for InceptionV3, else {DEFAULT_SIZE})"
            in helps["fakeseg fid"])
    assert "16-bit: probability × 65535" in helps["fakeseg predict"]


def test_help_needs_no_torch() -> None:
    code = ("import sys; from fakeseg.cli import build_parser; build_parser().format_help(); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')); "
            "assert not heavy, heavy")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_exit_codes_are_documented_in_help_and_readme() -> None:
    top = build_parser().format_help()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^  {code}\s+{re.escape(meaning)}$", top, re.M), code
        assert f"\n| {code} | {meaning} |\n" in section, code


def test_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["train"])  # DATA and --out missing
    assert exc.value.code == 2
    data = make_pairs(tmp_path / "pairs", n=2)
    assert main(["data", "check", str(data)]) == 0
    (data / "synthetic" / "lonely.png").write_bytes((data / "real" / "p0.png").read_bytes())
    assert main(["data", "check", str(data)]) == 1  # an unpaired file: some inputs failed
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    capsys.readouterr()

    def crash(args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    def interrupt(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(data_commands, "_weights", crash)
    assert main(["weights"]) == 70
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err
    with pytest.raises(RuntimeError):
        main(["weights", "--debug"])
    monkeypatch.setattr(data_commands, "_weights", interrupt)
    assert main(["weights"]) == 130
    assert capsys.readouterr().err == "fakeseg: interrupted\n"


@pytest.mark.slow  # a subprocess or several trainings: big by nature
def test_train_logs_progress_with_an_eta_when_stderr_is_a_file(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=4)
    run = tmp_path / "run"
    argv = ["train", str(data), "--out", str(run)]
    for item in TINY_SETS:
        argv += ["--set", item]
    # -X importtime logs each import to stderr as it completes: the first words must come first
    command = [sys.executable, "-X", "importtime", "-c",
               "import sys; from fakeseg.cli import main; sys.exit(main(sys.argv[1:]))", *argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "2"}
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                              env=env, timeout=300)
    lines = log.read_text().splitlines()
    assert done.returncode == 0, "\n".join(lines[-20:])
    assert "best checkpoint:" in done.stdout
    said = [line for line in lines if not line.startswith("import time:")]
    assert said[0] == "fakeseg train: loading…"
    first_torch = next(i for i, line in enumerate(lines) if re.search(r"\|\s+torch\b", line))
    assert lines.index(said[0]) < first_torch  # said before torch is even imported
    progress = [line for line in said if line.startswith("train: ")]
    assert len(progress) >= 2 and all("ETA" in line and re.search(r"\w/s|s/\w", line)
                                      for line in progress), progress
    assert progress[-1].startswith("train: 2/2")
    assert f"split: 2 training, 1 validation, 1 test pairs ({run / 'split.json'})" in said
    assert not any("\r" in line for line in lines)


def test_quiet_fingerprint_with_an_unreadable_image_warns_once_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fakeseg.io import write_image
    from fakeseg.progress import set_quiet

    rng = np.random.default_rng(0)
    for side in ("real", "synthetic"):
        for i in range(3):
            write_image(tmp_path / side / f"{i}.png", rng.random((32, 32, 3)))
    (tmp_path / "real" / "broken.png").write_bytes(b"not a png")
    argv = ["fingerprint", "--real", str(tmp_path / "real"), "--synthetic",
            str(tmp_path / "synthetic"), "--out", str(tmp_path / "fp"), "--size", "32"]
    try:
        assert main([*argv, "--quiet"]) == 1
        quiet = capsys.readouterr().err.splitlines()
        assert main(argv) == 1
        loud = capsys.readouterr().err.splitlines()
    finally:
        set_quiet(False)
    skipped = [line for line in quiet if line.startswith("fakeseg: skipped:")]
    assert len(skipped) == 1 and "broken.png" in skipped[0]
    assert len(quiet) == 2 and "1 image(s) skipped" in quiet[1]  # no progress, no "loading…"
    assert loud[0] == "fakeseg fingerprint: loading…" and any("ETA" in line for line in loud)
