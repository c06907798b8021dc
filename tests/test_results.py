"""Issue 16: the Python API, export, recipes from anywhere, user code from recipes,
several seeds, plots and their estimators, best checkpoints and early stopping."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PENDULUM, REPO, SMALL

import lit_rl
from lit_rl.api import train
from lit_rl.errors import ConfigError
from lit_rl.plotting import (
    Run,
    align,
    bootstrap_mean_ci,
    group_runs,
    iqm,
    optimality_gap,
    stratified_bootstrap_ci,
)

TINY = [*SMALL, "max_env_steps=300", "eval.every_env_steps=100"]
LIT_RL = str(Path(sys.executable).parent / "lit-rl")


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LIT_RL, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def eval_returns(run_dir: Path) -> list[tuple[float, float]]:
    rows = csv.DictReader((run_dir / "metrics.csv").open())
    return [
        (float(r["updates"]), float(r["eval/return_mean"]))
        for r in rows
        if r.get("eval/return_mean")
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return train(PENDULUM, TINY, run_dir=str(run_dir), seed=3)


def test_train_returns_the_run_folder_final_metrics_and_checkpoint(trained):
    assert trained.run_dir.is_dir() and (trained.run_dir / "config.yaml").is_file()
    assert trained.metrics["env_steps"] == 300 and trained.metrics["updates"] == 200
    assert trained.metrics["eval/return_mean"] == eval_returns(trained.run_dir)[-1][1]
    assert trained.checkpoint == trained.run_dir / "last.ckpt"
    assert "seed: 3" in (trained.run_dir / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="did you mean"):
        train(PENDULUM, TINY, algo={"batch_sise": 8})


def test_best_checkpoint_follows_the_best_evaluation(trained, tmp_path):
    from lit_rl.modules.state import checkpoint_counters

    evaluations = eval_returns(trained.run_dir)
    assert len(evaluations) == 3
    best_updates = max(evaluations, key=lambda row: row[1])[0]
    best = trained.run_dir / "best.ckpt"
    assert checkpoint_counters(best)["updates"] == best_updates
    # the same run keeping its worst evaluation instead: another checkpoint
    worst = train(
        PENDULUM, [*TINY, "checkpoint.best_mode=min"], run_dir=str(tmp_path / "w"), seed=3
    )
    assert eval_returns(worst.run_dir) == evaluations
    worst_updates = min(evaluations, key=lambda row: row[1])[0]
    assert worst_updates != best_updates
    assert checkpoint_counters(worst.run_dir / "best.ckpt")["updates"] == worst_updates


def test_load_policy_acts_in_the_env_bounds_like_the_trained_actor(trained):
    policy = lit_rl.load_policy(trained.checkpoint)
    module = policy.module
    obs = np.array([[0.5, -0.5, 1.0], [1.0, 0.0, -2.0]], dtype=np.float32)
    action = policy(obs)
    assert action.shape == (2, 1) and action.dtype == np.float32
    with torch.no_grad():
        unit = module.loss_module.actor.mode(torch.as_tensor(obs))
    np.testing.assert_allclose(action, 2.0 * unit.numpy(), rtol=1e-5)  # Pendulum: [-2, 2]
    assert policy(obs[0]).shape == (1,)
    np.testing.assert_array_equal(policy(obs), policy(obs))  # deterministic by default
    sampled = lit_rl.load_policy(trained.checkpoint, deterministic=False)
    assert not np.array_equal(sampled(obs), sampled(obs))
    with pytest.raises(ValueError, match=r"takes \[3\]"):
        policy(np.zeros(4))


def test_exported_policy_runs_without_lit_rl_and_matches(trained, tmp_path):
    out = tmp_path / "policy.pt2"
    result = cli("export", str(trained.checkpoint), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = (
        "import sys; sys.modules['lit_rl'] = None\n"  # any import of lit_rl would fail
        "import json, numpy, torch\n"
        f"program = torch.export.load({str(out)!r}).module()\n"
        f"obs = torch.from_numpy(numpy.load({str(tmp_path / 'obs.npy')!r}))\n"
        "print(json.dumps(program(obs).tolist()))\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    exported = np.array(json.loads(fresh.stdout))
    np.testing.assert_allclose(exported, lit_rl.load_policy(trained.checkpoint)(obs), rtol=1e-5)
    bad = cli("export", str(tmp_path / "obs.npy"), "--out", str(out), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_early_stopping_watches_an_eval_metric(tmp_path):
    stop = "early_stopping={monitor: eval/return_mean, stopping_threshold: -1.0e9}"
    result = train(PENDULUM, [*TINY, stop], run_dir=str(tmp_path / "run"))
    assert len(eval_returns(result.run_dir)) == 1  # stopped at the first evaluation
    assert result.metrics["env_steps"] < 110
    with pytest.raises(ConfigError, match="needs a monitor"):
        train(PENDULUM, [*TINY, "early_stopping={patience: 2}"])


def test_shipped_recipes_run_by_name_from_any_folder(tmp_path):
    listing = cli("recipes", cwd=tmp_path)
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert {"sac_pendulum", "dpmd_humanoid", "datasets/pendulum"} <= set(names)
    assert not any(name.startswith("base/") for name in names)
    printed = cli("run", "sac_pendulum", "seed=5", "--print-config", cwd=tmp_path)
    assert printed.returncode == 0 and "seed: 5" in printed.stdout, printed.stderr
    typo = cli("run", "sac_pendulm", cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean sac_pendulum" in typo.stderr
    assert typo.stderr.count("\n") == 1
    version = cli("--version", cwd=tmp_path)
    assert version.stdout.strip() == f"lit_rl {lit_rl.__version__}"
    for args in (["--help"], ["run", "--help"], ["eval", "--help"]):
        text = cli(*args, cwd=tmp_path).stdout
        assert "exit codes" in text and "lit-rl recipes" in text


def test_installed_package_carries_the_recipes(tmp_path):
    """A wheel (not this checkout) holds the recipes where `shipped_recipes_dir` looks."""
    import zipfile

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert "lit_rl/recipes/sac_pendulum.yaml" in names
    assert "lit_rl/recipes/base/sac.yaml" in names  # what the recipes' defaults name


def test_a_users_algorithm_and_env_run_from_the_cli(tmp_path, monkeypatch):
    from lit_rl.config import load_recipe

    project = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "user_project", project)
    small = [*SMALL, "max_env_steps=150", "eval.every_env_steps=150", "run_dir=out"]
    result = cli("run", "delayed_sac_pendulum.yaml", *small, cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = torch.load(project / "out" / "last.ckpt", weights_only=True)
    assert checkpoint["lit_rl_algo"] == "my_algos.delayed_sac:DelayedActorSAC"
    assert checkpoint["hyper_parameters"]["env_id"] == "my_algos.envs:ShortPendulum-v0"
    evaluated = cli("eval", "out/last.ckpt", "--episodes", "1", cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["return_mean"] < 0
    elsewhere = cli("eval", str(project / "out" / "last.ckpt"), cwd=tmp_path)
    assert elsewhere.returncode == 2  # the user's package is not importable from there
    assert "cannot import module 'my_algos.delayed_sac'" in elsewhere.stderr
    # in this process, from the project folder: resume, and one-line recipe errors
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    resumed = train("delayed_sac_pendulum.yaml", resume="out", max_env_steps=200)
    assert resumed.metrics["env_steps"] == 200
    recipe = "delayed_sac_pendulum.yaml"
    with pytest.raises(ConfigError, match="did you mean 'actor_delay'"):
        load_recipe(recipe, ["algo.actor_dealy=3"])
    with pytest.raises(ConfigError, match="cannot import module 'my_algos.nothing'"):
        load_recipe(recipe, ["algo.name=my_algos.nothing:X"])
    with pytest.raises(ConfigError, match="is not a lit_rl algorithm"):
        load_recipe(recipe, ["algo.name=my_algos.envs:gym"])
    with pytest.raises(ConfigError, match="unknown env id 'Nope-v0'"):
        load_recipe(recipe, ["env.id=my_algos.envs:Nope-v0"])


def test_the_delayed_actor_moves_only_on_its_updates(tmp_path):
    sys.path.insert(0, str(REPO / "examples" / "user_project"))
    try:
        result = train(
            PENDULUM, [*SMALL, "max_env_steps=103", "algo.warmup_steps=100",
                       "algo.name=my_algos.delayed_sac:DelayedActorSAC", "algo.actor_delay=2"],
            run_dir=str(tmp_path / "run"),
        )  # fmt: skip
    finally:
        sys.path.remove(str(REPO / "examples" / "user_project"))
    assert result.metrics["updates"] == 3
    # updates 0, 1, 2: the actor steps at 0 and 2 only; Adam's step count says so
    state = torch.load(result.checkpoint, weights_only=True)["optimizer_states"][0]["state"]
    steps = sorted({int(s["step"]) for s in state.values()})
    assert steps == [2, 3]  # actor and alpha: 2 steps; critic: 3


def test_several_seeds_from_one_command_then_one_plot(tmp_path):
    args = [*SMALL, "max_env_steps=150", "eval.every_env_steps=75", "logger=[csv]"]
    result = cli(
        "run", PENDULUM, *args, "seed=0,1", "--jobs", "2", "run_dir=seeds/run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted((tmp_path / "seeds").iterdir())
    assert [f.name for f in folders] == ["run_seed0", "run_seed1"]
    assert "seed: 1" in (folders[1] / "config.yaml").read_text()
    command = result.stdout.strip().splitlines()[-1].split("with: ", 1)[1]
    assert command.startswith("lit-rl plot")
    drawn = subprocess.run(
        [LIT_RL, *shlex.split(command)[1:], "--aggregate", "--gap-threshold", "0"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    written = drawn.stdout.split()
    assert [Path(p).suffix for p in written] == [".png", ".svg", ".png", ".svg"]
    assert all((tmp_path / p).stat().st_size > 1000 for p in written)
    nothing = cli("plot", "no_such_runs/*", cwd=tmp_path)
    assert nothing.returncode == 2 and "no run folders" in nothing.stderr
    bad = cli("run", PENDULUM, "seed=3-1", cwd=tmp_path)
    assert bad.returncode == 2 and "write them as 0-4" in bad.stderr


def fake_run(seed: int, ys, name="sac_pendulum", lr=3e-4, task="Pendulum-v1") -> Run:
    config = {"name": name, "seed": seed, "run_dir": f"r{seed}", "env": {"id": task},
              "algo": {"name": name.split("_")[0], "actor_lr": lr}}  # fmt: skip
    return Run(Path(f"r{seed}"), config, np.arange(len(ys)) * 100.0, np.asarray(ys, float))


def test_runs_group_by_config_up_to_the_seed():
    runs = [fake_run(0, [1, 2]), fake_run(1, [3, 4]), fake_run(0, [5, 6], lr=1e-3)]
    groups = group_runs(runs)
    assert [len(g) for g in groups.values()] == [2, 1]
    assert list(groups) == ["sac_pendulum", "sac_pendulum #2"]


def test_align_interpolates_onto_the_shortest_run():
    short = Run(Path("a"), {}, np.array([0.0, 100.0]), np.array([0.0, 10.0]))
    long = Run(Path("b"), {}, np.array([0.0, 50.0, 200.0]), np.array([0.0, 5.0, 20.0]))
    x, values = align([short, long])
    np.testing.assert_array_equal(x, [0.0, 50.0, 100.0])
    np.testing.assert_allclose(values, [[0, 5, 10], [0, 5, 10]])


def test_bootstrap_band_holds_the_mean_and_narrows_with_agreement():
    rng = np.random.default_rng(1)
    spread = rng.normal(0, 10, size=(5, 3))
    mean, low, high = bootstrap_mean_ci(spread)
    np.testing.assert_allclose(mean, spread.mean(0))
    assert (low <= mean).all() and (mean <= high).all() and (high - low > 1).all()
    same = np.ones((5, 3))
    _, low, high = bootstrap_mean_ci(same)
    np.testing.assert_array_equal(low, high)


def test_iqm_and_optimality_gap_follow_their_definitions():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([0, 0, 0, 100])) == pytest.approx(0.0)  # an outlier does not count
    assert optimality_gap(np.array([50.0, 120.0]), 100.0) == pytest.approx(25.0)
    assert optimality_gap(np.array([150.0]), 100.0) == 0.0


def test_stratified_bootstrap_resamples_within_tasks():
    # each task's runs agree: a stratified resample always has the same mix, so the CI
    # is a point; pooling the tasks before resampling would spread it from 0 to 100
    tasks = [np.zeros(3), np.full(3, 100.0)]
    point, low, high = stratified_bootstrap_ci(tasks, np.mean)
    assert point == low == high == 50.0
    point, low, high = stratified_bootstrap_ci([np.array([0.0, 10.0, 20.0, 30.0])], np.mean)
    assert low < point < high


def test_eval_video_records_the_first_evaluation_episode(tmp_path):
    import imageio

    recipe = str(REPO / "recipes" / "sac_lag_pointgoal.yaml")
    args = [*SMALL, "env.max_episode_steps=20", "max_env_steps=120", "algo.warmup_steps=100",
            "eval.every_env_steps=60", "eval.video=true", "logger=[csv,tensorboard]"]  # fmt: skip
    result = train(recipe, args, run_dir=str(tmp_path / "run"))
    videos = sorted((result.run_dir / "videos").glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    assert [v.name for v in videos] == ["eval-101.mp4", "eval-120.mp4"]  # at the run's clock
    reader = imageio.get_reader(videos[-1])
    assert reader.count_frames() == 21  # the reset frame and one per step of a 20-step episode
    frame = reader.get_data(0)
    assert frame.shape[2] == 3 and frame.std() > 5  # a rendered scene, not a blank image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    gifs = events.Images("eval/video")
    assert [g.step for g in gifs] == [1, 20] and gifs[-1].encoded_image_string[:6] == b"GIF89a"


@pytest.mark.parametrize("egl_present", [True, False])
def test_headless_rendering_is_chosen_only_where_libegl_exists(egl_present):
    """`import lit_rl` picks MUJOCO_GL=egl on a headless Linux box, but not on one without
    libEGL: there `import mujoco` then fails outright (an H200 box had no libEGL)."""
    import ctypes.util
    import os

    if ctypes.util.find_library("EGL") is None and egl_present:
        pytest.skip("this machine has no libEGL")
    hide = "" if egl_present else "ctypes.util.find_library = lambda name: None; "
    code = f"import ctypes.util, os; {hide}import lit_rl; print(os.environ.get('MUJOCO_GL'))"
    unset = ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("egl" if egl_present else "None")


def test_parallel_seeds_share_the_cores(monkeypatch):
    import os

    from lit_rl.seeds import child_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert child_env(4)["OMP_NUM_THREADS"] == "4"
    assert child_env(32)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in child_env(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert child_env(4)["OMP_NUM_THREADS"] == "3"  # the user's choice stands


def test_lightning_run_takes_shipped_recipe_names():
    from lit_rl.cli import is_lit_rl_run

    assert is_lit_rl_run(["run", "sac_pendulum", "seed=1"])
    assert is_lit_rl_run(["run", "--seeds", "0-2", "sac_pendulum"])
    assert not is_lit_rl_run(["run", "job"])  # lightning-sdk's own subcommand


def test_seed_lists_and_ranges():
    from lit_rl.seeds import parse_seeds, split_seed_override

    assert parse_seeds("0-2,5") == [0, 1, 2, 5]
    assert split_seed_override(["seed=0-1", "a=1"]) == (["a=1"], [0, 1])
    assert split_seed_override(["seed=7"]) == (["seed=7"], None)  # one seed: the recipe's
    with pytest.raises(ConfigError, match="twice"):
        parse_seeds("1,0-2")
