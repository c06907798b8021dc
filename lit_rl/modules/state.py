"""Per-rank run state written beside a checkpoint: replay buffer, env, collector, RNG.

Lightning's checkpoint holds the weights, optimizers and counters; each DDP rank also
owns a replay buffer and an env that differ across ranks and may be large, so every
rank writes them to `<run_dir>/replay/rank<r>-u<updates>.pt` and the checkpoint keeps
the relative path. The last two generations are kept, so a process killed between
writing this file and the checkpoint still finds the one its checkpoint names.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP_GENERATIONS = 2
STATE_DIR = "replay"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states (CUDA too when present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rank_state_name(rank: int, updates: int) -> str:
    return f"{STATE_DIR}/rank{rank}-u{updates:010d}.pt"


def write_rank_state(
    run_dir: str | os.PathLike, rank: int, updates: int, state: dict[str, Any]
) -> str:
    """Atomically write this rank's state and prune old generations; return the relative path."""
    relative = rank_state_name(rank, updates)
    path = Path(run_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    generations = sorted(path.parent.glob(f"rank{rank}-u*.pt"))
    for old in generations[:-KEEP_GENERATIONS]:
        old.unlink(missing_ok=True)
    return relative


def read_rank_state(base_dir: str | os.PathLike, rank: int, updates: int) -> dict[str, Any]:
    path = Path(base_dir) / rank_state_name(rank, updates)
    if not path.exists():
        raise FileNotFoundError(
            f"the checkpoint needs {path} (replay buffer and env state of rank {rank}); "
            "resume from a checkpoint inside its own run folder"
        )
    return torch.load(path, weights_only=False)
