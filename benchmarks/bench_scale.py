"""Scale: N full-HD (1920x1080) pairs on disk; targets, training and predict against N.

For each N (default 50, 200, 800) the benchmark builds ROOT/nN (generated once, reused):
``--unique`` distinct pairs from the demo simulator (``fakeseg.data.demo``: bundled photos
stretched to 1920x1080, 2-4 artifact regions each), and N stems over them as hard links, so a
large N costs no simulator time or disk, while every stem is still read and decoded on its
own (same pixels, distinct files for the loader and its cache). Then, each as its own CLI
process with the peak RSS of its whole process tree (DataLoader workers included) sampled
from /proc every 0.2 s:

- ``fakeseg targets`` for at most ``--target-seconds``: pairs/s from the end of the first
  batch of pairs stored to the last one (start-up excluded), then killed (targets resume);
- ``fakeseg train`` for ``--train-steps`` steps (one epoch, ``val_pairs=4``): steps/s of the
  step loop (``history.json``) and peak RSS; the issue's targets are RSS@800 <= 1.25 x RSS@50
  and <= 4 GB;
- ``fakeseg predict`` on ``--predict-images`` full-HD images: images/s of the whole command
  against the model-only rate (``Localizer.predict_batch`` on the same images, decoded
  beforehand, in this process); also the steady rate, from the first batch's files on disk to
  the last image's (start-up, i.e. imports, model loading and the first batch, excluded), so
  that a short run's start-up share can be told apart.

Once (on the smallest N): the pixel store's build rate (pairs/s, the one-off decoding into
memory-mappable files that training reads crops from), then the loader ratio: training
steps/s with batches from the streaming loader (``--workers`` workers, reading the store) over
steps/s with the same batches prebuilt in memory (target >= 0.8), in ``--loader-rounds``
rounds (the median is the result), plus one round of the decode path (no store) to compare.
``--parts loader`` runs only this part (about a minute at N=50 once the pairs exist).

    python benchmarks/bench_scale.py --sizes 50,200 [--root /tmp/fakeseg_scale] [--run RUN]
        [--train-steps 50] [--predict-images 200] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.data.demo import (
    ARTIFACT_FAMILIES,
    apply_artifact,
    load_photos,
    random_regions,
    soft_alpha,
)
from fakeseg.data.pairs import index_pairs
from fakeseg.io import read_image, to_uint8, write_image, write_json, write_text
from fakeseg.models.registry import build_model
from fakeseg.training.losses import pixel_bce
from fakeseg.training.sampler import collate_batch
from fakeseg.training.streaming import (
    CompositeStream,
    StepBatches,
    build_stream_store,
    composite_loader,
)

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
WIDTH, HEIGHT = 1920, 1080  # --size changes them (a quick smoke run of the script)


# ----------------------------------------------------------------------------- data

def build_unique(base: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` simulator pairs at full HD in base/ (kept between runs)."""
    photos = load_photos(min(HEIGHT, WIDTH))
    stems = []
    for i in range(count):
        stem = f"u{i:04d}"
        stems.append(stem)
        if (base / "masks" / f"{stem}.png").exists():
            continue
        source, _, square = photos[i % len(photos)]
        real_u8 = np.asarray(Image.fromarray(square).resize((WIDTH, HEIGHT),
                                                            Image.Resampling.BICUBIC))
        rng = np.random.default_rng([seed, i])
        synthetic = real_u8.astype(np.float32) / 255.0
        mask = np.zeros((HEIGHT, WIDTH), bool)
        for _, shape in random_regions(HEIGHT, WIDTH, rng):
            alpha = soft_alpha(shape, 12.0)
            family = ARTIFACT_FAMILIES[int(rng.integers(len(ARTIFACT_FAMILIES)))]
            synthetic = apply_artifact(synthetic, alpha, family, rng)
            mask |= alpha > 0.5
        write_image(base / "real" / f"{stem}.png", real_u8)
        write_image(base / "synthetic" / f"{stem}.png",
                    np.where(mask[..., None], to_uint8(synthetic), real_u8))
        write_image(base / "masks" / f"{stem}.png", mask.astype(np.uint8) * 255)
        print(f"  simulated {stem} ({source.name})", flush=True)
    return stems


