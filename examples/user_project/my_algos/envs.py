"""Registers `ShortPendulum-v0` on import, so a recipe can name it as
`env.id: my_algos.envs:ShortPendulum-v0` (Gymnasium's module:EnvName form)."""

import gymnasium as gym

gym.register(
    "ShortPendulum-v0",
    entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
    max_episode_steps=50,
)
