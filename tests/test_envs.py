"""Env construction and the env state that checkpoints carry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_rl.envs import make_env, restore_env_state, snapshot_env_state
from lit_rl.envs.make import env_dims
from lit_rl.errors import ConfigError


def test_env_has_unit_actions_float_observations_and_episode_returns():
    env = make_env("Hopper-v5", seed=0)
    assert env_dims(env) == (11, 3)
    rollout = env.rollout(5)
    assert rollout["observation"].dtype == torch.float32
    assert {"episode_reward", "step_count"} <= set(rollout["next"].keys())
    assert env.action_spec.space.low.min() == -1 and env.action_spec.space.high.max() == 1


def test_discrete_env_is_refused_with_a_reason():
    with pytest.raises(ConfigError, match="Discrete action space"):
        make_env("CartPole-v1", seed=0)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_snapshot_restores_a_running_episode(env_id):
    env = make_env(env_id, seed=3)
    gym_env = env.gym_env
    gym_env.reset(seed=3)
    action = np.full(gym_env.action_space.shape, 0.3, dtype=np.float32)
    for _ in range(7):
        gym_env.step(action)
    snapshot = snapshot_env_state(gym_env)
    expected = [gym_env.step(action)[0] for _ in range(5)]

    other = make_env(env_id, seed=99).gym_env
    other.reset(seed=99)
    restore_env_state(other, snapshot)
    got = [other.step(action)[0] for _ in range(5)]
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=0)
