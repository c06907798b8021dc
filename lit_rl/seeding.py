"""Seeds of a run's random streams, derived so that no two runs or ranks share one.

Adding small offsets to the recipe's seed (`seed + rank * num_envs + i`) makes streams of
neighbouring seeds overlap: seeds 0 and 1 of a 5-env run shared 4 of their 5 env streams.
Here every stream is named by a path `(purpose, rank, env)` and its seed is drawn from
NumPy's `SeedSequence(seed, spawn_key=path)`, which hashes the run seed and the path
together: distinct `(seed, purpose, rank, env)` give independent, distinct 63-bit seeds.
"""

from __future__ import annotations

import numpy as np

TRAIN_ENV = 0  # path (TRAIN_ENV, rank, env_index): a rank's training envs
SAMPLING = 1  # path (SAMPLING, rank): torch's global RNG on a rank once fit starts
EVAL_ENV = 2  # path (EVAL_ENV,): the evaluation env (the same on every rank)


def derive_seed(seed: int, *path: int) -> int:
    """A 63-bit seed for the stream `path` of run `seed` (fits torch and Gymnasium)."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    words = np.random.SeedSequence(seed, spawn_key=path).generate_state(2, np.uint32)
    return int((int(words[0]) << 32 | int(words[1])) >> 1)


def train_env_seed(seed: int, rank: int, env_index: int) -> int:
    return derive_seed(seed, TRAIN_ENV, rank, env_index)


def sampling_seed(seed: int, rank: int) -> int:
    return derive_seed(seed, SAMPLING, rank)


def eval_env_seed(seed: int) -> int:
    return derive_seed(seed, EVAL_ENV)
