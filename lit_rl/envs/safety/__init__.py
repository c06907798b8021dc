"""Safety environments (registered Gymnasium ids under `lit_rl/`), each reporting a
per-step `info["cost"]`; docs/safe.md documents their costs.

Safety-Gymnasium does not install beside Gymnasium 1.4, so these are lit_rl's own:
- `lit_rl/Safe<Robot>Velocity-v0` for Hopper, HalfCheetah, Walker2d, Ant, Humanoid and
  Swimmer (`lit_rl.envs.safety.velocity`);
- `lit_rl/SafePointGoal-v0` and `lit_rl/SafeCarGoal-v0` (8 hazards, 1000 steps, as
  Safety Gym's Goal1), and `lit_rl/SafePointGoalSmall-v0`, a CPU-sized variant
  (`lit_rl.envs.safety.navigation`).
"""

from __future__ import annotations

import gymnasium as gym

from lit_rl.envs.safety.navigation import SafeGoalEnv
from lit_rl.envs.safety.velocity import VELOCITY_TASKS, VelocityCost

NAVIGATION_TASKS = {
    "SafePointGoal-v0": ({"robot": "point"}, 1000),
    "SafeCarGoal-v0": ({"robot": "car"}, 1000),
    # CPU-sized: a smaller arena, 4 larger hazards, 200-step episodes, and progress
    # rewards 10x larger (per-step rewards of ~0.02 would be swamped by SAC's entropy
    # bonus for the first tens of thousands of steps)
    "SafePointGoalSmall-v0": (
        {
            "robot": "point",
            "num_hazards": 4,
            "arena": 1.0,
            "hazard_radius": 0.25,
            "distance_reward": 10.0,
        },
        200,
    ),
}


def register_safety_envs() -> None:
    """Register every lit_rl safety id (idempotent)."""
    for name, (kwargs, steps) in NAVIGATION_TASKS.items():
        env_id = f"lit_rl/{name}"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lit_rl.envs.safety.navigation:SafeGoalEnv",
                kwargs=kwargs,
                max_episode_steps=steps,
            )
    for robot in VELOCITY_TASKS:
        env_id = f"lit_rl/Safe{robot}Velocity-v0"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lit_rl.envs.safety.velocity:make_velocity_env",
                kwargs={"robot": robot},
            )


register_safety_envs()

__all__ = ["NAVIGATION_TASKS", "SafeGoalEnv", "VelocityCost", "register_safety_envs"]
