"""Safety environments (Gymnasium ids under `lit_rl/`, registered by
`lit_rl.registration`), each reporting a per-step `info["cost"]`; docs/safe.md documents
their costs.

Safety-Gymnasium does not install beside Gymnasium 1.4, so these are lit_rl's own:
- `lit_rl/Safe<Robot>Velocity-v0` for Hopper, HalfCheetah, Walker2d, Ant, Humanoid and
  Swimmer (`lit_rl.envs.safety.velocity`);
- `lit_rl/SafePointGoal-v0` and `lit_rl/SafeCarGoal-v0` (8 hazards, 1000 steps, as
  Safety Gym's Goal1), and `lit_rl/SafePointGoalSmall-v0`, a CPU-sized variant
  (`lit_rl.envs.safety.navigation`).
"""

from __future__ import annotations

from lit_rl.envs.safety.navigation import SafeGoalEnv
from lit_rl.envs.safety.velocity import VELOCITY_TASKS, VelocityCost
from lit_rl.registration import NAVIGATION_TASKS, register_safety_envs

__all__ = [
    "NAVIGATION_TASKS",
    "VELOCITY_TASKS",
    "SafeGoalEnv",
    "VelocityCost",
    "register_safety_envs",
]
