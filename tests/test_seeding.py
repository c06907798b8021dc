"""Seeds of env and sampling streams never coincide across runs, ranks and envs."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import train

from lit_rl.seeding import derive_seed, eval_env_seed, sampling_seed, train_env_seed


def test_no_two_streams_of_nearby_runs_share_a_seed():
    seeds = {}
    for seed, rank, env in itertools.product(range(20), range(4), range(5)):
        seeds[("train", seed, rank, env)] = train_env_seed(seed, rank, env)
    for seed, rank in itertools.product(range(20), range(4)):
        seeds[("sampling", seed, rank)] = sampling_seed(seed, rank)
    for seed in range(20):
        seeds[("eval", seed)] = eval_env_seed(seed)
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= value < 2**63 for value in seeds.values())
    assert derive_seed(3, 0, 1, 2) == train_env_seed(3, 1, 2)  # a pure function of its path
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(-1, 0)


def pendulum_start(env_seed: int) -> torch.Tensor:
    """The first observation TorchRL's env (seeded, then reset) starts an episode from."""
    from lit_rl.envs.make import make_env

    env = make_env("Pendulum-v1", env_seed)
    return env.reset()["observation"]


def test_training_envs_start_from_their_derived_seeds(tmp_path, small):
    """Seeds 0 and 1 of a 3-env run: each env starts where its derived seed says, and the
    two runs share no start (with `seed + i` they shared 2 of 3 env streams)."""
    starts = {}
    for seed in (0, 1):
        _, module, _ = train(
            [
                *small("max_env_steps=3", "algo.num_envs=3"),
                f"seed={seed}",
                f"run_dir={tmp_path}/{seed}",
            ]
        )
        rows = module.replay_buffer.storage[: len(module.replay_buffer)]
        for env in range(3):
            observed = rows["observation"][env]
            torch.testing.assert_close(observed, pendulum_start(train_env_seed(seed, 0, env)))
            starts[(seed, env)] = tuple(observed.tolist())
    assert len(set(starts.values())) == len(starts)
