"""DDP on CPU with gloo: the sharded stream and gradient averaging equal one big batch; a
killed 2-process run resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fakeseg.config import TrainConfig
from fakeseg.faults import ENV_VAR
from fakeseg.training.segmentation import train
from tests.conftest import make_pairs

TINY = dict(backbone_weights="random", crop_size=64, steps=3, steps_per_epoch=1,
            encoder="resnet18", reduce_channels=8, amp=False, device="cpu", val_fraction=0.25,
            test_fraction=0.25, p_reencode=0.0, decoder_channels=[16, 8, 8, 8], workers=0,
            early_stopping=0, val_pairs=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank(rank: int, world: int, port: int, data: Path, out: Path, config: TrainConfig) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(data, out, config, progress=False)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


@pytest.mark.slow
def test_two_ranks_of_b_update_like_one_rank_of_2b(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=4, size=(64, 64))
    # one thread, like each rank: efficientnet_lite0's random-weight features differ by a
    # relative 4e-6 between 1 and 2 threads, and AdamW turns that into 2e-3 in 3 steps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = train(data, tmp_path / "one", TrainConfig(**TINY, batch_size=4, batchnorm="frozen"),
                    progress=False)
    finally:
        torch.set_num_threads(threads)
    assert one.steps == 3
    context, port = multiprocessing.get_context("spawn"), _free_port()
    config = TrainConfig(**TINY, batch_size=2, batchnorm="frozen")
    ranks = [context.Process(target=_rank, args=(r, 2, port, data, tmp_path / "two", config))
             for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(300)
    assert [p.exitcode for p in ranks] == [0, 0]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert a.keys() == b.keys()
    differences = {k: float((a[k].float() - b[k].float()).abs().max()) for k in a}
    assert max(differences.values()) < 1e-4, sorted(differences.items(), key=lambda kv: -kv[1])[:3]
    # and the run did learn something: weights moved from their seeded start by far more
    fresh = train(data, tmp_path / "zero", TrainConfig(**{**TINY, "steps": 1, "lr": 1e-12},
                                                         batch_size=4, batchnorm="frozen"),
                  progress=False)
    start = _weights(fresh.run_dir)
    assert max(float((a[k].float() - start[k].float()).abs().max()) for k in a) > 1e-3


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fakeseg", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_killed_ddp_run_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=4, size=(64, 64))
    options = ["--nproc", "2", "--workers", "0", "--device", "cpu"]
    sets = [arg for k, v in TINY.items() if k not in ("device", "workers")
            for arg in ("--set", f"{k}={v}")] + ["--set", "steps=4", "--set", "batch_size=2"]
    straight = _cli("train", str(data), "--out", str(tmp_path / "a"), *options, *sets)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert straight.stdout.count("best checkpoint:") == 1  # rank 0 alone reports
    killed = _cli("train", str(data), "--out", str(tmp_path / "b"), *options, *sets,
                  env={ENV_VAR: "train_epoch_saved:2"})
    assert killed.returncode != 0
    assert (tmp_path / "b" / "last").exists()
    resumed = _cli("train", str(data), "--out", str(tmp_path / "b"), "--resume", *options)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
