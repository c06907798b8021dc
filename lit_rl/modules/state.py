"""Per-rank run state written beside a checkpoint: replay buffer, env, collector, RNG.

Lightning's checkpoint holds the weights, optimizers and counters; each DDP rank also
owns a replay buffer and an env that differ across ranks and may be large, so every
rank writes them to `<run_dir>/replay/rank<r>-u<updates>.pt` and the checkpoint keeps
the relative path. The replay buffer itself goes into segment files beside it, each
holding the rows added since the previous checkpoint (`lit_rl.data.replay_segments`).
A state file or segment is deleted only once no checkpoint of the run folder needs it
(every checkpoint `checkpoint.keep` keeps stays resumable), and never the newest, so a
process killed between writing it and its checkpoint loses nothing.

State files hold tensors, numbers, strings and containers of them only, and are read
with `torch.load(weights_only=True)`: a file a user is handed cannot run code. A file
that is not such a state file is refused with a one-line `ConfigError`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_rl.errors import ConfigError

STATE_DIR = "replay"
STATE_FORMAT = 3  # 1: pickled objects; 2: tensors, whole buffer; 3: replay as segments


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states (CUDA too when present), as tensors and numbers."""
    version, python_words, gauss_next = random.getstate()
    name, numpy_keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {
            "version": version,
            "words": torch.tensor(python_words, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(numpy_keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"].tolist()), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
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
    torch.save({"format": STATE_FORMAT, **state}, tmp)
    os.replace(tmp, path)
    prune_rank_files(path.parent, rank, keep={path.name}, run_dir=run_dir)
    return relative


def prune_rank_files(state_dir: Path, rank: int, keep: set[str], run_dir) -> None:
    """Delete this rank's state files and replay segments that no checkpoint of the run
    folder needs (and that are not in `keep`, the files just written)."""
    needed = set(keep) | {
        Path(rank_state_name(rank, updates)).name for updates in checkpointed_updates(run_dir)
    }
    segments: set[str] = set()
    for name in needed:
        try:
            state = load_plain(state_dir / name, "lit_rl rank state file")
            segments |= {segment["name"] for segment in state["replay"]["segments"]}
        except (ConfigError, KeyError, TypeError):
            continue  # absent or foreign: it protects nothing
    for old in state_dir.glob(f"rank{rank}-u*.pt"):
        if old.name not in needed:
            old.unlink(missing_ok=True)
    for old in state_dir.glob(f"rank{rank}-rows-*.pt"):
        if old.name not in segments:
            old.unlink(missing_ok=True)


def checkpoint_counters(path: str | os.PathLike) -> dict[str, Any]:
    """The `lit_rl` counters of a checkpoint (memory-mapped: weights are not read).

    Raises:
        ConfigError: (one line) the file is not a checkpoint of tensors and plain values.
    """
    return load_plain(path, "lit_rl checkpoint", mmap=True).get("lit_rl", {})


def checkpointed_updates(run_dir: str | os.PathLike) -> set[int]:
    """Update counts of the checkpoints in `run_dir` (unreadable files are skipped:
    one may be half-written by a rank that is saving right now)."""
    found = set()
    for checkpoint in Path(run_dir).glob("*.ckpt"):
        try:
            found.add(int(checkpoint_counters(checkpoint)["updates"]))
        except Exception:  # noqa: BLE001, S112 - not a readable lit_rl checkpoint
            continue
    return found


def load_plain(path: str | os.PathLike, what: str, mmap: bool = False) -> dict[str, Any]:
    """`torch.load(path, weights_only=True)`: tensors and plain values, never code.

    Raises:
        ConfigError: (one line) the file is missing or unreadable, holds anything but
            tensors and plain values (a pickled object, possibly crafted to run code), or
            is not a mapping.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - unpickling and zip errors have many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"refusing to load {path}: not a {what} made of tensors and plain values "
            f"({reason[:160]})"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"refusing to load {path}: not a {what}")
    return loaded


def read_rank_state(base_dir: str | os.PathLike, rank: int, updates: int) -> dict[str, Any]:
    path = Path(base_dir) / rank_state_name(rank, updates)
    if not path.exists():
        raise ConfigError(
            f"the checkpoint needs {path} (replay buffer and env state of rank {rank}); "
            "resume from a checkpoint inside its own run folder"
        )
    state = load_plain(path, "lit_rl rank state file")
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(
            f"{path} has state format {state.get('format')!r}; this lit_rl reads "
            f"format {STATE_FORMAT} (resume it with the lit_rl version that wrote it)"
        )
    return state
