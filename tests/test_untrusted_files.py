"""Files a user may be handed cannot run code: checkpoints, state files and recipes.

Each crafted file carries a pickle whose unpickling would create a marker file; the
command must refuse it with exit code 2 and one line, and the marker must not appear.
"""

from __future__ import annotations

import os

import torch
from conftest import PENDULUM, run_cli, small_overrides, train


class RunsCode:
    """Unpickling this calls `os.system` (what a malicious file would do)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def craft(path, marker) -> None:
    torch.save({"state_dict": {}, "lit_rl_algo": "sac", "payload": RunsCode(marker)}, path)


def assert_refused(result, marker) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit-rl: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "the crafted file ran code"


def test_eval_refuses_a_crafted_checkpoint(tmp_path):
    marker, ckpt = tmp_path / "pwned", tmp_path / "evil.ckpt"
    craft(ckpt, marker)
    assert_refused(run_cli("eval", str(ckpt)), marker)


def test_resume_refuses_a_crafted_checkpoint(tmp_path):
    marker, ckpt = tmp_path / "pwned", tmp_path / "evil.ckpt"
    craft(ckpt, marker)
    assert_refused(run_cli("run", "--resume", str(ckpt), "max_env_steps=300"), marker)
    # a run folder holding it: choosing the newest checkpoint must not unpickle it either
    assert_refused(run_cli("run", "--resume", str(tmp_path), "max_env_steps=300"), marker)


def test_resume_refuses_a_crafted_rank_state_file(tmp_path):
    run_dir = tmp_path / "run"
    _, _, run_dir = train(small_overrides(run_dir, "max_env_steps=200"))
    (state_file,) = sorted((run_dir / "replay").glob("rank0-u*.pt"))[-1:]
    marker = tmp_path / "pwned"
    torch.save({"format": 2, "replay": RunsCode(marker)}, state_file)
    result = run_cli("run", "--resume", str(run_dir / "last.ckpt"), "max_env_steps=300")
    assert_refused(result, marker)
    assert "refusing to load" in result.stderr


def test_eval_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    result = run_cli("eval", str(text))
    assert_refused(result, tmp_path / "no-marker")
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, plain)
    result = run_cli("eval", str(plain))
    assert_refused(result, tmp_path / "no-marker")
    assert "not a lit_rl checkpoint" in result.stderr


def test_a_recipe_logger_must_be_a_logger_class(tmp_path):
    marker = tmp_path / "pwned"
    overrides = small_overrides(tmp_path / "run", "max_env_steps=200")
    evil = f"logger=[{{name: os.system, command: 'touch {marker}'}}]"
    result = run_cli("run", PENDULUM, *overrides, evil)
    assert_refused(result, marker)
    assert "not a lightning.pytorch.loggers.Logger subclass" in result.stderr
