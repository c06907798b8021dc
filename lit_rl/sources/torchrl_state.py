"""The one place lit_rl reaches into TorchRL internals to checkpoint and run a collector.

TorchRL (0.14) exposes no public API for what an exact resume needs: the observation a
collector will act on next and a replay buffer writer's cursor (the Gymnasium envs' own
state comes from `lit_rl.envs.lean.GymnasiumEnv.env_states`); nor for turning off the
collector's per-step scan for private keys. These functions wrap each private attribute
once, so a TorchRL upgrade that renames one breaks here, in one file, with tests around
it (tests/test_resume.py, tests/test_vector_envs.py).
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer


def next_observation(collector: Collector) -> TensorDictBase:
    """The TensorDict the collector acts on at its next step (observation, counters)."""
    return collector._carrier


def set_next_observation(collector: Collector, carrier: TensorDictBase) -> None:
    collector._carrier = carrier.to(collector.env_device)


def keep_private_keys(collector: Collector) -> None:
    """Skip the collector's per-step scan for ``_``-prefixed keys to drop (lit_rl selects
    the keys it stores, so nothing private reaches a replay buffer)."""
    collector._exclude_private_keys = False


def writer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """The buffer writer's cursor and write count."""
    return dict(buffer._writer.state_dict())


def set_writer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    buffer._writer.load_state_dict(state)
