"""Velocity-constrained MuJoCo tasks: the v5 locomotion envs with a speed limit.

Cost 1 at each step whose speed exceeds the task's limit, else 0 (`info["cost"]`), with
the limits of Safety-Gymnasium's `Safety*Velocity-v1` tasks (about half the speed a
good unconstrained SAC policy reaches). Speed is the forward velocity `x_velocity` for
the planar robots (Hopper, HalfCheetah, Walker2d) and the planar speed
`sqrt(x_velocity^2 + y_velocity^2)` for those that move in the plane (Ant, Humanoid,
Swimmer), as Safety-Gymnasium measures it. Rewards, observations and terminations are
the v5 task's own.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

# lit_rl id suffix -> (Gymnasium v5 id, speed limit)
VELOCITY_TASKS: dict[str, tuple[str, float]] = {
    "Hopper": ("Hopper-v5", 0.7402),
    "HalfCheetah": ("HalfCheetah-v5", 3.2096),
    "Walker2d": ("Walker2d-v5", 2.3415),
    "Ant": ("Ant-v5", 2.6222),
    "Humanoid": ("Humanoid-v5", 1.4149),
    "Swimmer": ("Swimmer-v5", 0.2282),
}


def step_speed(info: dict[str, Any]) -> float:
    """The speed the constraint limits: planar when the task reports `y_velocity`."""
    x_velocity = float(info["x_velocity"])
    if "y_velocity" in info:
        return math.hypot(x_velocity, float(info["y_velocity"]))
    return x_velocity


class VelocityCost(gym.Wrapper):
    """Adds `info["cost"] = 1[speed > limit]` (and `info["speed"]`) to each step; reset
    reports cost 0 so every info carries the key (datasets and loggers see it at once)."""

    def __init__(self, env: gym.Env, velocity_limit: float) -> None:
        super().__init__(env)
        self.velocity_limit = velocity_limit

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        return observation, {**info, "cost": 0.0}

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        speed = step_speed(info)
        info = {**info, "speed": speed, "cost": float(speed > self.velocity_limit)}
        return observation, reward, terminated, truncated, info


def make_velocity_env(robot: str, **kwargs) -> gym.Env:
    """`lit_rl/Safe<robot>Velocity-v0`: the v5 task under its speed limit."""
    env_id, limit = VELOCITY_TASKS[robot]
    limit = kwargs.pop("velocity_limit", limit)
    return VelocityCost(gym.make(env_id, **kwargs), limit)
