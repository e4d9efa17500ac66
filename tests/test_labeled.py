"""data/labeled.py: folders, CSV lists, sources from file names, balanced sampling, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fakeseg.data.labeled import (
    DEFAULT_SOURCE_PATTERN,
    balanced_sampler,
    load_labeled,
    source_of,
)
from fakeseg.errors import DataError, FakesegError
from tests.labeled_sets import make_set


def test_weighted_sampler_balances_an_imbalanced_set() -> None:
    labels = [0] * 60 + [1] * 6
    sampler = balanced_sampler(labels, num_samples=6000,
                               generator=torch.Generator().manual_seed(0))
    drawn = np.array([labels[i] for i in sampler])
    assert abs(drawn.mean() - 0.5) < 0.03
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(labels)), batch_size=16,
        sampler=balanced_sampler(labels, num_samples=1600,
                                 generator=torch.Generator().manual_seed(1)))
    fractions = [float(batch[0].float().mean()) for batch in loader]
    assert abs(np.mean(fractions) - 0.5) < 0.05


def test_folders_csv_and_sources(tmp_path: Path) -> None:
    data = make_set(tmp_path / "synth", 2, seed=0, fake_name="synthetic")
    items = load_labeled(data)
    assert [i.label for i in items] == [0, 0, 1, 1]
    assert [i.source for i in items] == ["gen0", "gen1", "gen0", "gen1"]
    assert load_labeled(make_set(tmp_path / "fake", 1, seed=0))[1].label == 1
    assert source_of(Path("12_stylegan2-ffhq_fake.jpg"), DEFAULT_SOURCE_PATTERN) == (
        "stylegan2-ffhq")
    assert source_of(Path("photo.jpg"), DEFAULT_SOURCE_PATTERN) is None
    files = sorted((data / "real").iterdir()) + sorted((data / "synthetic").iterdir())
    table = tmp_path / "labels.csv"
    table.write_text("path,label,source\n"
                     f"{files[0]},real,cam\n"
                     f"synth/real/{files[1].name},0,\n"
                     f"{files[2]},Fake,sd\n"
                     f"{files[3]},1,sd\n")
    from_csv = load_labeled(table)
    assert [i.label for i in from_csv] == [0, 0, 1, 1]
    assert [i.source for i in from_csv] == ["cam", "gen1", "sd", "sd"]
    headless = tmp_path / "plain.csv"
    headless.write_text(f"{files[0]},0\n{files[2]},synthetic\n")
    assert [i.label for i in load_labeled(headless)] == [0, 1]


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "real").mkdir(parents=True)
    (tmp_path / "empty" / "fake").mkdir()
    with pytest.raises(FakesegError, match=r"empty/real: no images found") as info:
        load_labeled(tmp_path / "empty")
    assert "\n" not in str(info.value)
    (tmp_path / "half" / "real").mkdir(parents=True)
    with pytest.raises(DataError, match="no synthetic/ or fake/ folder"):
        load_labeled(tmp_path / "half")
    with pytest.raises(DataError, match="no real/ folder"):
        load_labeled(tmp_path / "empty" / "fake")
    image = make_set(tmp_path / "one", 1, seed=0) / "real" / "0_gen0_real.png"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,label\n{image},0\n{image},maybe\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: label 'maybe' is not 0/1"):
        load_labeled(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nnope.png,1\n")
    with pytest.raises(DataError, match=r"missing\.csv:2: no such image"):
        load_labeled(missing)
