"""SAC learns: Pendulum-v1 mean deterministic eval return >= -250 within 10k env steps."""

from __future__ import annotations

import pytest
from conftest import train
from lit_rl.callbacks import EvalCallback

THRESHOLD = -250.0


def final_eval_return(tmp_path, seed: int) -> float:
    trainer, module, _ = train(
        [
            f"seed={seed}",
            f"run_dir={tmp_path}",
            "progress_bar=false",
            "logger=[csv]",
            "eval.episodes=10",
        ]
    )
    assert module.env_steps == 10_000
    evaluation = next(c for c in trainer.callbacks if isinstance(c, EvalCallback))
    return evaluation.last["eval/return_mean"]


def test_sac_learns_pendulum(tmp_path):
    assert final_eval_return(tmp_path, seed=0) >= THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sac_learns_pendulum_more_seeds(tmp_path, seed):
    assert final_eval_return(tmp_path, seed=seed) >= THRESHOLD
