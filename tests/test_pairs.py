"""Paired datasets: pairing by stem, checks, one line per problem, seeded splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakeseg.cli import main
from fakeseg.data.pairs import (
    check_dataset,
    index_pairs,
    load_pair,
    load_split,
    make_split,
    save_split,
)
from fakeseg.errors import DataError
from fakeseg.io import write_image


def test_pairs_match_by_stem_across_extensions(tiny_pairs: Path) -> None:
    index = index_pairs(tiny_pairs)
    assert index.stems == ["p0", "p1", "p2", "p3"]
    assert index.pairs[0].real.suffix == ".png" and index.pairs[0].synthetic.suffix == ".jpg"
    report = check_dataset(tiny_pairs, progress=False)
    assert report.ok and report.n_pairs == 4 and report.sizes[(64, 64)] == 4


def test_check_reports_each_broken_file(tiny_pairs: Path, capsys: pytest.CaptureFixture) -> None:
    (tiny_pairs / "real" / "p1.png").write_bytes(b"")
    (tiny_pairs / "synthetic" / "p2.jpg").write_bytes(b"garbage")
    write_image(tiny_pairs / "real" / "p3.png", np.zeros((32, 64, 3), np.float32))
    write_image(tiny_pairs / "real" / "lonely.png", np.zeros((8, 8, 3), np.float32))
    (tiny_pairs / "synthetic" / "notes.txt").write_text("hi")
    report = check_dataset(tiny_pairs, progress=False)
    text = "\n".join(str(p) for p in report.problems)
    for fragment in ("p1.png: file is empty", "p2.jpg: not a readable image",
                     "p3.png: size 64x32 differs", "lonely.png: no synthetic partner",
                     "notes.txt: unknown extension"):
        assert fragment in text
    assert not check_dataset(tiny_pairs, allow_resize=True, progress=False).ok
    assert main(["data", "check", str(tiny_pairs), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(report.problems)
    assert all(line.startswith("fakeseg: problem: ") for line in err)


def test_missing_folders_and_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing 'real/'"):
        index_pairs(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "synthetic").mkdir()
    with pytest.raises(DataError, match="no pairs found"):
        index_pairs(tmp_path)


def test_size_mismatch_needs_resize(tiny_pairs: Path) -> None:
    write_image(tiny_pairs / "real" / "p0.png", np.zeros((32, 48, 3), np.float32))
    pair = index_pairs(tiny_pairs).pairs[0]
    with pytest.raises(DataError, match="--resize"):
        load_pair(pair)
    loaded = load_pair(pair, allow_resize=True)
    assert loaded.real.shape == loaded.synthetic.shape == (64, 64, 3)


def test_split_is_seeded_disjoint_and_saved(tmp_path: Path) -> None:
    stems = [f"s{i:02d}" for i in range(20)]
    split = make_split(stems, seed=3)
    assert split == make_split(list(reversed(stems)), seed=3)
    assert split != make_split(stems, seed=4)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == 20 and not (parts[0] & parts[1] or parts[0] & parts[2])
    save_split(split, tmp_path / "split.json")
    assert load_split(tmp_path / "split.json") == split
    small = make_split(stems[:3], seed=0)
    assert len(small.train) == len(small.val) == len(small.test) == 1
    with pytest.raises(DataError):
        make_split([], seed=0)


def test_the_default_training_split_keeps_most_pairs_for_training() -> None:
    from fakeseg.config import TrainConfig

    config = TrainConfig()  # the learning curve's choice: 9 pairs train on 7, not 5
    sizes = {n: make_split([f"s{i}" for i in range(n)], val_fraction=config.val_fraction,
                           test_fraction=config.test_fraction) for n in (3, 9, 100)}
    assert [(len(s.train), len(s.val), len(s.test)) for s in sizes.values()] == [
        (1, 1, 1), (7, 1, 1), (80, 10, 10)]


def test_labels_and_masks_are_loaded(tmp_path: Path) -> None:
    from tests.conftest import make_pairs

    root = make_pairs(tmp_path / "d", n=2, labels=True)
    loaded = load_pair(index_pairs(root).pairs[0])
    assert loaded.label is not None and set(np.unique(loaded.label)) == {0, 1}


def test_duplicate_stems_are_ambiguous(tiny_pairs: Path) -> None:
    index = index_pairs(tiny_pairs)
    index.require_unambiguous()  # a clean dataset passes
    write_image(tiny_pairs / "synthetic" / "p2.png", np.zeros((64, 64, 3), np.float32))
    index = index_pairs(tiny_pairs)
    assert [p.path.name for p in index.problems if p.ambiguous] == ["p2.png"]
    with pytest.raises(DataError, match=r"appears twice.*data check"):
        index.require_unambiguous()


def test_a_damaged_split_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    for text in ('{"train": "p0", "val": [], "test": [], "seed": 0}', "[1, 2]", "{not json"):
        path.write_text(text)
        with pytest.raises(DataError, match="not a valid split file"):
            load_split(path)
