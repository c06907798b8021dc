"""Recipes compose, interpolate and override as documented; the lightning shim runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import PENDULUM, REPO

from lit_rl.cli import lightning_main
from lit_rl.config import load_recipe

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
DATASET_RECIPES = sorted((REPO / "recipes" / "datasets").glob("*.yaml"))


def test_every_recipe_loads_and_validates():
    names = {p.stem for p in RECIPES}
    assert {
        "sac_pendulum",
        "sac_hopper",
        "sac_halfcheetah",
        "sac_walker2d",
        "sac_ant",
        "sac_humanoid",
    } <= names
    for path in RECIPES:
        start = ["init_from=unused.ckpt"] if "init_from: ???" in path.read_text() else []
        cfg = load_recipe(path, start)
        assert cfg["name"] == path.stem
        # training recipes share the scheduler surface (offline ones count updates);
        # experiment recipes have no training budget
        budget = "max_updates" if "dataset" in cfg else "max_env_steps"
        surface = {"run_dir"} if "experiment" in cfg else {"seed", budget, "run_dir"}
        assert surface <= set(cfg)
        assert cfg["run_dir"].startswith(f"runs/{path.stem}/")
    for path in DATASET_RECIPES:  # datasets go to data/<name>, where offline recipes read
        cfg = load_recipe(path)
        assert cfg["experiment"] == "dataset_suite" and cfg["run_dir"] == f"data/{path.stem}"
        assert (REPO / cfg["dataset_suite"]["recipe"]).is_file()


def test_mujoco_recipes_use_published_sac_hyperparameters():
    for env in ("hopper", "halfcheetah", "walker2d", "ant", "humanoid"):
        algo = load_recipe(REPO / "recipes" / f"sac_{env}.yaml")["algo"]
        assert algo["actor_hidden"] == algo["critic_hidden"] == [256, 256]
        assert (algo["actor_lr"], algo["critic_lr"], algo["batch_size"]) == (3e-4, 3e-4, 256)
        assert (algo["gamma"], algo["tau"], algo["utd_ratio"]) == (0.99, 0.005, 1.0)
        assert algo["buffer_capacity"] == 1_000_000


def test_defaults_interpolation_and_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"seed": 1, "algo": {"name": "sac", "batch_size": 64}}))
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(
        "defaults: [base.yaml]\n"
        "max_env_steps: 500\n"
        "env: {id: Pendulum-v1}\n"
        "algo: {warmup_steps: '${max_env_steps}'}\n"
        "run_dir: out/${name}/seed${seed}\n"
    )
    cfg = load_recipe(recipe, ["seed=3", "algo.batch_size=512"])
    assert cfg["seed"] == 3 and cfg["algo"]["batch_size"] == 512
    assert cfg["algo"]["warmup_steps"] == 500  # interpolation of another key
    assert cfg["run_dir"] == "out/mine/seed3"  # interpolation sees the override


def test_lightning_run_is_lit_rl_run(capsys):
    assert lightning_main(["run", PENDULUM, "seed=7", "--print-config"]) == 0
    assert "seed: 7" in capsys.readouterr().out


def test_lightning_sdk_run_subcommands_are_not_taken_for_recipes(capsys):
    from lit_rl.cli import is_lit_rl_run

    assert is_lit_rl_run(["run", "recipes/sac_hopper.yaml", "seed=1"])
    assert is_lit_rl_run(["run", "--resume", "runs/x"])
    assert not is_lit_rl_run(["run", "job", "--name", "x"])
    assert not is_lit_rl_run(["run", "mmt"])
    try:
        import lightning_sdk  # noqa: F401
    except ImportError:
        assert lightning_main(["run", "job", "--name", "x"]) == 2
        assert "lightning-sdk" in capsys.readouterr().err


def test_lightning_console_script_handles_other_subcommands():
    exe = Path(sys.executable).parent / "lightning"
    result = subprocess.run([str(exe), "login"], capture_output=True, text=True, timeout=120)
    try:
        import lightning_sdk  # noqa: F401
    except ImportError:
        assert result.returncode == 2
        assert "lightning-sdk" in result.stderr and "lightning run RECIPE.yaml" in result.stderr


def test_lightning_run_trains_the_hopper_recipe_from_the_command_line(tmp_path):
    exe = Path(sys.executable).parent / "lightning"
    result = subprocess.run(
        [
            str(exe),
            "run",
            "recipes/sac_hopper.yaml",
            "max_env_steps=300",
            "algo.warmup_steps=200",
            "algo.batch_size=64",
            f"run_dir={tmp_path}",
            "eval.episodes=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"lit-rl: run folder {tmp_path}" in result.stdout
    assert "lit-rl: 300 env steps, 100 updates" in result.stdout
    assert "SAC Hopper-v5" in result.stderr and "300/300" in result.stderr  # bar counts env steps
    assert (tmp_path / "last.ckpt").is_file() and (tmp_path / "metrics.csv").is_file()


def test_base_recipes_state_only_departures_from_the_class_defaults():
    """Each default has one home, the algorithm's signature: a base recipe restating one
    would silently drift from it when either changes."""
    from omegaconf import OmegaConf

    from lit_rl.config import algorithm_defaults
    from lit_rl.modules import ALGORITHMS

    for path in sorted((REPO / "recipes" / "base").glob("*.yaml")):
        algo = OmegaConf.to_container(OmegaConf.load(path)).get("algo", {})
        name = (
            algo.get("name") or load_recipe(REPO / "recipes" / "dpmd_pendulum.yaml")["algo"]["name"]
        )
        defaults = algorithm_defaults(ALGORITHMS[name])
        restated = [k for k, v in algo.items() if k in defaults and defaults[k] == v]
        assert not restated, f"{path.name} restates class defaults {restated}"


def test_a_loaded_recipe_lists_every_algorithm_argument():
    from lit_rl.config import algorithm_schema
    from lit_rl.modules import LOOP

    algo = load_recipe(REPO / "recipes" / "loop_pendulum.yaml")["algo"]
    assert set(algo) == {"name", *algorithm_schema(LOOP)}
    assert algo["kappa"] == 100.0  # the recipe's value wins over the default (1.0)
    assert algo["model_members"] == 7  # the class default, now visible in config.yaml
