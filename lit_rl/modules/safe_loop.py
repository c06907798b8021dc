"""Safe LOOP: LOOP whose planner keeps predicted trajectories out of costly states.

Sikchi, Zhou, Held (CoRL 2021), safe variant (algorithms.md §2): the value learner is
LOOP's SAC, unchanged; safety comes from planning. The step cost is a known function of
the observation (the navigation tasks' ego-centric hazard positions,
`SafeGoalEnv.cost_from_observation`), so the planner prices every predicted observation
of every ensemble member and particle (`lit_rl.planning.planners.SafeARCPlanner`).
Defaults as the paper's safe setting: H 8, 8 iterations, feasibility threshold 0.2,
at least 10 feasible sequences (else minimise cost).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from lit_rl.envs.make import make_gym_env
from lit_rl.errors import ConfigError
from lit_rl.modules.loop import LOOP
from lit_rl.planning.planners import CostFn


def observation_cost_fn(env_id: str, env_kwargs: dict | None = None) -> CostFn:
    """The env's `cost_from_observation` (raises a `ConfigError` when it has none)."""
    env: gym.Env = make_gym_env(env_id, env_kwargs=env_kwargs)
    try:
        cost_fn = getattr(env.unwrapped, "cost_from_observation", None)
    finally:
        env.close()
    if cost_fn is None:
        raise ConfigError(
            f"safe_loop plans with a cost known from the observation; env '{env_id}' has no "
            "cost_from_observation (lit_rl/SafePointGoal-v0, lit_rl/SafeCarGoal-v0 and "
            "lit_rl/SafePointGoalSmall-v0 do)"
        )
    return cost_fn


class SafeLOOP(LOOP):
    """LOOP with safe ARC. Args (besides LOOP's):
    plan_cost_threshold: a sequence is feasible when its worst rollout's summed cost
        is at most this (0.2).
    min_feasible: below this many feasible sequences the planner minimises cost (10).
    plan_uniform_samples: sequences drawn uniformly from the action box that join an
        iteration's candidates when fewer than `min_feasible` of them are feasible (50):
        a way around a hazard stays among the candidates when ARC's sampling has
        collapsed at an action bound (a deviation from the paper; `SafeARCPlanner`).
    """

    algo_name = "safe_loop"
    uses_costs = True
    planner_choices = ("safe_arc", "policy")

    def __init__(
        self,
        *args,
        planner: str = "safe_arc",
        horizon: int = 8,
        plan_iterations: int = 8,
        plan_cost_threshold: float = 0.2,
        min_feasible: int = 10,
        plan_uniform_samples: int = 50,
        **kwargs,
    ) -> None:
        super().__init__(
            *args, planner=planner, horizon=horizon, plan_iterations=plan_iterations, **kwargs
        )
        self._cost_fn: CostFn = observation_cost_fn(self.hparams.env_id, self.hparams.env_kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "min_feasible": 1
            <= hp.min_feasible
            <= hp.num_samples + hp.num_prior + hp.plan_uniform_samples,
            "plan_uniform_samples": hp.plan_uniform_samples >= 0,
            "plan_cost_threshold": hp.plan_cost_threshold >= 0,
        }

    def planner_extras(self) -> dict[str, Any]:
        return {"cost_fn": self._cost_fn}
