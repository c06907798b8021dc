"""Shared helpers: small, fast recipes and direct access to the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PENDULUM = str(REPO / "recipes" / "sac_pendulum.yaml")

os.environ.setdefault("RL_WARNINGS", "False")

# Small networks and a short warm-up: fast on 2 CPU cores, still the full engine.
SMALL = [
    "algo.actor_hidden=[32,32]",
    "algo.critic_hidden=[32,32]",
    "algo.batch_size=32",
    "algo.warmup_steps=100",
    "algo.buffer_capacity=5000",
    "progress_bar=false",
    "logger=[csv]",
    "eval.episodes=1",
    "env.max_episode_steps=50",
]


def small_overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [*SMALL, f"run_dir={tmp_path}", *extra]


@pytest.fixture
def small(tmp_path):
    """Returns a function giving the overrides of a small Pendulum run in tmp_path."""
    return lambda *extra: small_overrides(tmp_path, *extra)


def run_cli(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `lit-rl ARGS` in a subprocess, as a user would."""
    exe = Path(sys.executable).parent / "lit-rl"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs
    )


def train(overrides: list[str], recipe: str = PENDULUM, resume: str | None = None):
    """Fit a recipe in this process; returns (trainer, module, run_dir)."""
    from lit_rl.config import load_recipe
    from lit_rl.run import fit

    return fit(load_recipe(recipe, overrides), resume=resume)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """300 random-policy Pendulum-v1 transitions in the D4RL layout, with reference
    returns (a random and an expert policy's), for offline runs of a few updates."""
    from lit_rl.data.collect import random_actor, rollout_steps, write_hdf5

    path = tmp_path_factory.mktemp("data") / "pendulum.hdf5"
    table = rollout_steps("Pendulum-v1", random_actor(1, 0), 300, seed=0)
    write_hdf5(
        table, path, "Pendulum-v1", {"ref_random_return": -1200.0, "ref_expert_return": -150.0}
    )
    return path
