"""Gymnasium ids of lit_rl's safety envs, registered on `import lit_rl`.

Kept free of MuJoCo, torch and TorchRL imports (entry points are strings, loaded by
`gym.make`), so `import lit_rl; gym.make("lit_rl/SafePointGoal-v0")` works and importing
lit_rl stays cheap. The envs live in `lit_rl.envs.safety`; docs/safe.md documents them.
"""

from __future__ import annotations

import gymnasium as gym

NAVIGATION_TASKS: dict[str, tuple[dict, int]] = {
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
VELOCITY_ROBOTS = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid", "Swimmer")


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
    for robot in VELOCITY_ROBOTS:
        env_id = f"lit_rl/Safe{robot}Velocity-v0"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="lit_rl.envs.safety.velocity:make_velocity_env",
                kwargs={"robot": robot},
            )


register_safety_envs()
