"""Nothing is lost on interruption: SIGTERM and Ctrl-C checkpoint, SIGKILL resumes from
the last periodic checkpoint, and a NaN loss keeps the last good checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PENDULUM, REPO, run_cli, small_overrides, train

from lit_rl.cli import main
from lit_rl.modules import ALGORITHMS, SAC

LONG_RUN = "max_env_steps=100000"


def start_run(tmp_path: Path, *extra: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "lit-rl"
    args = [str(exe), "run", PENDULUM, *small_overrides(tmp_path, LONG_RUN, *extra)]
    return subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)


def saved_counters(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=False)["lit_rl"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_a_checkpoint_that_resumes(tmp_path, sig, code):
    proc = start_run(tmp_path)
    wait_for(
        lambda: any((tmp_path / "replay").glob("*.pt")) if (tmp_path / "replay").exists() else False
    )
    time.sleep(1.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode == code, err
    assert "checkpoint written; resume with: lit-rl run" in err
    last = tmp_path / "last.ckpt"
    assert last.is_file(), err
    stopped_at = saved_counters(last)
    assert 0 < stopped_at["env_steps"] < 100000
    # resume to a slightly larger budget: it continues from the saved counters
    target = stopped_at["env_steps"] + 50
    _, module, _ = train(small_overrides(tmp_path, f"max_env_steps={target}"), resume=str(last))
    assert module.env_steps == target


def test_sigkill_resumes_from_the_last_periodic_checkpoint(tmp_path):
    proc = start_run(tmp_path, "checkpoint.every_env_steps=100")
    wait_for(lambda: len(list(tmp_path.glob("step=*.ckpt"))) > 0)
    time.sleep(1.5)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    ckpts = sorted(tmp_path.glob("step=*.ckpt"), key=lambda p: p.stat().st_mtime)
    ckpt = ckpts[-1]
    stopped_at = saved_counters(ckpt)
    target = stopped_at["env_steps"] + 60
    _, module, _ = train(small_overrides(tmp_path, f"max_env_steps={target}"), resume=str(ckpt))
    assert module.env_steps == target
    assert module.updates > stopped_at["updates"]


class ExplodingSAC(SAC):
    """SAC whose critic loss turns NaN at update 120."""

    algo_name = "exploding_sac"

    def update(self, batch):
        if self.updates == 120:
            batch = batch.clone()
            batch.set(
                ("next", "reward"), torch.full_like(batch.get(("next", "reward")), float("nan"))
            )
        return super().update(batch)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(ALGORITHMS, "exploding_sac", ExplodingSAC)
    code = main(
        [
            "run",
            PENDULUM,
            *small_overrides(
                tmp_path,
                "max_env_steps=1000",
                "algo.name=exploding_sac",
                "checkpoint.every_env_steps=50",
            ),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "loss 'loss_qvalue' became nan at update 120" in err
    ckpts = list(tmp_path.glob("step=*.ckpt"))
    assert [c.name for c in ckpts] == ["step=100.ckpt"]
    assert not (tmp_path / "last.ckpt").exists()
    good = torch.load(ckpts[0], weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in good.values())


def test_eval_command_scores_a_checkpoint(tmp_path):
    train(small_overrides(tmp_path, "max_env_steps=200"))
    result = run_cli("eval", str(tmp_path / "last.ckpt"), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 2 and report["env_steps"] == 200
    assert -50 * 16.3 <= report["return_mean"] <= 0  # Pendulum rewards lie in [-16.3, 0] per step
