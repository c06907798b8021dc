"""Save and restore the inside of a running Gymnasium env, so a resumed run continues
the same episode instead of resetting (TorchRL collectors do not keep env state).

A snapshot holds tensors and plain numbers only, so it loads with
`torch.load(weights_only=True)` and no state file can run code: MuJoCo envs save their
integration state (qpos, qvel, act, time and the solver's warm start, MuJoCo's
`mjSTATE_INTEGRATION`); other envs (classic control) save their numeric attributes
(Pendulum's `state` and `last_u`). Both save the env's RNG state and time-limit counters.
An env with more than physics to remember (a navigation task's goal and hazards) says so
with `task_state()` / `load_task_state(state)`, of tensors and plain values.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

PLAIN_SCALARS = (bool, int, float)
ARRAY_KINDS = "biuf"  # bool, int, unsigned, float arrays become tensors


def _time_limit_wrappers(env: gym.Env) -> list[gym.wrappers.TimeLimit]:
    found = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            found.append(env)
        env = env.env
    return found


def _is_mujoco(unwrapped: gym.Env) -> bool:
    return hasattr(unwrapped, "model") and hasattr(unwrapped, "data")


def _numeric_attributes(unwrapped: gym.Env) -> dict[str, Any]:
    """The env's attributes that are numbers, None or numeric arrays (as tensors)."""
    saved: dict[str, Any] = {}
    for name, value in vars(unwrapped).items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, PLAIN_SCALARS):
            saved[name] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in ARRAY_KINDS:
            saved[name] = {"array": torch.from_numpy(value.copy()), "dtype": value.dtype.str}
    return saved


def _restore_numeric_attributes(unwrapped: gym.Env, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        if isinstance(value, dict):
            value = value["array"].numpy().astype(np.dtype(value["dtype"]))
        setattr(unwrapped, name, value)


def snapshot_env_state(env: gym.Env) -> dict[str, Any]:
    """A snapshot of `env`'s dynamic state (physics, RNG, elapsed steps): tensors and
    plain values only."""
    unwrapped = env.unwrapped
    state: dict[str, Any] = {
        "elapsed": [w._elapsed_steps for w in _time_limit_wrappers(env)],
        "np_random": unwrapped.np_random.bit_generator.state,
    }
    if _is_mujoco(unwrapped):
        import mujoco

        # The full integration state (qpos, qvel, act, warm-start accelerations, time...)
        # so the resumed physics is bit-identical, not just close.
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buffer = np.empty(mujoco.mj_stateSize(unwrapped.model, spec))
        mujoco.mj_getState(unwrapped.model, unwrapped.data, buffer, spec)
        state["mujoco"] = torch.from_numpy(buffer)
    else:
        state["attributes"] = _numeric_attributes(unwrapped)
    if hasattr(unwrapped, "task_state"):
        state["task"] = unwrapped.task_state()
    return state


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put a snapshot from `snapshot_env_state` back into an env of the same id."""
    unwrapped = env.unwrapped
    for wrapper, elapsed in zip(_time_limit_wrappers(env), state["elapsed"], strict=False):
        wrapper._elapsed_steps = elapsed
    if "mujoco" in state:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.asarray(state["mujoco"], dtype=np.float64)
        mujoco.mj_setState(unwrapped.model, unwrapped.data, physics, spec)
        mujoco.mj_forward(unwrapped.model, unwrapped.data)
    else:
        _restore_numeric_attributes(unwrapped, state["attributes"])
    if "task" in state:
        unwrapped.load_task_state(state["task"])
    unwrapped.np_random.bit_generator.state = state["np_random"]
