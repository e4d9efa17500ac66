"""The one training loop, for every trainable model: FakeSegment, the baselines, the classifier.

A :class:`Task` says what one family trains on (its data, batches, loss and validation); the
:class:`Trainer` does the rest the same way for all of them: seeding, the learning-rate
schedule, optimiser steps, mixed precision, epochs, validation, best/last checkpoints written
as sets, history, early stopping, progress, the run folder's lock and bit-exact ``--resume``.

Run folder (every task)::

    RUN/config.yaml      the effective config (the one resume rule: only run length and
                         hardware options may change, see RESUMABLE)
    RUN/split.json       what was trained on and validated on
    RUN/history.json     one entry per epoch (a copy of last/history.json)
    RUN/best/            model.safetensors + model.json + history.json (best validation)
    RUN/last/            the same plus trainer_state.pt, for --resume
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fakeseg.config import (
    ClassifierConfig,
    EnhanceConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    to_dict,
)
from fakeseg.device import amp_dtype, resolve_device
from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.faults import kill_point
from fakeseg.io import check_output_dir, folder_lock, write_json, write_text
from fakeseg.models.checkpoint import (
    META_FILE,
    ResumeState,
    load_into,
    load_resume_state,
    recover_checkpoint,
    save_checkpoint,
)
from fakeseg.progress import is_quiet, progress_bar, warn
from fakeseg.training.distributed import (
    Ranks,
    barrier,
    broadcast,
    join,
    rank_device,
    ranks_from_environment,
    unwrap,
    wrap,
)

HISTORY_FILE = "history.json"
#: history fields that measure time: they differ between two otherwise identical runs
TIMING_FIELDS = frozenset({"elapsed_s", "steps_per_s"})
CONFIG_FILE = "config.yaml"
#: the options a --resume may change: how long to run and on what hardware
RESUMABLE = frozenset({"steps", "epochs", "device", "threads", "early_stopping", "workers",
                       "target_batch", "minutes"})
#: a full disk, a quota or a read-only file system while the run writes: a user error
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def learning_rate(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to 5 % of the base rate."""
    warmup = max(1, int(0.05 * steps))
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass(frozen=True)
class Schedule:
    """How long a task trains and how fast: what the loop itself needs from a config."""

    steps: int
    steps_per_epoch: int
    lr: float
    weight_decay: float
    early_stopping: int  # epochs without improvement; 0 never stops early
    seed: int
    device: str
    threads: int
    amp: bool
    minutes: float = 0.0  # wall-time budget checked after each epoch; 0: none
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights


@dataclass
class StepOutput:
    """One training step's main loss (the trainer backpropagates it) and what it logs."""

    loss: torch.Tensor
    terms: dict[str, float]
    context: dict[str, Any] = field(default_factory=dict)  # for the task's after_step


@dataclass
class Validation:
    """One epoch's validation: scores for history and the checkpoint, and how to rank it."""

    scores: dict[str, Any]
    selection: tuple[float, ...]  # larger is better; compared as a tuple
    meta: dict[str, Any] = field(default_factory=dict)  # extra checkpoint metadata
    summary: str = ""  # the epoch's one-line report


