"""DDP under faults: a NaN on one rank, or a signal to one rank, stops every rank at the
same update (nobody waits forever in an all-reduce), with one consistent checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
from test_ddp_precision import SCRIPT

from lit_rl.modules.state import checkpoint_counters


def test_a_nan_on_rank_1_only_stops_both_ranks_at_that_update(tmp_path):
    env = {**os.environ, "DDP_NAN_RANK": "1", "DDP_NAN_AT": "60"}
    args = [sys.executable, str(SCRIPT), str(tmp_path), "2000", "-"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 3, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("rank ")]
    assert any("rank 1: loss 'loss_qvalue' became nan at update 60" in line for line in lines), (
        result.stdout
    )
    assert any(
        "rank 0: a loss on another rank became non-finite at update 60" in line for line in lines
    ), result.stdout


def test_sigterm_to_rank_1_only_stops_both_ranks_at_the_same_update(tmp_path):
    pid_dir = tmp_path / "pids"
    env = {**os.environ, "DDP_PID_DIR": str(pid_dir)}
    args = [sys.executable, str(SCRIPT), str(tmp_path), "100000", "-"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 180
    while not (pid_dir / "pid_rank1").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    time.sleep(3.0)  # let both ranks train past the warm-up
    os.kill(int((pid_dir / "pid_rank1").read_text()), signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    dumps = [torch.load(tmp_path / f"dump_rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert dumps[0]["updates"] == dumps[1]["updates"] > 0
    assert dumps[0]["env_steps"] < 100000
    saved = checkpoint_counters(tmp_path / "last.ckpt")
    assert saved["updates"] == dumps[0]["updates"]
    for rank in (0, 1):  # both ranks' state for that checkpoint is there
        assert (tmp_path / "replay" / f"rank{rank}-u{saved['updates']:010d}.pt").is_file()
