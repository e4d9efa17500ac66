"""Bulk predict: path lists, DataLoader workers, shards sharing one --out, merge, and cheap
folder locks (no scan of a big output folder on every start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fakeseg.cli import main
from fakeseg.errors import FakesegError
from fakeseg.inference.localizer import Localizer
from fakeseg.inference.predict import Shard, merge_predictions, predict
from fakeseg.io import LOCK_FILE, TEMP_DIR, expand_inputs, folder_lock, write_image
from tests.conftest import smooth_image
from tests.test_predict import model, run  # noqa: F401 - module-scoped fixtures


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    folder = tmp_path / "images"
    for i in range(5):
        write_image(folder / f"im{i}.png", smooth_image(rng, 32, 40 + 8 * (i % 2)))
    return folder


def _rows(out: Path, name: str = "results.jsonl") -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def _one_set_each(out: Path, names: list[str]) -> None:
    """Every image has exactly one row and one complete set of files, nothing else."""
    rows = _rows(out)
    assert sorted(str(r["name"]) for r in rows) == sorted(names)
    for suffix in ("_heat.npy", "_mask.png", "_overlay.jpg"):  # the default outputs
        assert sorted(p.name for p in out.rglob(f"*{suffix}")) == sorted(
            f"{n}{suffix}" for n in names)
    assert not list(out.rglob("*_heat.png")) and not list(out.rglob("*_overlay.png"))
    assert len((out / "results.csv").read_text().strip().splitlines()) == len(names) + 1
    assert not list(out.glob("*shard*")) and not (out / TEMP_DIR).exists()


def test_text_list_of_paths_relative_comments_and_missing(model: Localizer,  # noqa: F811
                                                           images: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    listing = tmp_path / "lists" / "todo.txt"
    listing.parent.mkdir()
    listing.write_text("# renders to check\n../images/im0.png\n\n  ../images/im3.png  \n"
                       "../images/gone.png\n# ../images/im1.png\n")
    paths = expand_inputs([str(listing)])
    assert [p.name for p in paths] == ["gone.png", "im0.png", "im3.png"]
    out = tmp_path / "pred"
    summary = predict(model, [str(listing)], out, workers=1, progress=False)
    assert summary.n_done == 2 and len(summary.skipped) == 1
    assert summary.skipped[0].input.endswith("gone.png")
    assert "no such file" in summary.skipped[0].reason.lower()
    assert "fakeseg: skipped:" in capsys.readouterr().err
    assert sorted(r["name"] for r in summary.rows) == ["im0", "im3"]


def test_bad_file_in_a_worker_is_one_skipped_line(model: Localizer, images: Path,  # noqa: F811
                                                  tmp_path: Path) -> None:
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_image(images / "tiny.png", np.zeros((4, 4, 3), np.float32))
    summary = predict(model, [images], tmp_path / "pred", workers=1, batch_size=2,
                      progress=False)
    assert summary.n_done == 5 and len(summary.skipped) == 2
    assert any(s.input.endswith("broken.png") for s in summary.skipped)
    assert any(s.input.endswith("tiny.png") and "4x4" in s.reason for s in summary.skipped)
    inline = predict(model, [images], tmp_path / "inline", workers=0, batch_size=2,
                     progress=False)
    for row in summary.rows:  # the same maps whether decoded in a worker or inline
        np.testing.assert_array_equal(np.load(summary.out / str(row["heat_npy"])),
                                      np.load(inline.out / str(row["heat_npy"])))


def test_shards_share_one_out_and_the_last_one_merges(model: Localizer,  # noqa: F811
                                                      images: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    first = predict(model, [images], out, shard=Shard(1, 3), progress=False)
    assert first.n_done == 2 and not first.merged  # im1, im4
    assert sorted(r["name"] for r in _rows(out, "results.shard-1-of-3.jsonl")) == ["im1", "im4"]
    assert not (out / "results.jsonl").exists()
    with pytest.raises(FakesegError, match="unmerged results of a 3-way"):
        predict(model, [images], out, progress=False)  # an unsharded run would mix rows
    with pytest.raises(FakesegError, match="3-way"):
        predict(model, [images], out, shard=Shard(0, 2), progress=False)
    with pytest.raises(FakesegError, match=r"shard\(s\) 0/3, 2/3 not finished"):
        merge_predictions(out)
    assert not predict(model, [images], out, shard=Shard(0, 3), progress=False).merged
    last = predict(model, [images], out, shard=Shard(2, 3), progress=False)
    assert last.merged and last.results == out.resolve() / "results.jsonl"
    _one_set_each(out, [f"im{i}" for i in range(5)])
    info = json.loads((out / "predict.json").read_text())
    assert info["complete"] and info["n_images"] == 5 and info["merged_shards"] == 3
    # a rerun, sharded or not, finds every image done
    again = [predict(model, [images], out, shard=Shard(k, 2), progress=False) for k in (0, 1)]
    assert [(s.n_done, s.n_resumed, s.merged) for s in again] == [(0, 3, False), (0, 2, True)]
    assert predict(model, [images], out, progress=False).n_resumed == 5
    _one_set_each(out, [f"im{i}" for i in range(5)])
    whole = predict(model, [images], tmp_path / "whole", progress=False)
    for row in whole.rows:  # sharded maps equal an unsharded run's
        np.testing.assert_array_equal(np.load(out / str(row["heat_npy"])),
                                      np.load(whole.out / str(row["heat_npy"])))


def test_merge_refuses_duplicates_other_models_and_other_inputs(model: Localizer,  # noqa: F811
                                                                images: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "pred"
    predict(model, [images], out, shard=Shard(0, 2), progress=False)
    predict(model, [images], out, shard=Shard(1, 2), progress=False)
    assert (out / "results.jsonl").exists()  # merged; now rebuild two shard tables by hand
    shard_rows = {0: [], 1: []}
    for row in _rows(out):
        shard_rows[int(str(row["name"])[-1]) % 2].append(row)
    info = json.loads((out / "predict.json").read_text())
    (out / "results.jsonl").unlink()

    def write_shards(rows: dict[int, list[dict[str, object]]], **changes: object) -> None:
        for k in (0, 1):
            (out / f"results.shard-{k}-of-2.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows[k]))
            (out / f"predict.shard-{k}-of-2.json").write_text(
                json.dumps({**info, **(changes if k == 1 else {})}))

    write_shards({0: shard_rows[0], 1: shard_rows[1] + shard_rows[0][:1]})
    with pytest.raises(FakesegError, match="has a row in both"):
        merge_predictions(out)
    write_shards(shard_rows, model_identity={"checkpoint": "0" * 16, "threshold": 0.5})
    with pytest.raises(FakesegError, match="another model"):
        merge_predictions(out)
    write_shards(shard_rows, inputs_digest="elsewhere")
    with pytest.raises(FakesegError, match="other inputs"):
        merge_predictions(out)
    write_shards(shard_rows, outputs={"keys": ["mask"], "overlay_format": "jpg"})
    with pytest.raises(FakesegError, match="other output files"):
        merge_predictions(out)
    write_shards(shard_rows)
    assert main(["predict", "--merge", str(out), "-q"]) == 0
    _one_set_each(out, [f"im{i}" for i in range(5)])
    assert main(["predict", "--merge", str(out), "-q"]) == 2  # nothing left to merge


def test_shard_locks_one_per_shard_and_exclude_unsharded_runs(model: Localizer,  # noqa: F811
                                                              images: Path,
                                                              tmp_path: Path) -> None:
    out = (tmp_path / "pred").resolve()
    out.mkdir()
    with folder_lock(out, "predict", share="shard-0-of-2") as temp_dir:
        assert temp_dir == out / TEMP_DIR / "shard-0-of-2" and temp_dir.is_dir()
        with pytest.raises(FakesegError, match=f"PID {os.getpid()}"):
            predict(model, [images], out, shard=Shard(0, 2), progress=False)
        with pytest.raises(FakesegError, match="shards of a split run"):
            predict(model, [images], out, progress=False)
        with pytest.raises(FakesegError, match="in use"):
            merge_predictions(out)
        assert predict(model, [images], out, shard=Shard(1, 2), progress=False).n_done == 2
    assert not (out / TEMP_DIR).exists()


def test_shard_from_torchrun_env_and_parsing(model: Localizer, images: Path,  # noqa: F811
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert Shard.parse(" 2/4 ") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    for bad in ("4/4", "1of2", "-1/2", "0/0"):
        with pytest.raises(FakesegError, match="--shard"):
            Shard.parse(bad)
    assert Shard.from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    summary = predict(model, [images], tmp_path / "pred", progress=False)
    assert summary.shard == Shard(1, 2) and summary.n_done == 2 and not summary.merged


def test_folder_lock_scans_the_folder_only_after_a_killed_holder(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    stale = folder / "deep" / "er" / ".x_heat.png.abc123.tmp.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    (folder / LOCK_FILE).write_text("12345\n")  # what kill -9 of holder 12345 leaves
    (folder / TEMP_DIR / "shard-0-of-2").mkdir(parents=True)
    (folder / TEMP_DIR / "shard-0-of-2" / ".z.tmp.npy").write_bytes(b"half")
    with folder_lock(folder, "test") as temp_dir:
        assert not stale.exists() and not (folder / TEMP_DIR / "shard-0-of-2").exists()
        assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
        (temp_dir / ".y.tmp.png").write_bytes(b"half")  # a temp in flight
    assert not (folder / TEMP_DIR).exists() and (folder / LOCK_FILE).read_text() == ""
    stale.write_bytes(b"half")  # no holder that released cleanly left it: nobody scans for it
    for share in (None, "shard-0-of-2", None):
        with folder_lock(folder, "test", share=share):
            pass
    assert stale.exists()


@pytest.mark.slow  # subprocesses
def test_killed_shard_with_workers_resumes_to_one_row_and_one_set_per_image(
        run: Path, images: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "pred"

    def shard(k: int, **env: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "fakeseg", "predict", str(run), str(images), "--out",
                   str(out), "--shard", f"{k}/2", "--workers", "1", "--batch-size", "1", "-q"]
        return subprocess.run(command, env={**os.environ, **env}, capture_output=True,
                               text=True, timeout=300)

    killed = shard(0, FAKESEG_TEST_KILL_AT="predict_row:2")
    assert killed.returncode == -9
    assert len(_rows(out, "results.shard-0-of-2.jsonl")) == 2
    assert shard(1).returncode == 0  # shard 0 is unfinished: no merge yet
    assert not (out / "results.jsonl").exists()
    resumed = shard(0)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 done by an earlier run" in resumed.stdout
    _one_set_each(out, [f"im{i}" for i in range(5)])


def test_workers_hand_over_file_depth_pixels_and_predict_gives_the_apis_maps(
        model: Localizer, tmp_path: Path) -> None:  # noqa: F811
    """Decoding workers pass uint8 / uint16 pixels (4x less to copy than float32); the batch
    is converted bit for bit as read_image converts a file, so a folder of 8- and 16-bit
    images of one size gives exactly the maps of ``Localizer.predict``."""
    import torch

    from fakeseg.inference.predict import ImageFiles, pixels_to_unit
    from fakeseg.io import pixels_to_float, read_image

    rng = np.random.default_rng(3)
    folder = tmp_path / "mixed"
    write_image(folder / "a8.png", smooth_image(rng, 32, 40))
    deep = (smooth_image(rng, 32, 40)[:, :, 0] * 65535).astype(np.uint16)  # 16-bit grey
    write_image(folder / "b16.png", deep)
    write_image(folder / "c8.png", smooth_image(rng, 32, 40))
    files = ImageFiles(sorted(folder.glob("*.png")))
    dtypes = [files[i].image.dtype for i in range(3)]  # type: ignore[union-attr]
    assert dtypes == [torch.uint8, torch.uint16, torch.uint8]
    for i, path in enumerate(files.paths):
        pixels = files[i].image
        assert pixels is not None
        np.testing.assert_array_equal(pixels_to_unit(pixels[None])[0].permute(1, 2, 0).numpy(),
                                      read_image(path))
        np.testing.assert_array_equal(  # the same rule as pixels_to_float, not only for files
            pixels_to_unit(pixels).permute(1, 2, 0).numpy(),
            pixels_to_float(pixels.permute(1, 2, 0).numpy()))
    out = tmp_path / "pred"
    predict(model, [str(folder)], out, workers=1, batch_size=4, progress=False)
    for row in _rows(out):
        expected = model.predict(folder / Path(str(row["image"])).name).probability
        np.testing.assert_array_equal(np.load(out / str(row["heat_npy"])), expected)
    # the CPU default: decoding in the main process, writes taking turns with the model
    from fakeseg.inference.predict import default_workers

    assert default_workers("cpu") == 0 and default_workers("cuda") >= 0
    inline = tmp_path / "inline"
    predict(model, [str(folder)], inline, batch_size=2, progress=False)
    assert _rows(inline) == _rows(out)
    for row in _rows(out):
        for key in ("heat_npy", "mask", "overlay"):
            assert (inline / str(row[key])).read_bytes() == (out / str(row[key])).read_bytes()
