"""What a checkpoint costs with a full replay buffer, before and after replay segments.

    python benchmarks/checkpoint.py                       # 1M transitions, Humanoid shapes
    python benchmarks/checkpoint.py --capacity 200000     # a smaller buffer

A 1M-transition buffer of Humanoid-v5 transitions (observation and next observation 348
floats, action 17, reward, terminated, done) is filled, then checkpointed twice:

* before (lit_rl 0.1): every checkpoint cloned the filled rows and saved all of them;
* after (replay segments): a checkpoint saves the rows written since the previous one
  (`--new-rows`, by default the 10k env steps between two checkpoints of the default
  recipes) plus a small state.

Each is measured in the same run, on the same disk: seconds and bytes written per
checkpoint, and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from tensordict import TensorDict

from lit_rl.data.replay import make_replay_buffer, tensordict_state
from lit_rl.data.replay_segments import ReplaySegments

HUMANOID_OBS, HUMANOID_ACT = 348, 17
FILL_CHUNK = 50_000


def transitions(count: int, obs_dim: int, act_dim: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(count, obs_dim),
            "action": torch.rand(count, act_dim) * 2 - 1,
            ("next", "observation"): torch.randn(count, obs_dim),
            ("next", "reward"): torch.randn(count, 1),
            ("next", "terminated"): torch.zeros(count, 1, dtype=torch.bool),
            ("next", "done"): torch.zeros(count, 1, dtype=torch.bool),
        },
        batch_size=[count],
    )


def bytes_in(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def full_rewrite(buffer, directory: Path) -> None:
    """The old checkpoint: clone every filled row and save them all."""
    rows = buffer.storage[: len(buffer)].clone()
    torch.save(
        {"rows": tensordict_state(rows), "writer": buffer._writer.state_dict()},
        directory / "replay_full.pt",
    )


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--new-rows", type=int, default=10_000)
    parser.add_argument("--obs-dim", type=int, default=HUMANOID_OBS)
    parser.add_argument("--act-dim", type=int, default=HUMANOID_ACT)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    args = parser.parse_args()
    torch.manual_seed(0)
    buffer = make_replay_buffer(args.capacity, 256)
    for start in range(0, args.capacity, FILL_CHUNK):
        buffer.extend(
            transitions(min(FILL_CHUNK, args.capacity - start), args.obs_dim, args.act_dim)
        )
    row_bytes = sum(v.element_size() * v[0].numel() for v in buffer.storage[:1].values(True, True))
    print(
        f"buffer: {len(buffer):,} transitions x {row_bytes} bytes = "
        f"{len(buffer) * row_bytes / 1e9:.2f} GB in memory"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        before_dir, after_dir = Path(tmp) / "before", Path(tmp) / "after"
        before_dir.mkdir()
        segments = ReplaySegments(after_dir, rank=0)
        segments.save(buffer)  # the checkpoints so far (the buffer's first fill)
        buffer.extend(transitions(args.new_rows, args.obs_dim, args.act_dim))
        before_s = timed(lambda: full_rewrite(buffer, before_dir))
        before_bytes = bytes_in(before_dir)
        after_start = bytes_in(after_dir)
        after_s = timed(lambda: segments.save(buffer))
        after_bytes = bytes_in(after_dir) - after_start
    print(f"one checkpoint after {args.new_rows:,} new transitions:")
    print(f"  before (whole buffer)    {before_s:8.2f} s  {before_bytes / 1e9:8.3f} GB written")
    print(f"  after  (replay segments) {after_s:8.2f} s  {after_bytes / 1e9:8.3f} GB written")
    print(
        f"  ratio before/after       {before_s / after_s:8.1f} x time  "
        f"{before_bytes / max(after_bytes, 1):8.1f} x bytes"
    )


if __name__ == "__main__":
    main()
