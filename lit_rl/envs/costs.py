"""Per-step costs: `info["cost"]` of a Gymnasium env, carried as ``("next", "cost")``.

An env "reports costs" when its reset info has a ``"cost"`` key (every lit_rl safety env
does). Its TorchRL env (`lit_rl.envs.lean.GymnasiumEnv`) then writes each step's cost
as ``("next", "cost")`` (float32, shape ``[1]`` like the reward) and the running
episode cost as
``("next", "episode_cost")``, so collectors, replay buffers, datasets and evaluation see
costs the way they see rewards. Envs without costs are built exactly as before.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

COST_KEY = "cost"
EPISODE_COST_KEY = "episode_cost"


def gym_env_reports_costs(env: gym.Env) -> bool:
    """Whether `env`'s reset info carries a cost (resets it once, unseeded)."""
    _, info = env.reset()
    return COST_KEY in info


def env_reports_costs(env_id: str, env_kwargs: dict[str, Any] | None = None) -> bool:
    """Whether the Gymnasium env `env_id`, made with `env_kwargs`, reports
    `info["cost"]` (cached per id and options)."""
    return _reports_costs(env_id, tuple(sorted((env_kwargs or {}).items())))


@functools.lru_cache(maxsize=64)
def _reports_costs(env_id: str, env_kwargs: tuple[tuple[str, Any], ...]) -> bool:
    from lit_rl.envs.make import make_gym_env

    env = make_gym_env(env_id, env_kwargs=dict(env_kwargs))
    try:
        return gym_env_reports_costs(env)
    finally:
        env.close()