def build_dataset(root: Path, n: int, unique: int) -> Path:
    """ROOT/nN: N stems hard-linked over the unique pairs."""
    stems = build_unique(root / f"base_{WIDTH}x{HEIGHT}", min(unique, n))
    data = root / f"n{n}_{WIDTH}x{HEIGHT}"
    for folder in ("real", "synthetic", "masks"):
        (data / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            link = data / folder / f"p{i:05d}.png"
            if not link.exists():
                base = root / f"base_{WIDTH}x{HEIGHT}" / folder
                os.link(base / f"{stems[i % len(stems)]}.png", link)
    return data


# ----------------------------------------------------------------------------- measuring

def tree_memory(root_pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of a process and all its descendants, from /proc. The RSS sum counts
    pages that forked DataLoader workers share with their parent once per process (an upper
    bound); PSS splits shared pages between the processes that share them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def run_cli(args: list[str], *, limit_s: float | None = None, nice: int = 10,
            sample_s: float = 0.2) -> dict[str, Any]:
    """Run ``fakeseg ARGS`` (at ``nice``), sampling its tree's RSS every ``sample_s`` seconds
    (a sample reads /proc smaps: about 10-20 ms of CPU for a 2 GB process); kill it after
    ``limit_s``."""
    command = [sys.executable, "-m", "fakeseg", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=lambda: os.nice(nice) if nice else None)
    peak = peak_pss = 0
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    killed = False
    while process.poll() is None:
        rss, pss = tree_memory(process.pid)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        if limit_s is not None and time.perf_counter() - started > limit_s:
            process.kill()
            killed = True
            break
        time.sleep(sample_s)
    process.wait()
    reader.join(5)
    wall = time.perf_counter() - started
    if process.returncode != 0 and not killed:
        raise RuntimeError(f"{' '.join(args)} failed:\n{''.join(output)[-3000:]}")
    return {"command": "fakeseg " + " ".join(args), "wall_s": round(wall, 2),
            "peak_rss_mb": round(peak / 2**20, 1), "peak_pss_mb": round(peak_pss / 2**20, 1),
            "killed_after_limit": killed,
            "output_tail": "".join(output)[-400:]}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------- parts

def targets_rate(data: Path, run: Path, device: str, limit_s: float) -> dict[str, Any]:
    result = run_cli(["targets", str(data), "--out", str(run), "--device", device,
                      "--set", "target_mode=heatmap", "--quiet"], limit_s=limit_s)
    stamps = sorted(p.stat().st_mtime for p in (run / "targets").glob("*.json")
                    if p.name != "scales.json")
    batch = TrainConfig().target_batch  # pairs stored together: time from the first batch's end
    done = len(stamps) - batch
    rate = done / (stamps[-1] - stamps[batch - 1]) if done > 0 else None
    return {**result, "pairs_stored": len(stamps),
            "pairs_per_s": round(rate, 4) if rate else None}


def train_part(data: Path, run: Path, steps: int, workers: int, device: str) -> dict[str, Any]:
    result = run_cli(["train", str(data), "--out", str(run), "--steps", str(steps),
                      "--set", f"steps_per_epoch={steps}", "--set", "val_pairs=4",
                      "--workers", str(workers), "--device", device, "--quiet"])
    history = json.loads((run / "history.json").read_text())
    return {**result, "steps": steps, "steps_per_s": history[-1]["steps_per_s"]}


def predict_part(run: Path, data: Path, work: Path, n_images: int,
                 device: str) -> dict[str, Any]:
    from fakeseg.inference.localizer import Localizer

    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    sources = sorted((data / "synthetic").glob("*.png"))
    for i in range(n_images):
        link = images / f"img{i:05d}.png"
        if not link.exists():
            os.link(sources[i % len(sources)], link)
    # not niced (the model-only rate it is divided by runs here, at our own priority), and its
    # memory sampled once a second: at 5 samples/s the sampler took ~10 % of a core from it
    result = run_cli(["predict", str(run), str(images), "--out", str(work / "out"),
                      "--device", device, "--quiet"], nice=0, sample_s=1.0)
    model = Localizer.load(run, device=device)
    decoded = [read_image(p) for p in sorted(images.glob("*.png"))[:min(n_images, 8)]]
    model.predict_batch(decoded[:1])  # warm-up
    rounds = []
    for _ in range(3):  # the median of 3 rounds: one round of 8 images varies by ±7 %
        started = time.perf_counter()
        model.predict_batch(decoded)
        rounds.append(len(decoded) / (time.perf_counter() - started))
    model_rate = float(np.median(rounds))
    command_rate = n_images / result["wall_s"]
    rows = [json.loads(line) for line in (work / "out" / "results.jsonl").read_text().splitlines()]
    finished = sorted(max((work / "out" / str(row[k])).stat().st_mtime for k in row
                          if k in ("heat_npy", "heat_png", "mask", "overlay")) for row in rows)
    batch = 4  # predict's default --batch-size: time from the end of the first batch
    steady = ((len(finished) - batch) / (finished[-1] - finished[batch - 1])
              if len(finished) > batch and finished[-1] > finished[batch - 1] else None)
    return {**result, "images": n_images, "images_per_s": round(command_rate, 4),
            "model_only_images_per_s": round(model_rate, 4),
            "model_only_rounds": [round(r, 4) for r in rounds],
            "ratio_to_model_only": round(command_rate / model_rate, 3),
            "steady_images_per_s": round(steady, 4) if steady else None,
            "steady_ratio_to_model_only": round(steady / model_rate, 3) if steady else None,
            "load_during": load_average()}


def loader_ratio(data: Path, store_root: Path, workers: int, steps: int, rounds: int,
                 device: str) -> dict[str, Any]:
    """The pixel store's build rate, then training steps/s with batches from the streaming
    loader (reading the store, ``workers`` workers) over steps/s on the same batches prebuilt
    in memory, in ``rounds`` rounds (median ratio reported), and one round of the decode path
    (no store: each sample decodes its pair, 512 MB LRU cache) for comparison."""
    config = TrainConfig(device=device, amp=False).validate()
    pairs = index_pairs(data).pairs
    subprocess.run(["rm", "-rf", str(store_root)], check=True)
    load_before_build = load_average()
    build = build_stream_store(pairs, store_root, workers=workers, progress=False)
    disk = sum(p.stat().st_size for p in store_root.rglob("*") if p.is_file())
    torch.manual_seed(0)
    net = build_model(to_dict(config)).to(device)
    optimizer = torch.optim.AdamW(net.trainable_parameters(), lr=config.lr)

    def step(batch: Any) -> None:
        loss = pixel_bce(net(batch.image.to(device)), batch.label.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def one_round(stream: CompositeStream, start: int) -> dict[str, Any]:
        load = load_average()
        loader = iter(composite_loader(stream, start, start + steps + 1, workers=workers))
        step(next(loader))  # workers started, first batches decoded
        prebuilt = []
        started = time.perf_counter()
        for batch in loader:  # the loader ends with the last batch: its workers then idle
            step(batch)
            prebuilt.append(batch)
        streaming = len(prebuilt) / (time.perf_counter() - started)
        del loader
        walls = []
        for batch in prebuilt:
            started = time.perf_counter()
            step(batch)
            walls.append(time.perf_counter() - started)
        in_memory = len(prebuilt) / sum(walls)
        return {"streaming_steps_per_s": round(streaming, 4),
                "prebuilt_steps_per_s": round(in_memory, 4),
                "ratio": round(streaming / in_memory, 3), "load_before": load,
                "fastest_step_s": round(min(walls), 4)}

    def loader_cpu(stream: CompositeStream, start: int) -> float:
        """CPU seconds to make one batch in this process (what the workers spend on it)."""
        cpu = time.process_time()
        for indices in StepBatches(start, start + steps, config.batch_size):
            collate_batch([stream[i] for i in indices])
        return round((time.process_time() - cpu) / steps, 4)

    stored = CompositeStream(pairs, config, store=build.store)
    store_rounds = [one_round(stored, r * (steps + 1)) for r in range(rounds)]
    decoded = CompositeStream(pairs, config, cache_bytes=512 << 20, workers=workers)
    decode_round = one_round(decoded, rounds * (steps + 1))
    # Wall times on a loaded machine mostly measure the other jobs. Two figures that depend
    # on them less: the loader's CPU time per batch (single-threaded work), and the step's
    # cost as its fastest wall time x torch's threads (the cores it keeps busy). A step that
    # costs S core-s next to a loader that costs L per batch, on cores shared by both, runs
    # at about S / (S + L) of the prebuilt rate.
    step_cpu = round(min(r["fastest_step_s"] for r in store_rounds)
                     * torch.get_num_threads(), 4)
    cpu = {path: loader_cpu(stream, (rounds + 1) * (steps + 1))
           for path, stream in (("store", stored), ("decode", decoded))}
    cpu_estimate = {"step_cpu_s": step_cpu, "loader_cpu_s": cpu,
                    "ratio": {path: round(step_cpu / (step_cpu + c), 3)
                              for path, c in cpu.items()}}
    return {"workers": workers, "steps": steps, "rounds": rounds, "pairs": len(pairs),
            "store": {"pairs": build.n_built, "seconds": round(build.seconds, 2),
                      "pairs_per_s": round(build.pairs_per_s or 0.0, 3),
                      "disk_mb": round(disk / 2**20, 1),
                      "mb_per_pair": round(disk / 2**20 / max(1, len(pairs)), 2),
                      "load_before": load_before_build},
            "store_rounds": store_rounds,
            "ratio": float(np.median([r["ratio"] for r in store_rounds])),
            "decode_path": decode_round, "cpu_estimate": cpu_estimate}


# ----------------------------------------------------------------------------- report

def table(result: dict[str, Any]) -> str:
    lines = [f"# Scale benchmark ({result['settings']['size']} pairs)", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {result['cpus']} CPU cores, device {result['device']}; load average "
             f"(1, 5, 15 min) {result['load_start']} at start, {result['load_end']} at end "
             "(the cores are shared with other jobs: rates are lower bounds, noisy).", ""]
    measured = {n: part for n, part in result["sizes"].items()
                if any(k in part for k in ("targets", "train", "predict"))}
    if measured:
        lines += ["| N pairs | targets pairs/s | targets peak RSS MB | train steps/s | train "
                  "peak RSS MB | predict images | predict images/s | model-only images/s | "
                  "ratio | steady ratio (start-up excluded) | predict peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, part in measured.items():
        t, tr, p = (part.get(k, {}) for k in ("targets", "train", "predict"))
        targets = (f"{t.get('pairs_per_s')} ({t.get('pairs_stored')} pairs in "
                   f"{t.get('wall_s')} s)" if t else "-")
        lines.append(f"| {n} | {targets} | {t.get('peak_rss_mb', '-')} | "
                     f"{tr.get('steps_per_s', '-')} | {tr.get('peak_rss_mb', '-')} | "
                     f"{p.get('images', '-')} | {p.get('images_per_s', '-')} | "
                     f"{p.get('model_only_images_per_s', '-')} | "
                     f"{p.get('ratio_to_model_only', '-')} | "
                     f"{p.get('steady_ratio_to_model_only', '-')} | {p.get('peak_rss_mb', '-')} |")
    if measured:
        lines += [""]
    sizes = list(result["sizes"])
    if len(sizes) > 1 and all("train" in result["sizes"][n] for n in sizes):
        small, large = result["sizes"][sizes[0]], result["sizes"][sizes[-1]]
        ratio = large["train"]["peak_rss_mb"] / small["train"]["peak_rss_mb"]
        lines.append(f"Train peak RSS at N={sizes[-1]} / N={sizes[0]}: {ratio:.2f} "
                     "(target <= 1.25; <= 4096 MB)")
    if result.get("loader"):
        loader, store = result["loader"], result["loader"]["store"]
        lines += [f"Pixel store build: {store['pairs']} pairs in {store['seconds']} s = "
                  f"{store['pairs_per_s']} pairs/s ({loader['workers']} workers), "
                  f"{store['disk_mb']} MB on disk ({store['mb_per_pair']} MB per pair); "
                  f"load average {store['load_before']} before.", "",
                  f"Loader ratio ({loader['workers']} workers, {loader['pairs']} pairs, "
                  f"{loader['steps']} timed steps per round): training steps/s with batches "
                  "streamed over steps/s on the same batches prebuilt in memory "
                  "(target >= 0.8):", "",
                  "| path | round | load average before | streaming steps/s | prebuilt "
                  "steps/s | ratio |", "|---|---|---|---|---|---|"]
        rows = [("pixel store", i + 1, r) for i, r in enumerate(loader["store_rounds"])]
        rows.append(("decode (no store, 512 MB cache)", 1, loader["decode_path"]))
        lines += [f"| {path} | {i} | {r['load_before']} | {r['streaming_steps_per_s']} | "
                  f"{r['prebuilt_steps_per_s']} | {r['ratio']} |" for path, i, r in rows]
        lines += ["", f"**Loader ratio (pixel store, median of {loader['rounds']} rounds): "
                  f"{loader['ratio']}** (decode path: {loader['decode_path']['ratio']})"]
        cpu = loader.get("cpu_estimate")
        if cpu:
            lines += ["", "CPU-time estimate (less sensitive to the load): a training step "
                      f"costs {cpu['step_cpu_s']} core-s (fastest step x torch threads); a "
                      f"batch costs {cpu['loader_cpu_s']['store']} CPU-s from the store, "
                      f"{cpu['loader_cpu_s']['decode']} CPU-s decoding (in one process, "
                      "512 MB cache); on cores shared by both, step / (step + batch) = "
                      f"**{cpu['ratio']['store']}** (store), {cpu['ratio']['decode']} (decode)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200,800", help="N values (default: 50,200,800)")
    parser.add_argument("--root", default="/tmp/fakeseg_scale",
                        help="where the pairs are built and reused (default: /tmp/fakeseg_scale)")
    parser.add_argument("--unique", type=int, default=24,
                        help="distinct simulator pairs under the N stems (default: 24)")
    parser.add_argument("--train-steps", type=int, default=50, help="(default: 50)")
    parser.add_argument("--predict-images", type=int, default=200, help="(default: 200)")
    parser.add_argument("--target-seconds", type=float, default=180.0,
                        help="time given to the targets step per N (default: 180)")
    parser.add_argument("--loader-steps", type=int, default=20,
                        help="timed steps per loader round (default: 20)")
    parser.add_argument("--loader-rounds", type=int, default=3,
                        help="rounds of the loader ratio, the median reported (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="(default: 2)")
    parser.add_argument("--device", default="cpu", help="(default: cpu)")
    parser.add_argument("--out", default=str(RESULTS), help=f"(default: {RESULTS})")
    parser.add_argument("--name", default="scale", help="result file stem (default: scale)")
    parser.add_argument("--run", help="a trained run for the predict part (default: the one the "
                        "train part trains; with --run and without 'train' in --parts no "
                        "training runs)")
    parser.add_argument("--parts", default="targets,train,predict,loader",
                        help="which parts to run (default: targets,train,predict,loader)")
    parser.add_argument("--size", default="1920x1080", help="WxH of the pairs (default: "
                        "1920x1080; smaller only to try the script)")
    args = parser.parse_args()
    global WIDTH, HEIGHT
    WIDTH, HEIGHT = (int(v) for v in args.size.split("x"))
    root, out = Path(args.root), Path(args.out)
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(), "device": args.device, "load_start": load_average(),
        "settings": vars(args), "versions": versions(), "sizes": {}}
    for n in [int(x) for x in args.sizes.split(",")]:
        print(f"N={n}: building pairs", flush=True)
        data = build_dataset(root, n, args.unique)
        work = root / f"work_n{n}"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        part: dict[str, Any] = {"load_before": load_average()}
        parts = set(args.parts.split(","))
        if "targets" in parts:
            print(f"N={n}: targets", flush=True)
            part["targets"] = targets_rate(data, work / "targets_run", args.device,
                                           args.target_seconds)
        if "train" in parts or ("predict" in parts and not args.run):
            print(f"N={n}: train", flush=True)
            part["train"] = train_part(data, work / "run", args.train_steps, args.workers,
                                       args.device)
        if "predict" in parts:
            print(f"N={n}: predict", flush=True)
            part["predict"] = predict_part(Path(args.run) if args.run else work / "run", data,
                                           work, args.predict_images, args.device)
        part["load_after"] = load_average()
        result["sizes"][str(n)] = part
        if "loader" not in result and "loader" in parts:
            print(f"N={n}: loader ratio", flush=True)
            result["loader"] = loader_ratio(data, work / "pixels", args.workers,
                                            args.loader_steps, args.loader_rounds, args.device)
        result["load_end"] = load_average()
        write_json(out / f"{args.name}.json", result)  # after each N: nothing is lost
        write_text(out / f"{args.name}.md", table(result))
        print(table(result), flush=True)


if __name__ == "__main__":
    main()
