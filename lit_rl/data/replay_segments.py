"""Checkpoint a replay buffer in proportion to what changed: one segment file per checkpoint.

Re-saving the whole buffer at every checkpoint costs time, disk and memory in proportion
to its size (a full 1M-transition Humanoid buffer is ~2.8 GB). Instead each checkpoint
writes only the rows written since the previous one, as a segment
`<dir>/rank<r>-rows-w<write count>-<id>.pt` (tensors and plain values, read with
`weights_only=True`), and the rank's state lists the segments that rebuild the buffer.

Rebuilding replays the segments' writes in order, each at the storage position where it
first happened, then restores the writer's cursor and write count: the storage ends
bit-identical, overwritten rows included. Segments whose rows were all overwritten later
(`end_write <= write_count - capacity`) drop out of the list; files no checkpoint lists
any more are deleted by the run-state code (`lit_rl.modules.state`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import torch
from torchrl.data import ReplayBuffer

from lit_rl.data.replay import tensordict_from_state, tensordict_state
from lit_rl.sources.torchrl_state import set_writer_state, writer_state

SEGMENT_GLOB = "rank{rank}-rows-*.pt"


def _write_count(buffer: ReplayBuffer) -> int:
    return int(writer_state(buffer)["_write_count"])


class ReplaySegments:
    """Writes and reads the segments of one rank's replay buffer in `directory`."""

    def __init__(self, directory: str | os.PathLike, rank: int) -> None:
        self.directory = Path(directory)
        self.rank = rank
        self.saved_writes = 0  # the buffer's write count the segments cover
        self.segments: list[dict[str, Any]] = []  # {"name", "start_write", "end_write"}

    def save(self, buffer: ReplayBuffer) -> dict[str, Any]:
        """Write the rows added since the last save; return the buffer's state (small)."""
        writes, capacity = _write_count(buffer), buffer.storage.max_size
        if writes > self.saved_writes:
            self.segments.append(self._write_segment(buffer, writes, capacity))
            self.saved_writes = writes
        self.segments = [seg for seg in self.segments if seg["end_write"] > writes - capacity]
        return {
            "segments": [dict(seg) for seg in self.segments],
            "saved_writes": self.saved_writes,
            "writer": writer_state(buffer),
        }

    def _write_segment(self, buffer: ReplayBuffer, writes: int, capacity: int) -> dict[str, Any]:
        first = max(self.saved_writes, writes - capacity)
        positions = torch.arange(first, writes) % capacity
        rows = buffer.storage[positions]
        name = f"rank{self.rank}-rows-w{writes:012d}-{secrets.token_hex(3)}.pt"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        torch.save({"start_write": first, "rows": tensordict_state(rows)}, tmp)
        os.replace(tmp, path)
        return {"name": name, "start_write": first, "end_write": writes}

    def load(self, buffer: ReplayBuffer, state: dict[str, Any], load_file, directory=None) -> None:
        """Rebuild an empty `buffer` from `save`'s state, reading segments from
        `directory` (default: this object's; a resumed checkpoint's own folder);
        `load_file(path, what)` reads a segment safely (`lit_rl.modules.state.load_plain`)."""
        source = Path(directory) if directory is not None else self.directory
        if len(buffer):
            raise RuntimeError("ReplaySegments.load expects an empty replay buffer")
        capacity = buffer.storage.max_size
        for segment in state["segments"]:
            data = load_file(source / segment["name"], "lit_rl replay segment")
            start = int(data["start_write"])
            # replay the segment's writes where they first happened
            set_writer_state(buffer, {"_cursor": start % capacity, "_write_count": start})
            buffer.extend(tensordict_from_state(data["rows"]).to(buffer.storage.device))
        set_writer_state(buffer, state["writer"])
        self.segments = [dict(seg) for seg in state["segments"]]
        self.saved_writes = int(state["saved_writes"])

    def files(self) -> list[Path]:
        """Every segment file of this rank in the directory (listed or not)."""
        return sorted(self.directory.glob(SEGMENT_GLOB.format(rank=self.rank)))
