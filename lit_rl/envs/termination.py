"""Termination rules of the MuJoCo locomotion tasks, written on observations for model rollouts.

A learned model predicts the next observation but not whether the episode ends, and
imagining a fallen Hopper as alive makes a planner love falling. These mirror
Gymnasium's v5 `is_healthy` with default arguments and default observations
(`exclude_current_positions_from_observation=True`, so `obs[0]` is the torso height).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


def hopper_terminated(obs: torch.Tensor) -> torch.Tensor:
    z, angle = obs[..., 0], obs[..., 1]
    healthy_state = (obs[..., 1:].abs() < 100.0).all(-1)
    return ~(healthy_state & (z > 0.7) & (angle.abs() < 0.2))


def walker2d_terminated(obs: torch.Tensor) -> torch.Tensor:
    z, angle = obs[..., 0], obs[..., 1]
    return ~((z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0))


def ant_terminated(obs: torch.Tensor) -> torch.Tensor:
    z = obs[..., 0]
    return ~(torch.isfinite(obs).all(-1) & (z >= 0.2) & (z <= 1.0))


def humanoid_terminated(obs: torch.Tensor) -> torch.Tensor:
    z = obs[..., 0]
    return ~((z > 1.0) & (z < 2.0))


def never_terminated(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[:-1], dtype=torch.bool, device=obs.device)


TERMINATION_FNS: dict[str, TerminationFn] = {
    "Hopper": hopper_terminated,
    "Walker2d": walker2d_terminated,
    "Ant": ant_terminated,
    "Humanoid": humanoid_terminated,
}


def termination_fn(env_id: str) -> TerminationFn:
    """The rule for `env_id` (by its name before `-v`); tasks without one never terminate."""
    return TERMINATION_FNS.get(env_id.split("-v")[0], never_terminated)
