"""Several envs per rank (`algo.num_envs`, as DPMD/SDAC's released code collects with 5):
every env step counts, each env has its own seed, and a resumed run continues all of them."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, run_cli, small_overrides, train

NUM_ENVS = 3


def test_vector_envs_count_every_env_step(tmp_path):
    # utd 1/3 with 3 envs: one update per vector step, as the released DPMD code does
    _, module, _ = train(
        small_overrides(
            tmp_path, f"algo.num_envs={NUM_ENVS}", "algo.utd_ratio=0.3333334", "max_env_steps=300"
        )
    )
    assert module.env_steps == 300 and len(module.replay_buffer) == 300
    assert (
        module.updates == (300 - 100) // NUM_ENVS
    )  # warm-up 100 env steps, then 1 per vector step
    # Pendulum resets to a random state: different seeds give different first observations
    rows = module.replay_buffer.storage[: len(module.replay_buffer)]
    first_obs = rows["observation"][:NUM_ENVS]
    assert not torch.equal(first_obs[0], first_obs[1]) and not torch.equal(
        first_obs[1], first_obs[2]
    )
    # episodes of 50 steps in each env: 300 steps = 6 vector episodes of 3
    assert module.episodes == 300 // 50


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_vector_envs_resume_equals_uninterrupted_run(tmp_path, vectorization):
    overrides = [f"algo.num_envs={NUM_ENVS}", f"algo.vectorization={vectorization}"]
    _, straight, _ = train(small_overrides(tmp_path / "straight", *overrides, "max_env_steps=330"))
    _, _, half_dir = train(small_overrides(tmp_path / "halves", *overrides, "max_env_steps=180"))
    _, resumed, _ = train(
        small_overrides(tmp_path / "halves", *overrides, "max_env_steps=330"),
        resume=str(half_dir / "last.ckpt"),
    )
    assert (resumed.env_steps, resumed.updates, resumed.episodes) == (
        straight.env_steps,
        straight.updates,
        straight.episodes,
    )
    rows = [m.replay_buffer.storage[: len(m.replay_buffer)] for m in (resumed, straight)]
    assert (rows[0] == rows[1]).all()
    for (name, p_resumed), p_straight in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p_resumed, p_straight, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("algo.num_envs=0", "algo.num_envs=0 is out of range"),
        ("algo.vectorization=threads", "algo.vectorization='threads'; choose one of sync, async"),
    ],
)
def test_bad_vector_settings_are_one_line_errors(tmp_path, bad, message):
    result = run_cli("run", str(REPO / "recipes" / "sac_pendulum.yaml"), bad, f"run_dir={tmp_path}")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_loop_planner_refuses_several_envs(tmp_path):
    result = run_cli(
        "run",
        str(REPO / "recipes" / "loop_pendulum.yaml"),
        "algo.num_envs=2",
        f"run_dir={tmp_path}",
    )
    assert result.returncode == 2
    assert "algo.num_envs=2" in result.stderr and "Traceback" not in result.stderr
