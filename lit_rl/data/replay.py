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


def tensordict_state(td: TensorDictBase) -> dict[str, Any]:
    """A TensorDict as nested plain dicts of tensors (loads with `weights_only=True`)."""
    return {"data": td.to_dict(), "batch_size": list(td.batch_size)}


def tensordict_from_state(state: dict[str, Any]) -> TensorDict:
    return TensorDict(state["data"], batch_size=state["batch_size"])
