"""Why batch 4 was slower per image than batch 1: user vs system CPU time and page faults.

One thread (no thread-synchronisation effects), 512², the default FakeSegment untrained, the
plain network (``before``) and the inference copy (``torch``: BatchNorm folded, channels-last),
batch 1 and 4 interleaved. System time is the kernel's: mapping and page-faulting fresh memory.

    python benchmarks/profile_predict_batch.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
from pathlib import Path

import torch

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.features.optimize import inference_copy
from fakeseg.io import write_json
from fakeseg.models.registry import build_model

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default: 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_model(to_dict(TrainConfig())).eval()
    fast = inference_copy(net)
    images = torch.rand(4, 3, 512, 512, generator=torch.Generator().manual_seed(0))

    def before(batch: torch.Tensor) -> None:
        with torch.no_grad():
            net(batch)

    def optimised(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            fast(batch.contiguous(memory_format=torch.channels_last))

    settings = [(name, fn, batch) for name, fn in (("before", before), ("torch", optimised))
                for batch in (1, 4)]
    for _, fn, batch in settings:
        fn(images[:batch])  # warm-up
    samples: dict[tuple[str, int], list[tuple[float, float, float]]] = {
        (name, batch): [] for name, _, batch in settings}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, fn, batch in settings:
            start = resource.getrusage(resource.RUSAGE_SELF)
            for part in images.split(batch):
                fn(part)
            end = resource.getrusage(resource.RUSAGE_SELF)
            samples[(name, batch)].append((1000 * (end.ru_utime - start.ru_utime) / 4,
                                           1000 * (end.ru_stime - start.ru_stime) / 4,
                                           (end.ru_minflt - start.ru_minflt) / 4))
    rows = []
    print("| path | batch | user ms/image | system ms/image | page faults/image |")
    print("|---|---|---|---|---|")
    for (name, batch), values in samples.items():
        user, system, faults = (statistics.median(v) for v in zip(*values, strict=True))
        rows.append({"path": name, "batch": batch, "user_ms_per_image": round(user, 1),
                     "system_ms_per_image": round(system, 1),
                     "page_faults_per_image": round(faults)})
        print(f"| {name} | {batch} | {user:.0f} | {system:.0f} | {faults:.0f} |")
    load = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    print(f"load average before {load[:3]}, after {load[3:]}")
    write_json(RESULTS / "predict_batch_profile.json", {
        "command": f"python benchmarks/profile_predict_batch.py --rounds {args.rounds}",
        "threads": 1, "size": 512, "rows": rows, "load_average_before": load[:3],
        "load_average_after": load[3:], "versions": versions()})


if __name__ == "__main__":
    main()
