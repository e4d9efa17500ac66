"""``import fakeseg``: fast, and the verbs a notebook needs work from the top-level package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fakeseg
from fakeseg.inference.localizer import HeatMap, Localizer
from tests.test_fakesegment import TINY


def test_import_is_light() -> None:
    code = "import sys, fakeseg; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"  # the verbs import torch on first use, not before


def test_verbs_train_load_predict_report(tiny_pairs: Path, tmp_path: Path) -> None:
    result = fakeseg.train(tiny_pairs, tmp_path / "run", progress=False, **{**TINY, "steps": 2})
    model = fakeseg.load(result.run_dir, device="cpu")
    assert isinstance(model, Localizer)
    heat = model.predict(np.full((40, 48, 3), 128, np.uint8))
    assert isinstance(heat, HeatMap) and heat.probability.shape == (40, 48)
    summary = fakeseg.predict(model, [tiny_pairs / "synthetic"], tmp_path / "pred",
                              progress=False)
    assert summary.n_done == 4
    page = fakeseg.report([tmp_path / "pred"], tmp_path / "r.html")
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert set(fakeseg.__all__) >= {"load", "train", "predict", "evaluate", "fingerprint",
                                    "featdiff", "report"}
    with pytest.raises(AttributeError):
        fakeseg.nonexistent_verb  # noqa: B018
