"""A resumed run continues the same experiment: counters, replay buffer, weights, RNG."""

from __future__ import annotations

import torch
from conftest import small_overrides, train

TOTAL, HALF = 400, 250  # HALF is mid-episode (episodes are 50 steps) and past warm-up


def buffer_rows(module):
    return module.replay_buffer.storage[: len(module.replay_buffer)]


def test_resume_equals_uninterrupted_run(tmp_path):
    _, straight, _ = train(small_overrides(tmp_path / "straight", f"max_env_steps={TOTAL}"))

    _, first_half, half_dir = train(small_overrides(tmp_path / "halves", f"max_env_steps={HALF}"))
    assert first_half.env_steps == HALF
    ckpt = half_dir / "last.ckpt"
    assert ckpt.is_file()
    _, resumed, _ = train(
        small_overrides(tmp_path / "halves", f"max_env_steps={TOTAL}"), resume=str(ckpt)
    )

    assert (resumed.env_steps, resumed.updates, resumed.episodes) == (
        straight.env_steps,
        straight.updates,
        straight.episodes,
    )
    assert len(resumed.replay_buffer) == len(straight.replay_buffer) == TOTAL
    assert (buffer_rows(resumed) == buffer_rows(straight)).all()
    for (name, p_resumed), p_straight in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p_resumed, p_straight, rtol=0, atol=0, msg=name)


def test_checkpoint_holds_counters_and_names_the_replay_file(tmp_path):
    _, module, run_dir = train(small_overrides(tmp_path, "max_env_steps=200"))
    # both files hold tensors and plain values only: they load without unpickling code
    checkpoint = torch.load(run_dir / "last.ckpt", weights_only=True)
    saved = checkpoint["lit_rl"]
    assert saved["env_steps"] == 200 and saved["updates"] == module.updates == 100
    rank_state = torch.load(run_dir / saved["rank_state"], weights_only=True)
    (segment,) = rank_state["replay"]["segments"]  # the rows written so far, in one file
    rows = torch.load(run_dir / "replay" / segment["name"], weights_only=True)["rows"]
    assert rows["batch_size"] == [200] and rows["data"]["observation"].shape == (200, 3)
    assert set(rank_state["rng"]) >= {"python", "numpy", "torch"}
    assert "optimizer_states" in checkpoint and checkpoint["optimizer_states"]
    # target critic and temperature are in the weights
    assert any(k.startswith("loss_module.target_critic") for k in checkpoint["state_dict"])
    assert "loss_module.log_alpha" in checkpoint["state_dict"]


def test_rng_state_round_trips_python_numpy_and_torch_as_plain_values(tmp_path):
    """The RNG part of a rank's state is tensors and numbers, and restores every stream."""
    import random

    import numpy as np

    from lit_rl.modules.state import rng_state, set_rng_state

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.standard_normal()  # leave cached Gaussians behind
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])
