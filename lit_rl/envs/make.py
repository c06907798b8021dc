"""Build a TorchRL env from a Gymnasium id with the keys every algorithm expects.

Actions are rescaled to [-1, 1] on the Gymnasium side, so every policy in lit_rl acts in
the unit box whatever the task's bounds are.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import partial

import gymnasium as gym
import numpy as np

from lit_rl.envs.costs import env_reports_costs
from lit_rl.envs.lean import GymnasiumEnv
from lit_rl.errors import ConfigError


def check_env_id(env_id: str) -> None:
    """Raise a `ConfigError` naming close matches when `env_id` is not registered.

    Gymnasium's `module:EnvName-v0` form imports `module` first (a user's package that
    registers its envs on import; see `lit_rl.user_code`)."""
    if ":" in env_id:
        from lit_rl.user_code import import_user_module

        module_name, _, env_id = env_id.partition(":")
        import_user_module(module_name, f"env.id '{module_name}:{env_id}'")
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown env id '{env_id}'{hint}")


def make_gym_env(
    env_id: str,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    env_kwargs: dict | None = None,
) -> gym.Env:
    """A Gymnasium env with a continuous action space rescaled to [-1, 1].

    `env_kwargs` (a recipe's `env.kwargs`) go to `gymnasium.make`: the env's own options,
    such as `cost_indicator` of the lit_rl goal tasks."""
    check_env_id(env_id)
    kwargs: dict = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, **kwargs)
    except TypeError as err:
        if not env_kwargs:
            raise
        reason = str(err).strip().splitlines()[0].split(" was raised from")[0]
        raise ConfigError(
            f"env.kwargs {dict(env_kwargs)} do not fit env '{env_id}': {reason}"
        ) from None
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(
            f"env '{env_id}' has a {type(env.action_space).__name__} action space; "
            "lit_rl's algorithms need continuous (Box) actions"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ConfigError(
            f"env '{env_id}' has a {type(env.observation_space).__name__} observation "
            "space; lit_rl's algorithms need a flat Box observation"
        )
    unit = np.ones(env.action_space.shape, dtype=np.float32)
    return gym.wrappers.RescaleAction(env, -unit, unit)


def make_env(
    env_id: str,
    seed: int | Sequence[int],
    max_episode_steps: int | None = None,
    vectorization: str = "sync",
    env_kwargs: dict | None = None,
) -> GymnasiumEnv:
    """A seeded TorchRL env: float32 observations, step counts, episode returns.

    Args:
        env_id: a Gymnasium id such as ``"Hopper-v5"``.
        seed: the env's seed, or one seed per env for a vector of them (batch size
            ``[len(seed)]``; each DDP rank passes its own).
        max_episode_steps: overrides the registered time limit when given.
        vectorization: ``sync`` (one process) or ``async`` (a worker per env) for
            several envs.
        env_kwargs: keyword arguments of ``gymnasium.make`` (a recipe's ``env.kwargs``).

    Returns:
        A `GymnasiumEnv` whose ``observation`` is float32 ``[obs_dim]``, whose
        ``action`` lies in [-1, 1] and whose ``("next", "episode_reward")`` holds the
        running episode return; an env that reports costs (`lit_rl.envs.costs`) also
        writes ``("next", "cost")`` and ``("next", "episode_cost")``.
    """
    seeds = [seed] if isinstance(seed, int) else [int(s) for s in seed]
    check_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    makers = [
        partial(make_gym_env, env_id, max_episode_steps, env_kwargs=env_kwargs) for _ in seeds
    ]
    reports_costs = env_reports_costs(env_id, env_kwargs)
    return GymnasiumEnv(makers, seeds, vectorization=vectorization, reports_costs=reports_costs)


def env_dims(env: GymnasiumEnv) -> tuple[int, int]:
    """(obs_dim, act_dim) of a flat-observation env."""
    obs_shape = env.observation_spec["observation"].shape
    act_shape = env.action_spec.shape
    return int(obs_shape[-1]), int(act_shape[-1])
