"""Metrics reach CSV and TensorBoard under the documented names; loggers come by name."""

from __future__ import annotations

import csv

import pytest
from conftest import small_overrides, train

from lit_rl.errors import ConfigError
from lit_rl.loggers import make_loggers

EXPECTED_COLUMNS = {
    "train/episode_return",
    "eval/return_mean",
    "eval/return_std",
    "loss_actor",
    "loss_qvalue",
    "loss_alpha",
    "train/alpha",
    "train/entropy",
    "env_steps",
    "time/env_fps",
    "time/updates_per_s",
}


def test_metrics_csv_and_tensorboard(tmp_path):
    train(
        small_overrides(
            tmp_path,
            "max_env_steps=400",
            "logger=[csv,tensorboard]",
            "algo.log_every_updates=50",
            "eval.every_env_steps=200",
        )
    )
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) >= EXPECTED_COLUMNS
    evals = [r for r in rows if r["eval/return_mean"]]
    # every 200 env steps (at 200 and 400); the end of the run fell on 400: not repeated
    assert [float(r["env_steps"]) for r in evals] == [200.0, 400.0]
    train_rows = [r for r in rows if r["loss_qvalue"]]
    assert [int(float(r["updates"])) for r in train_rows] == [50, 100, 150, 200, 250, 300]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_metrics_are_on_disk_while_the_run_goes(tmp_path):
    """A user reads metrics.csv during a run, before any checkpoint or the end."""
    from lit_rl.modules.off_policy import OffPolicyModule

    seen = []
    original = OffPolicyModule.log_metrics

    def spy(self, metrics):
        original(self, metrics)
        path = tmp_path / "metrics.csv"
        seen.append(path.exists() and "loss_qvalue" in path.read_text())

    OffPolicyModule.log_metrics = spy
    try:
        train(small_overrides(tmp_path, "max_env_steps=300", "algo.log_every_updates=100"))
    finally:
        OffPolicyModule.log_metrics = original
    assert seen and seen[0]


def test_logger_by_class_path_and_unknown_names(tmp_path):
    (logger,) = make_loggers(["lightning.pytorch.loggers.CSVLogger"], tmp_path)
    assert type(logger).__name__ == "CSVLogger" and str(tmp_path) in logger.log_dir
    with pytest.raises(ConfigError, match="unknown logger 'tensorbord'"):
        make_loggers(["tensorbord"], tmp_path)
    with pytest.raises(ConfigError, match="cannot import logger class 'nope.Logger'"):
        make_loggers(["nope.Logger"], tmp_path)
