"""Ranks started by torchrun (two "nodes" on the loopback interface, one process each)
agree on one run folder, train, checkpoint and resume one run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from conftest import PENDULUM, SMALL

from lit_rl.modules.state import checkpoint_counters

LIT_RL = str(Path(sys.executable).parent / "lit-rl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_nodes(cwd: Path, *lit_rl_args: str) -> list[subprocess.CompletedProcess]:
    """`torchrun --nnodes 2 --node-rank 0/1` of `lit-rl ARGS`, both on this machine."""
    port = free_port()
    # a LIT_RL_RUN_DIR left in the environment (earlier runs in this process set it)
    # must not redirect the ranks
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LIT_RL_RUN_DIR": "/nonexistent/stale"}
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "torch.distributed.run",
                "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node),
                "--master-addr", "127.0.0.1", "--master-port", str(port),
                "--rdzv-id", "job42",
                LIT_RL, *lit_rl_args,
            ],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for node in (0, 1)
    ]  # fmt: skip
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_two_torchrun_nodes_share_one_run_folder_and_resume_it(tmp_path):
    overrides = [
        *SMALL,
        "max_env_steps=400",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.num_nodes=2",
        "trainer.strategy=ddp",
    ]
    first = launch_two_nodes(tmp_path, "run", PENDULUM, *overrides)
    for result in first:
        assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "sac_pendulum").iterdir()  # one folder for both
    assert run_dir.name == "job-job42_seed0"
    saved = checkpoint_counters(run_dir / "last.ckpt")
    assert saved["env_steps"] == 400 and saved["world_size"] == 2
    assert saved["updates"] == 150  # 200 local steps, 50 local warm-up
    second = launch_two_nodes(tmp_path, "run", "--resume", str(run_dir), "max_env_steps=600")
    for result in second:
        assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "runs" / "sac_pendulum").iterdir()) == [
        run_dir.name
    ]
    resumed = torch.load(run_dir / "last.ckpt", weights_only=True)["lit_rl"]
    assert resumed["env_steps"] == 600 and resumed["updates"] == 250
    for rank in (0, 1):
        assert (run_dir / "replay" / f"rank{rank}-u{250:010d}.pt").is_file()
