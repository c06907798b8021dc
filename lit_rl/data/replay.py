"""Uniform TensorDict replay buffers, and TensorDicts as plain state for checkpoints.

TorchRL's ``ReplayBuffer.state_dict`` holds the whole pre-allocated storage; lit_rl
checkpoints the rows written since the last checkpoint instead
(`lit_rl.data.replay_segments`), as plain dicts of tensors (``tensordict_state``) that
load with ``torch.load(weights_only=True)``.
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


def sample_recent(buffer: ReplayBuffer, window: int, batch_size: int) -> TensorDictBase:
    """`batch_size` transitions drawn uniformly (with replacement) from the `window` most
    recently written ones (all of them while fewer are stored).

    The writer fills the storage round-robin: the newest row sits just before its cursor,
    also after the storage has wrapped around.
    """
    stored = len(buffer)
    if stored == 0:
        raise ValueError("sample_recent: the replay buffer is empty")
    window = min(window, stored)
    cursor = getattr(buffer._writer, "_cursor", stored)  # the next row the writer fills
    device = buffer.storage.device if hasattr(buffer.storage, "device") else "cpu"
    back = torch.randint(window, (batch_size,), device=device)
    return buffer.storage[(cursor - 1 - back) % stored]


def tensordict_state(td: TensorDictBase) -> dict[str, Any]:
    """A TensorDict as nested plain dicts of tensors (loads with `weights_only=True`)."""
    return {"data": td.to_dict(), "batch_size": list(td.batch_size)}


def tensordict_from_state(state: dict[str, Any]) -> TensorDict:
    return TensorDict(state["data"], batch_size=state["batch_size"])
