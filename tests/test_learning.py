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


@pytest.mark.learning
def test_sac_learns_pendulum(tmp_path):
    assert final_eval_return(tmp_path, seed=0) >= THRESHOLD


@pytest.mark.slow
@pytest.mark.learning
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sac_learns_pendulum_more_seeds(tmp_path, seed):
    assert final_eval_return(tmp_path, seed=seed) >= THRESHOLD


@pytest.mark.slow
@pytest.mark.learning
def test_sdac_reaches_minus_250_on_pendulum_within_20k_env_steps(tmp_path):
    """recipes/sdac_pendulum.yaml, seed 0 (about 15 minutes on 2 cores). Measured: eval
    -1436 (2k), -1218 (4k), -345 (6k), -78 (8k), -146 (10k)."""
    assert max(diffusion_recipe_evals(tmp_path, "sdac_pendulum.yaml")) >= THRESHOLD


@pytest.mark.slow
@pytest.mark.learning
def test_dpmd_reaches_minus_250_on_pendulum_within_20k_env_steps(tmp_path):
    """recipes/dpmd_pendulum.yaml, seed 0 (about 10 minutes on 2 cores). Measured: eval
    -1496 (2k), -1392 (4k), -894 (6k), -129 (8k), -660 (10k), -877 (12k), -235 (14k),
    -74 (16k), -177 (18k), -148 (20k); the final 5-episode evaluation -96. The dip
    after 8k is real (see docs/diffusion.md), so the test asks for the best evaluation,
    as the paper reports, and the docs give the whole curve."""
    assert max(diffusion_recipe_evals(tmp_path, "dpmd_pendulum.yaml")) >= THRESHOLD


def diffusion_recipe_evals(run_dir, recipe_name: str) -> list[float]:
    """Train a Pendulum recipe to its budget; its `eval/return_mean` values in order."""
    import csv

    from conftest import REPO

    recipe = str(REPO / "recipes" / recipe_name)
    train([f"run_dir={run_dir}", "progress_bar=false", "logger=[csv]"], recipe)
    rows = csv.DictReader((run_dir / "metrics.csv").open())
    evals = [float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean")]
    assert evals, "the run logged no evaluation"
    return evals
