"""`lit-rl collect`: roll a policy out in an env and write a D4RL-layout file (or Minari).

The policy is `random` (uniform actions) or a lit_rl checkpoint's acting policy, as it
acts in training (stochastic; `noise` adds Gaussian noise of that std to actions in the
[-1, 1] box, clipped). Files hold actions in the env's own units, as D4RL does.
Episodes are recorded whole: `terminals` marks terminations, `timeouts` time-limit
truncations and the cut at the end of the step budget. `infos/cost` is written when the
env reports `info["cost"]`. A `metadata` group records the env id, the policy, the step
budget, the episode returns and, when given, the reference returns a normalised score
uses.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_rl.data.datasets import action_bounds, to_env_actions
from lit_rl.envs.make import make_gym_env
from lit_rl.errors import ConfigError
from lit_rl.modules.policy import act_on_numpy

Actor = Callable[[np.ndarray, bool], np.ndarray]  # (observation, episode start) -> action


@dataclasses.dataclass
class StepTable:
    """A flat table of steps in the D4RL layout (actions in [-1, 1] until written)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray
    costs: np.ndarray | None
    episode_returns: list[float]

    def __len__(self) -> int:
        return len(self.rewards)

    def episodes(self) -> list[slice]:
        """Row ranges of the episodes, in order."""
        ends = np.flatnonzero(self.terminals | self.timeouts)
        starts = np.concatenate([[0], ends[:-1] + 1])
        return [slice(int(s), int(e) + 1) for s, e in zip(starts, ends, strict=True)]


def random_actor(act_dim: int, seed: int) -> Actor:
    rng = np.random.default_rng(seed)
    return lambda observation, first: rng.uniform(-1.0, 1.0, act_dim)


def module_actor(module, noise: float, seed: int) -> Actor:
    """A lit_rl module's acting policy, as in training, plus optional Gaussian noise."""
    policy = module.make_policy()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def act(observation: np.ndarray, first: bool) -> np.ndarray:
        action = act_on_numpy(policy, observation, first, deterministic=False)
        action = action.astype(np.float64)
        if noise > 0:
            action = action + rng.normal(0.0, noise, action.shape)
        return np.clip(action, -1.0, 1.0)

    return act


def rollout_steps(
    env_id: str,
    actor: Actor,
    steps: int,
    seed: int,
    max_episode_steps: int | None = None,
    env_kwargs: dict | None = None,
) -> StepTable:
    """`steps` env steps of `actor` (whole episodes; the last one cut at the budget) in
    `env_id` made with `env_kwargs` (a checkpoint's `env.kwargs`)."""
    if steps <= 0:
        raise ConfigError(f"--steps must be positive, got {steps}")
    env = make_gym_env(env_id, max_episode_steps, env_kwargs=env_kwargs)
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next", "cost")}
    returns, episode_return, has_cost = [], 0.0, False
    observation, _ = env.reset(seed=seed)
    first = True
    for step in range(steps):
        action = np.asarray(actor(np.asarray(observation, np.float32), first), np.float64)
        next_observation, reward, terminated, truncated, info = env.step(action)
        truncated = truncated or (step == steps - 1 and not terminated)
        has_cost = has_cost or "cost" in info
        for key, value in (
            ("obs", observation),
            ("act", action),
            ("rew", reward),
            ("term", terminated),
            ("trunc", truncated),
            ("next", next_observation),
            ("cost", info.get("cost", 0.0)),
        ):
            rows[key].append(value)
        episode_return += float(reward)
        first = terminated or truncated
        if first:
            returns.append(episode_return)
            episode_return = 0.0
            observation, _ = env.reset()
        else:
            observation = next_observation
    env.close()
    return StepTable(
        observations=np.asarray(rows["obs"], np.float32),
        actions=np.asarray(rows["act"], np.float32),
        rewards=np.asarray(rows["rew"], np.float32),
        terminals=np.asarray(rows["term"], bool),
        timeouts=np.asarray(rows["trunc"], bool),
        next_observations=np.asarray(rows["next"], np.float32),
        costs=np.asarray(rows["cost"], np.float32) if has_cost else None,
        episode_returns=returns,
    )


def write_hdf5(
    table: StepTable, path: str | os.PathLike, env_id: str, metadata: dict[str, Any]
) -> Path:
    """Write `table` in the D4RL layout (actions in env units) with a `metadata` group."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    low, high = action_bounds(env_id)
    returns = np.asarray(table.episode_returns, np.float64)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with h5py.File(tmp, "w") as file:
        file["observations"] = table.observations
        file["actions"] = to_env_actions(table.actions, low, high).astype(np.float32)
        file["rewards"] = table.rewards
        file["terminals"] = table.terminals
        file["timeouts"] = table.timeouts
        file["next_observations"] = table.next_observations
        if table.costs is not None:
            file.create_group("infos")["cost"] = table.costs
        group = file.create_group("metadata")
        group.attrs["env_id"] = env_id
        group.attrs["steps"] = len(table)
        group.attrs["episodes"] = len(returns)
        group.attrs["returns"] = returns
        if len(returns):
            group.attrs["return_mean"] = float(returns.mean())
            group.attrs["return_std"] = float(returns.std())
        for key, value in metadata.items():
            if value is not None:
                group.attrs[key] = value
    os.replace(tmp, path)
    return path


def write_minari(table: StepTable, name: str, env_id: str, metadata: dict[str, Any]) -> str:
    """Write `table` as a local Minari dataset `name` (actions in env units)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    if name in minari.list_local_datasets():
        raise ConfigError(f"a local Minari dataset '{name}' exists already; choose another name")
    low, high = action_bounds(env_id)
    actions = to_env_actions(table.actions, low, high).astype(np.float32)
    episodes = []
    for index, rows in enumerate(table.episodes()):
        observations = np.concatenate(
            [table.observations[rows], table.next_observations[rows][-1:]], axis=0
        )
        episodes.append(
            EpisodeBuffer(
                id=index,
                observations=observations,
                actions=actions[rows],
                rewards=table.rewards[rows].astype(np.float64),
                terminations=table.terminals[rows],
                truncations=table.timeouts[rows],
                infos={},
            )
        )
    minari.create_dataset_from_buffers(
        dataset_id=name,
        buffer=episodes,
        env=env_id,
        algorithm_name=str(metadata.get("policy", "lit_rl")),
        ref_min_score=metadata.get("ref_random_return"),
        ref_max_score=metadata.get("ref_expert_return"),
        description=f"collected by lit-rl collect ({metadata.get('policy')})",
        data_format="hdf5",
    )
    return name
