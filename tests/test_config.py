import json

import pytest

from seqcopy.config import ConfigError, RunConfig
from seqcopy.presets import PRESETS


def test_defaults_are_valid_and_round_trip():
    config = RunConfig()
    assert config.validate() == {}
    assert RunConfig.from_dict(json.loads(config.to_json())) == config


def test_from_dict_ignores_unknown_keys():
    assert RunConfig.from_dict({"cell": "gru", "from_the_future": 1}).cell == "gru"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_valid(name):
    assert PRESETS[name].validate() == {}


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"cell": "transformer"}, "cell", "unknown cell"),
        ({"hidden_size": 0}, "hidden_size", "at least 1"),
        ({"embedding_size": -3}, "embedding_size", "at least 1"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
        ({"padding": 0}, "padding", "at least 1"),
        ({"lr": 0.0}, "lr", "at least"),
        ({"lr": -1.0}, "lr", "at least"),
        ({"lr": 1e-320}, "lr", "at least"),
        ({"lr": float("nan")}, "lr", "finite"),
        ({"lr": 11.0}, "lr", "at most"),
        ({"curriculum_threshold": 0.0}, "curriculum_threshold", "at least"),
        ({"tag": "a\x00b"}, "tag", "control characters"),
        ({"tag": "x" * 201}, "tag", "at most 200"),
        ({"init": "xavier"}, "init", "unknown initialisation"),
        ({"train_output_len": 130}, "train_output_len", "cannot be longer"),
        ({"test_output_len": 150}, "test_output_len", "cannot be longer"),
        ({"train_samples": 0}, "train_samples", "at least 1"),
        ({"test_samples": 0}, "test_samples", "at least 1"),
        ({"epochs": 0}, "epochs", "at least 1"),
        ({"device": "tpu"}, "device", "unknown device"),
        ({"hidden_size": 100_000}, "hidden_size", "at most"),
        ({"train_seq_len": 5000, "train_output_len": 10}, "train_seq_len", "at most"),
        ({"train_samples": 1_000_000, "train_seq_len": 1000, "train_output_len": 1000, "hidden_size": 2048},
         "batch_size", "GiB"),
        ({"seed": -1}, "seed", "at least 0"),
        ({"seed": 2**31}, "seed", "at most"),  # the store keeps seeds in 32 bits
        ({"hidden_size": 2.5}, "hidden_size", "whole number"),
        ({"lr_schedule": "sometimes"}, "lr_schedule", "choose one"),
        ({"clip": "none"}, "clip", "choose one"),
    ],
)
def test_each_bad_field_has_its_message(changes, field, words):
    errors = RunConfig(**changes).validate()
    assert field in errors, errors
    assert words in errors[field]
    with pytest.raises(ConfigError):
        RunConfig(**changes).check()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_refused():
    assert "no CUDA" in RunConfig(device="cuda").validate()["device"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"tag": None}, "tag"),
        ({"curriculum_threshold": "high"}, "curriculum_threshold"),
        ({"curriculum": "yes"}, "curriculum"),
        ({"warmup_epochs": 10, "epochs": 10}, "warmup_epochs"),
    ],
)
def test_stored_configs_of_the_wrong_type_are_reported_not_raised(changes, field):
    assert field in RunConfig(**changes).validate()


def test_device_names_are_checked_without_the_device():
    assert RunConfig(device="cuda").validate(check_device=False) == {}
    assert "unknown device" in RunConfig(device="tpu").validate(check_device=False)["device"]
