"""Save and restore the inside of a running Gymnasium env, so a resumed run continues
the same episode instead of resetting (TorchRL collectors do not keep env state).

MuJoCo envs re-create themselves on unpickling (EzPickle), so their physics state is
saved explicitly; other envs (classic control) pickle with their state.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np


def _time_limit_wrappers(env: gym.Env) -> list[gym.wrappers.TimeLimit]:
    found = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            found.append(env)
        env = env.env
    return found


def _is_mujoco(unwrapped: gym.Env) -> bool:
    return hasattr(unwrapped, "model") and hasattr(unwrapped, "data")


def snapshot_env_state(env: gym.Env) -> dict[str, Any]:
    """A picklable snapshot of `env`'s dynamic state (physics, RNG, elapsed steps)."""
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
        state["mujoco"] = buffer
    else:
        state["pickled"] = pickle.dumps(unwrapped.__dict__)
    return state


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put a snapshot from `snapshot_env_state` back into an env of the same id."""
    unwrapped = env.unwrapped
    for wrapper, elapsed in zip(_time_limit_wrappers(env), state["elapsed"], strict=False):
        wrapper._elapsed_steps = elapsed
    if "mujoco" in state:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(unwrapped.model, unwrapped.data, state["mujoco"], spec)
        mujoco.mj_forward(unwrapped.model, unwrapped.data)
    else:
        try:
            unwrapped.__dict__.update(pickle.loads(state["pickled"]))
        except Exception as err:  # noqa: BLE001 - best effort, a reset is a safe fallback
            warnings.warn(
                f"could not restore env state ({err}); the episode restarts", stacklevel=2
            )
    unwrapped.np_random.bit_generator.state = state["np_random"]
