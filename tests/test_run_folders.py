"""Run folders: unique by default, never shared by two fresh runs, resumed in place with
one continuous curve, and every kept checkpoint resumable."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from conftest import PENDULUM, REPO, run_cli, small_overrides, train

from lit_rl.config import load_recipe
from lit_rl.modules.state import checkpoint_counters


def metric_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_default_run_folders_differ_for_runs_started_together():
    folders = {load_recipe(PENDULUM, [f"seed={seed % 2}"])["run_dir"] for seed in range(6)}
    assert len(folders) == 6
    for folder in folders:
        assert folder.startswith("runs/sac_pendulum/") and "_seed" in folder


def test_a_fresh_run_into_a_used_folder_is_refused(tmp_path):
    (tmp_path / "metrics.csv").write_text("step\n1\n")
    result = run_cli("run", PENDULUM, *small_overrides(tmp_path, "max_env_steps=150"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0] and "not empty" in lines[0]
    assert (tmp_path / "metrics.csv").read_text() == "step\n1\n"  # nothing touched


def test_resume_by_folder_continues_in_place_from_its_own_config(tmp_path):
    run_dir = tmp_path / "run"
    overrides = small_overrides(run_dir, "max_env_steps=300", "algo.log_every_updates=20")
    first = run_cli("run", PENDULUM, *overrides)
    assert first.returncode == 0, first.stderr
    steps_before = [float(row["step"]) for row in metric_rows(run_dir)]
    assert max(steps_before) == 200
    # the run's own config.yaml (with its overrides) is the recipe; a larger budget extends it
    second = run_cli("run", "--resume", str(run_dir), "max_env_steps=400")
    assert second.returncode == 0, second.stderr
    assert f"run folder {run_dir}" in second.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no new folder
    rows = metric_rows(run_dir)
    steps = [float(row["step"]) for row in rows if row.get("loss_qvalue")]
    assert steps == sorted(steps) and steps[-1] == 300  # one curve, earlier rows kept
    assert len(steps) == len(set(steps)) == 300 // 20
    assert checkpoint_counters(run_dir / "last.ckpt")["env_steps"] == 400
    config = load_recipe(run_dir / "config.yaml")
    assert config["max_env_steps"] == 400 and config["algo"]["batch_size"] == 32


def test_resume_drops_metrics_logged_after_its_checkpoint(tmp_path):
    _, _, run_dir = train(
        small_overrides(
            tmp_path, "max_env_steps=300", "checkpoint.every_env_steps=100", "checkpoint.keep=2"
        )
    )
    checkpoint = run_dir / "step=100.ckpt"
    assert checkpoint_counters(checkpoint)["updates"] == 100
    train(small_overrides(tmp_path, "max_env_steps=300"), resume=str(checkpoint))
    steps = [float(row["step"]) for row in metric_rows(run_dir) if row.get("loss_qvalue")]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)


def test_every_kept_checkpoint_resumes(tmp_path):
    _, _, run_dir = train(
        small_overrides(
            tmp_path, "max_env_steps=600", "checkpoint.every_env_steps=100", "checkpoint.keep=4"
        )
    )
    kept = sorted(run_dir.glob("step=*.ckpt"))
    assert len(kept) == 4
    for checkpoint in kept:
        updates = checkpoint_counters(checkpoint)["updates"]
        assert (run_dir / "replay" / f"rank0-u{updates:010d}.pt").is_file(), checkpoint
    oldest = min(kept, key=lambda path: checkpoint_counters(path)["updates"])
    result = run_cli("run", "--resume", str(oldest), "max_env_steps=650")
    assert result.returncode == 0, result.stderr
    # state files that no checkpoint needs are gone
    needed = {checkpoint_counters(path)["updates"] for path in run_dir.glob("*.ckpt")}
    on_disk = {int(path.stem.split("-u")[1]) for path in (run_dir / "replay").glob("rank0-u*.pt")}
    assert on_disk <= needed
    listed = set()
    for updates in on_disk:
        state = torch.load(run_dir / "replay" / f"rank0-u{updates:010d}.pt", weights_only=True)
        listed |= {segment["name"] for segment in state["replay"]["segments"]}
    segments = {path.name for path in (run_dir / "replay").glob("rank0-rows-*.pt")}
    assert segments == listed  # every segment is needed by a kept checkpoint


def test_resume_refuses_a_recipe_argument_and_a_new_run_dir(tmp_path):
    _, _, run_dir = train(small_overrides(tmp_path, "max_env_steps=150"))
    result = run_cli("run", PENDULUM, "--resume", str(run_dir))
    assert result.returncode == 2 and "its own config.yaml" in result.stderr
    result = run_cli("run", "--resume", str(run_dir), f"run_dir={tmp_path}/other")
    assert result.returncode == 2 and "run_dir cannot be overridden" in result.stderr
    assert torch.load(run_dir / "last.ckpt", weights_only=True)["lit_rl"]["env_steps"] == 150
    assert REPO.is_dir()


def test_externally_launched_ranks_name_the_folder_after_their_job(monkeypatch):
    import pytest

    from lit_rl.errors import ConfigError

    monkeypatch.delenv("LIT_RL_RUN_DIR", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert load_recipe(PENDULUM, ["seed=3"])["run_dir"] == "runs/sac_pendulum/job-12345.0_seed3"
    for name in ("SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched, but with no id every rank shares
    with pytest.raises(ConfigError, match="--rdzv-id"):
        load_recipe(PENDULUM)
