"""The one place lit_rl reaches into TorchRL internals to checkpoint and restore a run.

TorchRL (0.14) exposes no public API for what an exact resume needs: the observation a
collector will act on next, the Gymnasium envs inside a (serial) env, and a replay
buffer writer's cursor. These functions wrap each private attribute once, so a TorchRL
upgrade that renames one breaks here, in one file, with tests around it
(tests/test_resume.py, tests/test_vector_envs.py).
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer
from torchrl.envs import EnvBase, SerialEnv


def next_observation(collector: Collector) -> TensorDictBase:
    """The TensorDict the collector acts on at its next step (observation, counters)."""
    return collector._carrier


def set_next_observation(collector: Collector, carrier: TensorDictBase) -> None:
    collector._carrier = carrier.to(collector.env_device)


def gymnasium_envs(env: EnvBase) -> list[Any]:
    """The Gymnasium envs inside a TorchRL env (one, or each of a `SerialEnv`), in order."""
    sub_envs = env._envs if isinstance(env, SerialEnv) else [env]
    return [sub_env.base_env._env for sub_env in sub_envs]


def writer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """The buffer writer's cursor and write count."""
    return dict(buffer._writer.state_dict())


def set_writer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    buffer._writer.load_state_dict(state)
