"""Bad input gets one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import pytest
from conftest import PENDULUM, REPO, run_cli, small_overrides

from lit_rl.cli import main

DPMD = str(REPO / "recipes" / "dpmd_pendulum.yaml")
SDAC = str(REPO / "recipes" / "sdac_pendulum.yaml")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            [PENDULUM, "env.id=Pendulum-v2"],
            "unknown env id 'Pendulum-v2'; did you mean Pendulum-v1",
        ),
        (
            [PENDULUM, "algo.batch_sise=64"],
            "unknown key 'algo.batch_sise' (did you mean 'batch_size'?)",
        ),
        ([PENDULUM, "sed=3"], "unknown key 'recipe.sed' (did you mean 'seed'?)"),
        ([PENDULUM, "seed=abc"], "'recipe.seed' must be int, got 'abc'"),
        ([PENDULUM, "algo.actor_lr=fast"], "'algo.actor_lr' must be float, got 'fast'"),
        (["recipes/nope.yaml"], "recipe file not found: recipes/nope.yaml"),
        ([PENDULUM, "logger=[csv,wandbb]"], "unknown logger 'wandbb'"),
        (
            [PENDULUM, "algo.name=ppo"],
            "unknown algo.name 'ppo'; available: bc, cfpi, consistency_ac, consistency_bc, cvpo, "
            "dpmd, dpmd_released_code, loop, loop_offline, loop_offline_consistency, sac, "
            "sac_lagrangian, safe_loop, sdac",
        ),
        ([PENDULUM, "trainer.max_steps=10"], "'trainer.max_steps' is set by lit_rl"),
        (
            [PENDULUM, "trainer.devises=2"],
            "unknown key 'trainer.devises' (did you mean 'devices'?)",
        ),
        ([PENDULUM, "seed"], "override 'seed' must look like key=value"),
        ([PENDULUM, "algo.utd_ratio=0"], "algo.utd_ratio=0 is out of range"),
        (
            [PENDULUM, "algo.buffer_capacity=10"],
            "algo.buffer_capacity=10 is out of range (at least",
        ),
        ([PENDULUM, "--resume", "missing.ckpt"], "checkpoint to resume not found: missing.ckpt"),
        ([PENDULUM, "trainer.gradient_clip_val=1.0"], "'trainer.gradient_clip_val' does not apply"),
        ([DPMD, "algo.num_particles=0"], "algo.num_particles=0 is out of range"),
        ([DPMD, "algo.diffusion_steps=0"], "algo.diffusion_steps=0 is out of range"),
        ([DPMD, "algo.q_norm_rate=0"], "algo.q_norm_rate=0 is out of range"),
        ([SDAC, "algo.num_reverse_samples=0"], "algo.num_reverse_samples=0 is out of range"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, expected, capsys, tmp_path):
    in_tmp = args[0] in (PENDULUM, DPMD, SDAC)
    code = main(["run", *args, f"run_dir={tmp_path}"] if in_tmp else ["run", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err
    assert len(err.splitlines()) == 1 and err.startswith("lit-rl: error:")


def test_console_script_prints_no_traceback():
    result = run_cli("run", PENDULUM, "env.id=Hoper-v5")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(
        "lit-rl: error: unknown env id 'Hoper-v5'; did you mean Hopper-v5"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_env_in_base_recipe_is_caught_before_training(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"defaults: [{PENDULUM}]\nenv:\n  id: NotAnEnv-v0\n")
    assert main(["run", str(recipe), f"run_dir={tmp_path}"]) == 2
    assert "unknown env id 'NotAnEnv-v0'" in capsys.readouterr().err


def test_run_without_a_recipe_is_one_line(capsys):
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lit-rl: error: give a recipe file (lit-rl run RECIPE.yaml) or --resume RUN_DIR"


def test_disk_full_is_one_line_and_exit_code_4(tmp_path, capsys, monkeypatch):
    import errno

    import lit_rl.modules.state as state

    def no_space(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(state.torch, "save", no_space)
    args = ["run", PENDULUM, *small_overrides(tmp_path, "max_env_steps=150")]
    assert main(args) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("lit-rl: error: No space left on device:") and "replay" in err
