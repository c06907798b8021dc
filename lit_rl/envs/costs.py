"""Per-step costs: `info["cost"]` of a Gymnasium env, carried as ``("next", "cost")``.

An env "reports costs" when its reset info has a ``"cost"`` key (every lit_rl safety env
does). Its TorchRL env then writes each step's cost as ``("next", "cost")`` (float32,
shape ``[1]`` like the reward) and the running episode cost as
``("next", "episode_cost")``, so collectors, replay buffers, datasets and evaluation see
costs the way they see rewards. Envs without costs are built exactly as before.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import Transform
from torchrl.envs.gym_like import BaseInfoDictReader

COST_KEY = "cost"
EPISODE_COST_KEY = "episode_cost"


class CostReader(BaseInfoDictReader):
    """Reads `info["cost"]` (a Python or NumPy number) into the step's tensordict.

    TorchRL's `default_info_dict_reader` expects NumPy values; Gymnasium envs commonly
    report the cost as a Python float (Safety Gym's convention), so this reader casts.
    """

    def __init__(self) -> None:
        self._spec = Composite({COST_KEY: Unbounded(shape=(1,), dtype=torch.float32)}, shape=[])

    def __call__(self, info_dict: dict[str, Any], tensordict: TensorDictBase) -> TensorDictBase:
        cost = float(info_dict.get(COST_KEY, 0.0))
        return tensordict.set(COST_KEY, torch.tensor([cost], dtype=torch.float32))

    @property
    def info_spec(self) -> Composite:
        return self._spec


class EpisodeCost(Transform):
    """Writes the running episode cost ``episode_cost`` beside each step's ``cost``
    (TorchRL's `RewardSum` sums keys of the reward spec only; the cost is an
    observation-side entry, so the reward spec and every reward-reading loss stay as
    they are). Made for one env (lit_rl's `SerialEnv` holds one of these per env)."""

    def __init__(self) -> None:
        super().__init__(in_keys=[COST_KEY], out_keys=[EPISODE_COST_KEY])

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase):
        return tensordict_reset.set(EPISODE_COST_KEY, torch.zeros(1, dtype=torch.float32))

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase):
        so_far = tensordict.get(EPISODE_COST_KEY, None)
        cost = next_tensordict.get(COST_KEY)
        return next_tensordict.set(EPISODE_COST_KEY, cost if so_far is None else so_far + cost)

    def transform_observation_spec(self, observation_spec):
        observation_spec[EPISODE_COST_KEY] = Unbounded(
            shape=(*observation_spec.shape, 1), dtype=torch.float32, device=observation_spec.device
        )
        return observation_spec


def gym_env_reports_costs(env: gym.Env) -> bool:
    """Whether `env`'s reset info carries a cost (resets it once, unseeded)."""
    _, info = env.reset()
    return COST_KEY in info


@functools.lru_cache(maxsize=64)
def env_reports_costs(env_id: str) -> bool:
    """Whether the Gymnasium env `env_id` reports `info["cost"]` (cached per id)."""
    from lit_rl.envs.make import make_gym_env

    env = make_gym_env(env_id)
    try:
        return gym_env_reports_costs(env)
    finally:
        env.close()