@dataclass
class TrainResult:
    run_dir: Path
    best_dir: Path
    best_val: dict[str, Any]
    steps: int
    stopped_early: bool
    threshold: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Task(ABC):
    """What one trainable family needs beyond the loop. Called in this order: ``schedule``,
    ``build`` (after seeding), ``prepare``, then per epoch ``start_epoch``, ``next_batch`` /
    ``loss`` / ``after_step`` per step, and ``validate``."""

    kind: ClassVar[str]  # written into every checkpoint's model.json
    #: whether the task can run under DDP (it then draws only its rank's slice of the data)
    supports_distributed: ClassVar[bool] = False

    def __init__(self, config: Any, data: Any) -> None:
        self.config = config
        self.data = data
        self.rank, self.world, self.local_world = 0, 1, 1  # set by the trainer before build

    def check_distributed(self, net: nn.Module) -> None:
        """Refuse (one line) what this task cannot do under DDP; called before wrapping."""
        return None

    @abstractmethod
    def schedule(self) -> Schedule:
        """The loop's settings; asked again after :meth:`prepare` (a task may only know its
        steps per epoch once its data is loaded)."""

    @abstractmethod
    def build(self) -> nn.Module:
        """The untrained model (the trainer seeds torch first)."""

    @abstractmethod
    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        """Split, load or index the data, make targets and the validation set."""

    def check_data(self) -> None:
        """Cheap layout checks before the slow model build (default: none)."""
        return None

    def start_epoch(self, epoch: int) -> None:
        """Called before an epoch's first batch."""
        return None

    @abstractmethod
    def next_batch(self) -> Any: ...

    @abstractmethod
    def loss(self, net: nn.Module, batch: Any, device: torch.device,
             amp: bool) -> StepOutput:
        """The main loss of one batch. ``net`` may be a DistributedDataParallel wrapper: run
        the forward pass through it (:func:`unwrap` reaches the model). ``amp``: run it in
        autocast with :func:`fakeseg.device.amp_dtype`."""

    def optimised_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        """What the main optimiser updates (default: every parameter that needs a gradient)."""
        return [p for p in net.parameters() if p.requires_grad]

    def after_step(self, net: nn.Module, batch: Any, output: StepOutput,
                   device: torch.device) -> dict[str, float]:
        """Extra optimiser steps after the main one (discriminators); returns logged terms."""
        return {}

    @abstractmethod
    def validate(self, net: nn.Module, device: torch.device) -> Validation: ...

    @abstractmethod
    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        """Metadata every checkpoint of this run carries (kind is added by the trainer)."""

    def state_dict(self) -> dict[str, Any]:
        """Whatever else --resume needs (RNG streams, discriminators)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        return None


RunConfig = TypeVar("RunConfig", TrainConfig, ClassifierConfig, EnhanceConfig)


def resolve_config(run_dir: Path, config: RunConfig | None, resume: bool,
                   cls: type[RunConfig],
                   names: Mapping[str, Sequence[str]] | None = None) -> RunConfig:
    """The config a run uses, by the one resume rule: a new run takes ``config`` (default:
    ``cls()``); a resume keeps the saved ``config.yaml``, and a given ``config`` may differ
    from it only in :data:`RESUMABLE` options. The output folder is checked first, so a bad
    ``--out`` is one line before anything else is read."""
    saved = check_output_dir(run_dir) / CONFIG_FILE
    if not resume:
        if (run_dir / "last").exists() or (run_dir / "best").exists():
            raise FakesegError(f"{run_dir}: already holds a run; pass --resume to continue it "
                               "or choose another --out")
        return (config or cls()).validate(names=names)
    if not saved.exists():
        raise FakesegError(f"{run_dir}: nothing to resume (no {CONFIG_FILE}); "
                           "start without --resume")
    stored = from_dict(cls, load_yaml(saved), source=str(saved), names=names)
    if config is None:
        return stored
    chosen = config.validate(names=names)
    changed = sorted(k for k, v in to_dict(chosen).items() if to_dict(stored).get(k) != v)
    if set(changed) - RESUMABLE:
        raise FakesegError(f"{saved}: --resume with a different config "
                           f"({', '.join(changed)}); resume as it was or use a new --out")
    return chosen


class Trainer:
    """Runs one :class:`Task` into a run folder; see the module docstring."""

    def __init__(self, task: Task, out: str | Path, *, progress: bool = True,
                 stop_after: int | None = None) -> None:
        self.task = task
        self.out = out
        self.progress = progress
        self.stop_after = stop_after  # end this session after so many steps (tests, budgets)

    def fit(self, *, resume: bool = False) -> TrainResult:
        run_dir = check_output_dir(self.out)
        ranks = ranks_from_environment()
        if ranks.distributed and not self.task.supports_distributed:
            raise FakesegError(f"{type(self.task).__name__} runs in one process only; start it "
                               "without torchrun / --nproc")
        task = self.task
        task.rank, task.world, task.local_world = ranks.rank, ranks.world, ranks.local_world
        device = None  # one process resolves it after the cheap data checks, as always
        if ranks.distributed:  # the process group's backend depends on it
            device = rank_device(resolve_device(task.schedule().device), ranks)
        joined = device is not None and join(ranks, device)
        threads = torch.get_num_threads()  # a config's ``threads`` lasts for this run only
        try:
            lock = folder_lock(run_dir, "train") if ranks.main else contextlib.nullcontext()
            with lock:
                if ranks.main:
                    for name in ("last", "best"):  # finish or undo a switch a crash interrupted
                        recover_checkpoint(run_dir / name)
                barrier(ranks)
                try:
                    return self._fit(run_dir, resume, ranks, device)
                except OSError as exc:
                    if exc.errno not in _WRITE_ERRNOS:
                        raise
                    raise FakesegError(f"{run_dir}: cannot write the run ({exc.strerror}); free "
                                       "disk space or choose another --out (--resume continues "
                                       "from the last checkpoint)") from exc
        finally:
            torch.set_num_threads(threads)
            if joined:
                torch.distributed.destroy_process_group()

    def _fit(self, run_dir: Path, resume: bool, ranks: Ranks,
             device: torch.device | None) -> TrainResult:
        task = self.task
        progress = self.progress and ranks.main  # rank 0 alone reports and writes
        task.check_data()
        if ranks.main:
            write_text(run_dir / CONFIG_FILE,
                       yaml.safe_dump(to_dict(task.config), sort_keys=False))
        plan = task.schedule()
        if plan.threads:
            torch.set_num_threads(plan.threads)
        device = device or resolve_device(plan.device)
        seed_everything(plan.seed)
        net = task.build()
        for turn in (True, False):  # rank 0 splits and computes targets; then the others read
            if ranks.main == turn:
                task.prepare(net, run_dir, device, progress)
            barrier(ranks)
        plan = task.schedule()
        net.to(device)
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        if ranks.distributed:
            task.check_distributed(net)
        train_net = wrap(net, ranks, device, str(getattr(task.config, "batchnorm", "auto")))
        net = unwrap(train_net)  # SyncBatchNorm conversion makes new modules
        optimizer = torch.optim.AdamW(task.optimised_parameters(net), lr=plan.lr,
                                      weight_decay=plan.weight_decay)
        ema = weight_average(net, plan.ema_decay)
        steps_per_epoch = plan.steps_per_epoch
        step, epoch, best, bad_epochs = 0, 0, None, 0
        history: list[dict[str, Any]] = []
        if resume and (run_dir / "last").exists():
            saved = load_resume_state(run_dir / "last", extra_json=(HISTORY_FILE,))
            state, history = _restore(saved, run_dir)
            load_into(net, saved.weights, saved.folder / "model.safetensors")
            try:
                optimizer.load_state_dict(state["optimizer"])
                if ema is not None:
                    ema.load_state_dict(state["ema"])
                task.load_state_dict(state)
                torch.set_rng_state(state["torch_rng"])
                step, epoch, bad_epochs = (int(state["step"]), int(state["epoch"]),
                                           int(state["bad_epochs"]))
                best = _selection(state["best"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(f"{saved.folder / 'trainer_state.pt'}: does not fit this "
                                      f"run ({type(exc).__name__}: {str(exc)[:80]}); start "
                                      "without --resume") from exc
            if ranks.main:
                write_json(run_dir / HISTORY_FILE, history)
        elif resume:  # killed before the first checkpoint: a fresh start is the continuation
            warn(f"{run_dir}: no checkpoint saved yet; starting from step 0")
        meta_base = {"kind": task.kind, **task.checkpoint_meta(net)}
        use_amp = plan.amp and device.type == "cuda"
        # float16 needs its gradients scaled; bfloat16 (and full precision) do not
        scaler = torch.amp.GradScaler(
            device.type, enabled=use_amp and amp_dtype(device) == torch.float16)
        earlier_s = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
        stopped_early, session_steps, started = False, 0, time.time() - earlier_s
        bar = progress_bar(total=plan.steps, initial=step, desc="train", unit="step",
                           enabled=progress)
        while step < plan.steps and not stopped_early:
            train_net.train()
            task.start_epoch(epoch)
            losses: dict[str, float] = {}
            epoch_end = min(plan.steps, (epoch + 1) * steps_per_epoch)
            epoch_start, loop_started = step, time.perf_counter()
            while step < epoch_end:
                batch = task.next_batch()
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, plan.steps, plan.lr)
                output = task.loss(train_net, batch, device, use_amp)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(output.loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(net)
                terms = {**output.terms, **task.after_step(train_net, batch, output, device)}
                losses = {k: 0.9 * losses.get(k, v) + 0.1 * v for k, v in terms.items()}
                step += 1
                session_steps += 1
                bar.update()
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                if self.stop_after is not None and session_steps >= self.stop_after:
                    break
            if step < epoch_end:  # stopped mid-epoch: no checkpoint of a partial epoch
                break
            epoch += 1
            steps_per_s = (step - epoch_start) / max(time.perf_counter() - loop_started, 1e-9)
            net.eval()
            kept = net if ema is None else ema.module.eval()  # validated, kept as best/
            val = None
            if ranks.main:  # validation runs once, on rank 0; the others wait for its verdict
                with torch.no_grad():
                    val = task.validate(kept, device)
            selection = broadcast(val.selection if val is not None else None, ranks)
            improved = best is None or selection > best
            if improved:
                best, bad_epochs = selection, 0
            else:
                bad_epochs += 1
            # the time budget is rank 0's clock, so every rank stops after the same epoch
            out_of_time = broadcast(plan.minutes > 0 and time.time() - started >= 60 * plan.minutes,
                                    ranks)
            stopped_early = bool((plan.early_stopping and bad_epochs >= plan.early_stopping)
                                 or out_of_time)
            if val is not None:
                history.append({
                    "epoch": epoch, "step": step, **{f"loss_{k}": v for k, v in losses.items()},
                    **{f"val_{k}": v for k, v in val.scores.items()},
                    "elapsed_s": round(time.time() - started, 1),
                    "steps_per_s": round(steps_per_s, 4)})  # the step loop alone
                meta = {**meta_base, **val.meta, "step": step, "epoch": epoch,
                        "val": val.scores}
                if improved:
                    save_checkpoint(run_dir / "best", kept.state_dict(), meta,
                                    extra_json={HISTORY_FILE: history})
                trainer_state = {
                    "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch,
                    "best": list(best or ()), "bad_epochs": bad_epochs,
                    "torch_rng": torch.get_rng_state(), **task.state_dict(),
                    **({} if ema is None else {"ema": ema.state_dict()}),
                }
                save_checkpoint(run_dir / "last", net.state_dict(), meta, trainer_state,
                                extra_json={HISTORY_FILE: history})
                write_json(run_dir / HISTORY_FILE, history)  # the run-level copy, after its set
                kill_point("train_epoch_saved")
                if progress and not is_quiet():
                    bar.write(f"epoch {epoch} step {step}: {val.summary}"
                              + (" *" if improved else ""), file=sys.stderr)
            barrier(ranks)
            if self.stop_after is not None and session_steps >= self.stop_after:
                break
        bar.close()
        best_file = run_dir / "best" / META_FILE
        best_meta = json.loads(best_file.read_text()) if best_file.exists() else {}
        return TrainResult(run_dir, run_dir / "best", best_meta.get("val") or {}, step,
                           stopped_early, float(best_meta.get("threshold", 0.5)), history)


def weight_average(net: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``net``'s weights and buffers (PyTorch's
    ``AveragedModel``), or None when ``decay`` is 0."""
    if decay <= 0:
        return None
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _selection(value: Any) -> tuple[float, ...] | None:
    """A saved selection key: a list (or a bare float from older runs); empty means none."""
    if isinstance(value, int | float):
        return (float(value),) if value > -1.0 else None
    values = tuple(float(v) for v in value)
    return values or None


def _restore(state: ResumeState, run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The trainer state and the history of one ``last/`` set, checked to agree."""
    trainer = state.trainer_state
    source = state.folder / "trainer_state.pt"
    try:
        step = int(trainer["step"])
        epoch = int(trainer["epoch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: incomplete trainer state ({exc}); start without "
                              "--resume") from exc
    if state.meta.get("step") not in (None, step):
        raise CheckpointError(f"{state.folder}: weights of step {state.meta.get('step')} with "
                              f"trainer state of step {step} (a mixed checkpoint); start without "
                              "--resume")
    history = state.extra_json.get(HISTORY_FILE)
    if history is None:  # runs from before history was kept in the checkpoint
        history = json.loads((run_dir / HISTORY_FILE).read_text())
    if not isinstance(history, list) or any(not isinstance(h, dict) for h in history):
        raise CheckpointError(f"{state.folder / HISTORY_FILE}: not a list of epochs; start "
                              "without --resume")
    return trainer, [h for h in history if int(h.get("epoch", 0)) <= epoch]
