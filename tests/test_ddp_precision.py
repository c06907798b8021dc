"""DDP on CPU (gloo) and mixed precision come from the Trainer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from conftest import run_cli, small_overrides, train

SCRIPT = Path(__file__).parent / "ddp_script.py"


def run_ddp(
    run_dir: Path, max_env_steps: int, ckpt: Path | None = None, *extra: str, env=None
) -> list[dict]:
    args = [sys.executable, str(SCRIPT), str(run_dir), str(max_env_steps), str(ckpt or "-"), *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(run_dir / f"dump_rank{r}.pt", weights_only=False) for r in (0, 1)]


def assert_same_weights(a: dict, b: dict) -> None:
    for (name, pa), pb in zip(a.items(), b.values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)


def test_ddp_two_ranks_identical_weights_global_counts_and_one_checkpoint_resume(tmp_path):
    rank0, rank1 = run_ddp(tmp_path, 600)
    # env steps are global: 300 per rank; warm-up 200 global = 100 per rank
    for dump in (rank0, rank1):
        assert dump["env_steps"] == 600 and dump["local_env_steps"] == 300
        assert dump["updates"] == 200 and dump["buffer_len"] == 300
    assert_same_weights(rank0["state_dict"], rank1["state_dict"])
    # each rank has its own env seed, hence its own data
    assert not torch.equal(rank0["first_obs"], rank1["first_obs"])
    assert sorted(p.name for p in (tmp_path / "replay").glob("rank*-u*.pt")) == [
        "rank0-u0000000200.pt",
        "rank1-u0000000200.pt",
    ]

    # resuming with another number of ranks is a one-line error, not a traceback
    other = run_cli("run", "--resume", str(tmp_path), "trainer.devices=1", "max_env_steps=800")
    assert other.returncode == 2, other.stderr[-2000:]
    assert "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1] == (
        "lit-rl: error: checkpoint was written by 2 ranks; resume it with "
        "trainer.devices x trainer.num_nodes = 2"
    )

    rank0, rank1 = run_ddp(tmp_path, 800, tmp_path / "last.ckpt")
    for dump in (rank0, rank1):
        assert dump["env_steps"] == 800 and dump["updates"] == 300 and dump["buffer_len"] == 400
    assert_same_weights(rank0["state_dict"], rank1["state_dict"])


def test_ddp_with_several_updates_per_training_step(tmp_path):
    rank0, rank1 = run_ddp(
        tmp_path, 600, None, "algo.updates_per_step=4", "algo.frames_per_batch=4"
    )
    assert rank0["updates"] == rank1["updates"] == 200 and rank0["env_steps"] == 600
    assert_same_weights(rank0["state_dict"], rank1["state_dict"])


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    trainer, module, _ = train(
        small_overrides(tmp_path, "max_env_steps=300", "trainer.precision=bf16-mixed")
    )
    assert trainer.precision == "bf16-mixed"
    assert module.updates == 200
    assert all(torch.isfinite(p).all() for p in module.parameters())
    # the weights moved away from their initial values
    _, untrained, _ = train(small_overrides(tmp_path / "init", "max_env_steps=100"))
    assert not torch.equal(
        module.loss_module.critic.layers[0].weight, untrained.loss_module.critic.layers[0].weight
    )


def test_offline_ddp_ranks_sample_their_own_batches_of_the_whole_dataset(tmp_path):
    import os

    from test_datasets import write_d4rl_by_hand

    dataset = tmp_path / "data.hdf5"
    write_d4rl_by_hand(dataset, rows=300, next_observations=True)
    env = {**os.environ, "DDP_DATASET": str(dataset)}
    rank0, rank1 = run_ddp(tmp_path / "run", 60, None, env=env)
    for dump in (rank0, rank1):
        assert dump["updates"] == 60 and dump["env_steps"] == 0
        assert dump["buffer_len"] == 300  # every rank holds the whole dataset
    assert_same_weights(rank0["state_dict"], rank1["state_dict"])  # gradients averaged
    assert not torch.equal(rank0["next_batch_obs"], rank1["next_batch_obs"])
