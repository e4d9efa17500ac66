"""The one record of a skipped input, and that every result that lists them uses it."""

from __future__ import annotations

import dataclasses
import typing

from fakeseg.errors import Skipped


def test_skipped_drops_the_repeated_name_and_round_trips_through_json() -> None:
    item = Skipped("/d/a\nb.png", "/d/a\\nb.png: not a readable image; re-export it")
    assert item.input == "/d/a\nb.png" and item.reason == "not a readable image; re-export it"
    assert str(item) == "/d/a\\nb.png: not a readable image; re-export it"  # one line
    assert Skipped.from_json(item.to_json()) == item
    assert Skipped("x.png", "too small") != Skipped("y.png", "too small")


def test_skipped_reads_the_older_shapes() -> None:
    assert Skipped.from_json({"path": "a.png", "reason": "r"}) == Skipped("a.png", "r")
    assert Skipped.from_json({"stem": "p1", "reason": "r"}) == Skipped("p1", "r")
    assert str(Skipped.from_json("a.png: gone")) == "a.png: gone"


def test_every_result_lists_skipped_inputs_as_skipped_records() -> None:
    from fakeseg.detection.evaluate import DetectorPredictions
    from fakeseg.enhance.run import EnhanceResult
    from fakeseg.features.featdiff import FeatdiffResult
    from fakeseg.inference.predict import PredictSummary
    from fakeseg.spectral.fingerprint import Fingerprint, StreamResult

    for cls in (DetectorPredictions, EnhanceResult, FeatdiffResult, PredictSummary, Fingerprint,
                StreamResult):
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        assert "skipped" in fields and hints["skipped"] == list[Skipped], cls.__name__
        assert not {"failures", "skipped_pairs"} & fields, cls.__name__
