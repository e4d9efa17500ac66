"""Ensemble of detection methods: the mean of the members' logits (``combine="mean"``), or a
logistic regression on the members' validation logits (``combine="stack"``; fitted on the
validation images only, which the members never trained on).

Members are fitted on the same training images (``member_options``: method → options); a
caller that already fitted them on the same split (the benchmark) may pass them in ``fitted``
to save the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fakeseg.detection.common import (
    LinearHead,
    Scorer,
    check_options,
    finite_scores,
    labels_of,
    logit,
    paths_of,
    sigmoid,
)
from fakeseg.errors import FakesegError

COMBINES = ("mean", "stack")


def member_names(option: str | Sequence[str]) -> list[str]:
    from fakeseg.detection.registry import check_methods

    names = option.split(",") if isinstance(option, str) else list(option)
    names = check_methods([n for n in names if n.strip()])
    if not names or "ensemble" in names:
        raise FakesegError("ensemble: members must name one or more non-ensemble methods, "
                           "e.g. members=probe,spectral,npr")
    return names


class EnsembleScorer(Scorer):
    family = "ensemble"
    defaults: ClassVar[dict[str, Any]] = {"members": "probe,spectral,npr", "combine": "mean",
                                          "member_options": {}, "seed": 0}

    def __init__(self, method: str, options: dict[str, Any], members: dict[str, Scorer],
                 head: LinearHead | None) -> None:
        super().__init__(method, options)
        self.members = members
        self.head = head

    @classmethod
    def fit(cls, train: Sequence[Any], val: Sequence[Any], options: Mapping[str, Any] | None,
            *, method: str | None = None, progress: bool = False,
            fitted: Mapping[str, Scorer] | None = None) -> EnsembleScorer:
        from fakeseg.detection.registry import fit_method

        opts = check_options(cls.family, cls.defaults, options)
        if opts["combine"] not in COMBINES:
            raise FakesegError(f"ensemble: unknown combine '{opts['combine']}'; use mean or "
                               "stack")
        members = {}
        for name in member_names(opts["members"]):
            given = (fitted or {}).get(name)
            members[name] = given if given is not None else fit_method(
                name, train, val, {**opts["member_options"].get(name, {}), "seed": opts["seed"]},
                progress=progress)
        head = None
        if opts["combine"] == "stack":
            if len(set(labels_of(val).tolist())) < 2:
                raise FakesegError("ensemble: combine=stack needs validation images of both "
                                   "classes; raise the validation fraction or use mean")
            scorer = cls(method or cls.family, opts, members, None)
            head = LinearHead.fit(scorer.member_logits(paths_of(val)), labels_of(val),
                                  seed=int(opts["seed"]))
        return cls(method or cls.family, opts, members, head)

    def member_logits(self, paths: Sequence[str | Path], *, progress: bool = False
                      ) -> np.ndarray:
        return np.stack([logit(m.score(paths, progress=progress))
                         for m in self.members.values()], axis=1)

    def score(self, paths: Sequence[str | Path], *, progress: bool = False) -> np.ndarray:
        logits = self.member_logits(paths, progress=progress)
        combined = logits.mean(1) if self.head is None else self.head.logits(logits)
        return finite_scores(sigmoid(combined), paths, self.method)

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.head is None:
            return {"members": torch.zeros(len(self.members))}
        return self.head.tensors()

    def save(self, folder: str | Path) -> Path:
        self.extra = {"members": list(self.members)}
        out = super().save(folder)
        for name, member in self.members.items():
            member.save(Path(folder) / "members" / name)
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any],
                   folder: Path) -> EnsembleScorer:
        from fakeseg.detection.registry import load_scorer

        members = {name: load_scorer(folder / "members" / name)
                   for name in meta["extra"]["members"]}
        head = LinearHead.from_tensors(state) if "head.coef" in state else None
        return cls(meta["method"], meta["options"], members, head)

    def describe(self) -> str:
        how = "mean of logits" if self.head is None else "stacked on validation"
        return f"{self.method}: {how} of {', '.join(self.members)}"
