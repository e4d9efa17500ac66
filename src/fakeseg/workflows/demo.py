"""``fakeseg demo``: the whole path on the built-in demo data, in a few minutes on a CPU."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeseg.config import TrainConfig
from fakeseg.data.pairs import index_pairs, load_split

DEMO_STEPS = 240


@dataclass
class DemoResult:
    data: Path
    run: Path
    predictions: Path
    val: dict[str, Any]
    extra: dict[str, Path] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [
            f"demo data:    {self.data}",
            f"model:        {self.run / 'best'}",
            f"validation:   F1 {self.val.get('f1_best', float('nan')):.3f} "
            f"(threshold {self.val.get('threshold', float('nan')):.2f}), "
            f"Dice@0.5 {self.val.get('dice@0.5', float('nan')):.3f}",
            f"overlays:     {self.predictions}/*_overlay.jpg",
        ]
        lines += [f"{name + ':':<13} {path}" for name, path in self.extra.items()]
        return lines


def demo(out: str | Path = "runs/demo", *, steps: int | None = None, seed: int = 0,
         progress: bool = True) -> DemoResult:
    from fakeseg.data.demo import build_demo_dataset
    from fakeseg.evaluation.evaluate import evaluate_pairs, save_evaluation
    from fakeseg.inference.predict import predict
    from fakeseg.reporting import report
    from fakeseg.training.segmentation import train

    out = Path(out)
    data, run, predictions = out / "data", out / "train", out / "predict"
    build_demo_dataset(data, seed=seed, progress=progress)
    for owned in (run, predictions):  # the demo owns these: start fresh each time (predict
        if owned.exists():           # refuses a folder holding another model's outputs)
            shutil.rmtree(owned)
    # 4 test pairs of the 22, so that the demo's report rests on more than 2
    config = TrainConfig(steps=steps or DEMO_STEPS, steps_per_epoch=40, crop_size=128,
                         batch_size=8, seed=seed, early_stopping=0, val_fraction=0.2,
                         test_fraction=0.2)
    result = train(data, run, config, progress=progress)
    split = load_split(run / "split.json")
    held_out = [str(p.synthetic) for p in index_pairs(data).subset(split.test)]
    predict(run, held_out, predictions, progress=progress)
    evaluation = evaluate_pairs(run, data, progress=progress)
    extra = {"evaluation": save_evaluation(evaluation, out / "evaluate")["metrics_md"]}
    extra["report"] = report([out], out / "report.html")
    return DemoResult(data, run, predictions, result.best_val, extra)
