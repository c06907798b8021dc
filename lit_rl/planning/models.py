"""The model a planner rolls out: a learned ensemble's elites, or known equations.

Planners call `step` (every row through one model) and, when the model has members,
`members_step` (row block `m` through elite `m` for a whole rollout, as released ARC
does). A learned model's elites are read once per model fit (`refreshed` drops the
snapshot), not once per planning call.
"""

from __future__ import annotations

import torch

from lit_rl.envs.termination import termination_fn
from lit_rl.nets.dynamics import EliteDynamics, EnsembleDynamics
from lit_rl.planning.known_models import known_model
from lit_rl.planning.planners import StepFn


class LearnedModel:
    """The elites of `dynamics` with the env's termination rule (LOOP's model)."""

    def __init__(self, dynamics: EnsembleDynamics, env_id: str) -> None:
        self.dynamics = dynamics
        self.terminated_fn = termination_fn(env_id)
        self.num_members = dynamics.num_elites
        self._elites: EliteDynamics | None = None

    def refreshed(self) -> None:
        """Forget the elite snapshot (after a fit or a checkpoint load)."""
        self._elites = None

    @property
    def elites(self) -> EliteDynamics:
        if self._elites is None:
            self._elites = self.dynamics.elite_snapshot()
        return self._elites

    def step(self, observation: torch.Tensor, action: torch.Tensor):
        """`(next_obs, reward, terminated)` with a random elite per row."""
        next_obs, reward = self.elites.sample_step(observation, action)
        return next_obs, reward, self.terminated_fn(next_obs)

    def members_step(self, observation: torch.Tensor, action: torch.Tensor):
        """`[elites, N, ...]` rows, block `m` through elite `m`."""
        next_obs, reward = self.elites.members_step(observation, action)
        terminated = self.terminated_fn(next_obs.reshape(-1, next_obs.shape[-1]))
        return next_obs, reward, terminated.view(reward.shape)

    def planner_kwargs(self) -> dict:
        return {
            "step": self.step,
            "members_step": self.members_step,
            "num_members": self.num_members,
        }


class KnownModel:
    """An env's exact equations (`lit_rl.planning.known_models`): one member."""

    def __init__(self, step: StepFn) -> None:
        self.step = step

    def refreshed(self) -> None:
        """Nothing to forget: the equations do not change."""

    def planner_kwargs(self) -> dict:
        return {"step": self.step}


def planning_model(
    kind: str, dynamics: EnsembleDynamics, env_id: str
) -> LearnedModel | KnownModel | None:
    """`learned` or `known` (None when lit_rl has no equations for `env_id`)."""
    if kind == "learned":
        return LearnedModel(dynamics, env_id)
    step = known_model(env_id)
    return None if step is None else KnownModel(step)
