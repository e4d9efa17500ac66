"""The one config validator: --config, --set and checkpoints share it; errors are one line
that names where the value came from and the fix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fakeseg.config import (
    ADDED_OPTIONS,
    FIELD_RULES,
    MAX_CONFIG_CHARS,
    TrainConfig,
    from_dict,
    load_yaml,
    to_dict,
    train_config,
)
from fakeseg.errors import FakesegError
from fakeseg.workflows.benchmark import same_run_config


def _error(**kwargs: object) -> str:
    with pytest.raises(FakesegError) as info:
        train_config(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_field_has_a_rule_and_defaults_pass() -> None:
    assert set(FIELD_RULES) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig().validate() == TrainConfig()


@pytest.mark.parametrize("item, fragment", [
    ("steps=abc", "steps must be a whole number ≥ 1, got 'abc'"),
    ("lr=-1", "lr must be a finite number in (0, 10]"),
    ("lr=.nan", "lr must be a finite number"),
    ("batch_size=2.5", "batch_size must be a whole number"),
    ("seed=-1", "seed must be a whole number in [0, 4294967295]"),
    ("encoder=resnet9999", "did you mean"),
    ("coverage=[0.5]", "coverage must be a pair"),
    ("coverage=[0.7, 0.3]", "low ≤ high"),
    ("use_rgb=1", "use_rgb must be true or false"),
    ("mask_kinds=[rectangles, squares]", "mask_kinds must be a list of one of rectangles"),
    ("crop_size=100", "a multiple of 32"),
    ("device=gpu", "device must be auto, cpu, cuda or cuda:N"),
    ("model_options=7", "model_options must be a mapping"),
    ("val_fraction=0.9", "val_fraction + test_fraction must be below 1"),
])
def test_bad_set_values_name_the_override(item: str, fragment: str) -> None:
    message = _error(overrides=[item])
    assert message.startswith(f"--set {item}: ") and fragment in message


def test_values_are_normalised() -> None:
    config = train_config(overrides=["lr=1e-3", "mask_kinds=rectangles", "steps=1e3",
                                     "coverage=[0.1, 0.5]"])
    assert config.lr == 0.001 and config.steps == 1000 and isinstance(config.steps, int)
    assert config.mask_kinds == ["rectangles"] and config.coverage == (0.1, 0.5)
    assert train_config(overrides=["mask_kinds=rectangles,blobs"]).mask_kinds == \
        ["rectangles", "blobs"]


def test_yaml_errors_in_set_are_one_line() -> None:
    message = _error(overrides=["layers=[a, b"])
    assert message.startswith("--set layers=[a, b: not valid YAML")
    assert "--set stepz=3: unknown option 'stepz' (did you mean 'steps'?)" in \
        _error(overrides=["stepz=3"])
    assert "key=value" in _error(overrides=["steps"])
    assert "not valid YAML" in _error(overrides=["x=!!python/object:os.system ls"])


def test_config_files_folder_encoding_syntax_and_origin(tmp_path: Path) -> None:
    assert "is a folder" in _error(config_file=tmp_path)
    assert "not found" in _error(config_file=tmp_path / "none.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("backbone: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in _error(config_file=latin)
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1,\n")
    assert "not valid YAML" in _error(config_file=broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert "mapping" in _error(config_file=listing)
    good = tmp_path / "cfg.yaml"
    good.write_text("steps: 20\nlr: 0\n")
    assert _error(config_file=good).startswith(f"{good}: lr must be")
    # a later --set fixes it, and the flag wins over both
    config = train_config(good, ["lr=0.01"], {"steps": 7, "seed": None})
    assert (config.steps, config.lr, config.seed) == (7, 0.01, 0)
    assert _error(config_file=good, overrides=["lr=0.01"],
                  options={"steps": 0}).startswith("--steps: steps must be")


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, "
               f"*a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("model_options:\n" + "\n".join("  " + line for line in levels) + "\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(FakesegError, match="KiB"):
        load_yaml(bomb)
    inline = "model_options={" + ", ".join(levels).replace(": &", ": &") + "}"
    assert "KiB" in _error(overrides=[inline])
    nested = {"x": {}}
    inner = nested["x"]
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(FakesegError, match="model_options must be a mapping under"):
        TrainConfig(model_options=nested).validate()
    big = {"k": "v" * (MAX_CONFIG_CHARS + 1)}
    with pytest.raises(FakesegError, match="model_options must be a mapping under"):
        TrainConfig(model_options=big).validate()


def test_checkpoint_source_is_named(tmp_path: Path) -> None:
    source = str(tmp_path / "run" / "best" / "model.json")
    with pytest.raises(FakesegError, match=r"model\.json: steps must be"):
        from_dict(TrainConfig, {"steps": "ten"}, source=source)
    with pytest.raises(FakesegError, match="expected a mapping"):
        from_dict(TrainConfig, ["steps"], source=source)


def test_registered_names_are_checked_where_the_registries_are_known() -> None:
    from fakeseg.models.checkpoint import known_names

    names = known_names()
    assert "fakesegment" in names["model"] and "ssdlite_mobilenet_v2" in names["backbone"]
    with pytest.raises(FakesegError, match=r"--set backbone=ssd: backbone must be one of"):
        train_config(overrides=["backbone=ssd"], names=names)
    assert "a backbone name" in _error(overrides=["backbone=[1]"])


def test_a_retired_option_in_an_older_run_is_dropped_not_refused() -> None:
    config = from_dict(TrainConfig, {"steps": 3, "cache_mb": 512}, source="old/config.yaml")
    assert config.steps == 3 and not hasattr(config, "cache_mb")
    with pytest.raises(FakesegError, match="unknown option 'cache_mbb'"):
        from_dict(TrainConfig, {"cache_mbb": 1})


def test_an_older_run_without_an_added_option_still_matches_its_config() -> None:
    """A finished run made before an option existed is reused (benchmark, CV), not retrained,
    as long as today's config leaves that option at the old behaviour."""
    added = ADDED_OPTIONS["TrainConfig"]
    config = TrainConfig(steps=3, **added)
    old = {k: v for k, v in json.loads(json.dumps(to_dict(config))).items() if k not in added}
    assert same_run_config(old, config)
    assert from_dict(TrainConfig, old) == config
    for name in added:
        changed = dataclasses.replace(config, **{name: 0.2})
        assert not same_run_config(old, changed), name
