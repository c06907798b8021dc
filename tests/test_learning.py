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


@pytest.mark.slow
def test_sdac_reaches_minus_250_on_pendulum_within_20k_env_steps(tmp_path):
    """recipes/sdac_pendulum.yaml, seed 0 (about 15 minutes on 2 cores). Measured: eval
    -1436 (2k), -1218 (4k), -345 (6k), -78 (8k), -146 (10k). DPMD with its recipe does
    not learn reliably yet (best -625 at 8k, -779 at 20k), so it has no such test."""
    import csv

    from conftest import REPO

    recipe = str(REPO / "recipes" / "sdac_pendulum.yaml")
    train([f"run_dir={tmp_path}", "progress_bar=false", "logger=[csv]"], recipe)
    rows = csv.DictReader((tmp_path / "metrics.csv").open())
    evals = [float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean")]
    assert max(evals) >= THRESHOLD, evals
