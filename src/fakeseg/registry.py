"""One registry for every pluggable family: backbones, trunks, models, metrics, detectors.

A :class:`Registry` maps names to entries (specs, builders, functions); an unknown name is
one line with the closest match, as in timm's ``create_model`` or smp's encoder table::

    MODELS = Registry[ModelSpec]("model")
    MODELS.register("unet_rgb", spec)
    MODELS["unet_rgb"]            # the spec
    MODELS["unet-rgb"]            # FakesegError: unknown model 'unet-rgb' (did you mean ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from fakeseg.errors import FakesegError

T = TypeVar("T")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Names → entries of one family, with did-you-mean on unknown names."""

    def __init__(self, kind: str, *, normalize: Callable[[str], str] = str) -> None:
        self.kind = kind
        self._normalize = normalize
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        key = self._normalize(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} '{key}' is registered twice")
        self._entries[key] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@REGISTRY.decorator("name")`` registers the decorated object."""
        return lambda entry: self.register(name, entry)

    def __getitem__(self, name: str) -> T:
        key = self._normalize(str(name))
        try:
            return self._entries[key]
        except KeyError:
            raise FakesegError(f"unknown {self.kind} '{name}'{did_you_mean(key, self._entries)}"
                               f"; choose from {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())
