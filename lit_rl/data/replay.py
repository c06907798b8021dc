"""Uniform TensorDict replay buffers, and a compact state for checkpoints.

TorchRL's ``ReplayBuffer.state_dict`` holds the whole pre-allocated storage; a 1M-slot
buffer that holds 20k transitions would write 1M rows. ``replay_state`` keeps only the
filled rows and the writer cursor, and ``load_replay_state`` rebuilds the same layout.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler


def make_replay_buffer(
    capacity: int, batch_size: int, device: torch.device | str = "cpu"
) -> ReplayBuffer:
    """A uniform replay buffer of `capacity` transitions sampling `batch_size` at a time."""
    return ReplayBuffer(
        storage=LazyTensorStorage(capacity, device=device),
        sampler=RandomSampler(),
        batch_size=batch_size,
    )


def tensordict_state(td: TensorDictBase) -> dict[str, Any]:
    """A TensorDict as nested plain dicts of tensors (loads with `weights_only=True`)."""
    return {"data": td.to_dict(), "batch_size": list(td.batch_size)}


def tensordict_from_state(state: dict[str, Any]) -> TensorDict:
    return TensorDict(state["data"], batch_size=state["batch_size"])


def replay_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """The filled rows (in storage order) and the writer's cursor and write count."""
    num_filled = len(buffer)
    rows = None
    if num_filled:
        rows = tensordict_state(buffer.storage[:num_filled].clone())
    return {"rows": rows, "writer": dict(buffer._writer.state_dict())}


def load_replay_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    """Refill an empty buffer from `replay_state` output: same rows, same next write slot."""
    if len(buffer):
        raise RuntimeError("load_replay_state expects an empty replay buffer")
    if state["rows"] is not None:
        # Writing rows 0..n-1 in order reproduces the storage layout; the saved cursor
        # then puts the next write where the interrupted run would have put it.
        buffer.extend(tensordict_from_state(state["rows"]))
    buffer._writer.load_state_dict(state["writer"])
