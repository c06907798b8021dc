"""Offline datasets: D4RL files written by h5py (not by lit_rl), malformed files, the
collect command, Minari round trips, and offline runs on the engine's dataset source."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO, run_cli, train

from lit_rl.data.collect import random_actor, rollout_steps, write_hdf5, write_minari
from lit_rl.data.datasets import d4rl_references, load_dataset, read_d4rl_hdf5
from lit_rl.errors import ConfigError

BC_PENDULUM = str(REPO / "recipes" / "bc_pendulum.yaml")
CFPI_PENDULUM = str(REPO / "recipes" / "cfpi_pendulum.yaml")
OFFLINE_SMALL = [
    "algo.behavior_hidden=[32,32]",
    "algo.log_every_updates=20",
    "algo.batch_size=32",
    "progress_bar=false",
    "logger=[csv]",
    "eval.episodes=1",
    "env.max_episode_steps=50",
]


def write_d4rl_by_hand(path, rows=120, episode=50, next_observations=False, drop=None):
    """A D4RL-layout Pendulum file made with h5py alone: actions in torque units (+-2),
    an episode cut by a time limit every `episode` rows."""
    rng = np.random.default_rng(0)
    data = {
        "observations": rng.normal(size=(rows, 3)).astype(np.float32),
        "actions": rng.uniform(-2, 2, size=(rows, 1)).astype(np.float32),
        "rewards": rng.normal(size=rows).astype(np.float32),
        "terminals": np.zeros(rows, bool),
        "timeouts": (np.arange(rows) % episode) == episode - 1,
    }
    if next_observations:
        data["next_observations"] = rng.normal(size=(rows, 3)).astype(np.float32)
    with h5py.File(path, "w") as file:
        for key, value in data.items():
            if key != drop:
                file[key] = value
    return data


def test_a_d4rl_file_written_by_h5py_loads_with_its_episode_structure(tmp_path):
    path = tmp_path / "pendulum-random-v0.hdf5"
    raw = write_d4rl_by_hand(path)
    dataset = read_d4rl_hdf5(path, env_id="Pendulum-v1")
    td = dataset.transitions
    # no next_observations: rows 49 and 99 (timeouts) and 119 (the file's end) drop out
    assert len(dataset) == 117
    kept = np.setdiff1d(np.arange(120), [49, 99, 119])
    assert torch.allclose(td["action"], torch.from_numpy(raw["actions"][kept] / 2.0))
    assert torch.allclose(
        td["next", "observation"], torch.from_numpy(raw["observations"][kept + 1])
    )
    assert torch.allclose(td["next", "action"][0], torch.from_numpy(raw["actions"][1] / 2.0))
    assert bool(td["next", "has_action"].all())  # no kept row ends an episode
    assert not bool(td["next", "terminated"].any())
    assert dataset.env_id == "Pendulum-v1" and dataset.normalized_score(0.0) is None


def test_next_observations_keep_every_row_and_mark_episode_ends(tmp_path):
    path = tmp_path / "hopper-medium-v2.hdf5"
    raw = write_d4rl_by_hand(path, next_observations=True)
    td = read_d4rl_hdf5(path, env_id="Pendulum-v1").transitions
    assert td.batch_size[0] == 120
    ends = td["next", "done"].squeeze(-1)
    assert ends.nonzero().squeeze(-1).tolist() == [49, 99, 119]
    assert not bool(td["next", "has_action"].squeeze(-1)[ends].any())
    assert torch.allclose(td["next", "observation"], torch.from_numpy(raw["next_observations"]))
    # D4RL's reference returns by dataset name
    assert d4rl_references("hopper-medium-v2") == (-20.272305, 3234.3)


@pytest.mark.parametrize(
    ("drop", "message"),
    [("timeouts", "missing key 'timeouts'"), ("rewards", "missing key 'rewards'")],
)
def test_a_file_missing_a_key_is_refused_naming_it(tmp_path, drop, message):
    path = tmp_path / "broken.hdf5"
    write_d4rl_by_hand(path, drop=drop)
    with pytest.raises(ConfigError, match=message):
        read_d4rl_hdf5(path, env_id="Pendulum-v1")


def test_mis_shaped_and_foreign_files_are_one_line_errors(tmp_path):
    path = tmp_path / "wide.hdf5"
    write_d4rl_by_hand(path)
    with h5py.File(path, "a") as file:
        del file["actions"]
        file["actions"] = np.zeros((120, 2), np.float32)  # Pendulum has one action
    with pytest.raises(ConfigError, match=r"'actions' has shape \[120, 2\], expected \[N, 1\]"):
        read_d4rl_hdf5(path, env_id="Pendulum-v1")
    short = tmp_path / "short.hdf5"
    write_d4rl_by_hand(short)
    with h5py.File(short, "a") as file:
        del file["rewards"]
        file["rewards"] = np.zeros(7, np.float32)
    with pytest.raises(ConfigError, match="'rewards' has 7 rows, 'observations' has 120"):
        read_d4rl_hdf5(short, env_id="Pendulum-v1")
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    result = run_cli(
        "run", BC_PENDULUM, f"dataset={text}", "env.id=Pendulum-v1", f"run_dir={tmp_path / 'r'}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not an HDF5 file" in result.stderr


def test_collect_writes_env_units_episodes_and_metadata(tmp_path):
    out = tmp_path / "random.hdf5"
    result = run_cli(
        "collect", "random", "--env", "Pendulum-v1", "--steps", "450", "--out", str(out),
        "--seed", "3", "--ref-random", "-1200", "--ref-expert", "-150",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 450 and summary["episodes"] == 3  # 200 + 200 + 50 (cut)
    with h5py.File(out) as file:
        actions = file["actions"][()]
        assert np.abs(actions).max() > 1.0  # torque units, not the policy's box
        assert np.abs(actions).max() <= 2.0
        assert file["timeouts"][()].nonzero()[0].tolist() == [199, 399, 449]
        assert file["metadata"].attrs["env_id"] == "Pendulum-v1"
        assert len(file["metadata"].attrs["returns"]) == 3
    dataset = load_dataset(str(out))
    assert dataset.env_id == "Pendulum-v1"
    assert dataset.normalized_score(-150.0) == pytest.approx(100.0)
    assert dataset.normalized_score(-1200.0) == pytest.approx(0.0)
    assert float(dataset.transitions["action"].abs().max()) <= 1.0


def test_collect_refuses_bad_arguments_in_one_line(tmp_path):
    for args in (
        ["random", "--steps", "10", "--out", str(tmp_path / "a.hdf5")],  # no env
        ["random", "--env", "Pendulum-v9", "--steps", "10", "--out", str(tmp_path / "b.hdf5")],
        ["random", "--env", "Pendulum-v1", "--steps", "10"],  # no output
        [str(tmp_path / "missing.ckpt"), "--steps", "10", "--out", str(tmp_path / "c.hdf5")],
    ):
        result = run_cli("collect", *args)
        assert result.returncode == 2, args
        assert result.stderr.strip().count("\n") == 0, result.stderr


def test_a_minari_dataset_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    table = rollout_steps("Pendulum-v1", random_actor(1, 0), 300, seed=0)
    write_hdf5(table, tmp_path / "same.hdf5", "Pendulum-v1", {"policy": "random"})
    write_minari(
        table,
        "pendulum/random-v0",
        "Pendulum-v1",
        {"policy": "random", "ref_random_return": -1e3, "ref_expert_return": -1e2},
    )
    from_minari = load_dataset("minari:pendulum/random-v0")
    from_hdf5 = load_dataset(str(tmp_path / "same.hdf5"))
    assert from_minari.env_id == "Pendulum-v1" and len(from_minari) == len(from_hdf5) == 300
    for key in from_hdf5.transitions.keys(True, True):
        assert torch.allclose(
            from_minari.transitions[key].float(), from_hdf5.transitions[key].float(), atol=1e-5
        ), key
    assert from_minari.normalized_score(-1e2) == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="no local Minari dataset 'pendulum/expert-v0'"):
        load_dataset("minari:pendulum/expert-v0")


def test_bc_and_cfpi_train_on_a_d4rl_file_written_by_h5py(tmp_path):
    path = tmp_path / "pendulum-random-v0.hdf5"
    write_d4rl_by_hand(path, rows=400)
    for recipe in (BC_PENDULUM, CFPI_PENDULUM):
        run_dir = tmp_path / recipe.rsplit("/", 1)[-1]
        overrides = [
            *OFFLINE_SMALL,
            f"dataset={path}",
            "env.id=Pendulum-v1",  # D4RL files name no env
            "max_updates=60",
            "eval.every_updates=30",
            f"run_dir={run_dir}",
        ]
        if recipe == CFPI_PENDULUM:
            overrides.append("algo.critic_hidden=[32,32]")
        trainer, module, _ = train(overrides, recipe)
        assert module.updates == trainer.global_step == 60 and module.env_steps == 0
        rows = (run_dir / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        assert {"eval/return_mean", "updates", "loss_behavior"} <= set(header)
        evals = [r for r in rows[1:] if r.split(",")[header.index("eval/return_mean")]]
        assert len(evals) == 2  # at 30 and 60 updates, once each


def test_an_offline_run_resumes_exactly(tmp_path):
    path = tmp_path / "data.hdf5"
    write_d4rl_by_hand(path, rows=400, next_observations=True)
    common = [*OFFLINE_SMALL, f"dataset={path}", "env.id=Pendulum-v1", "algo.critic_hidden=[32,32]"]
    _, straight, _ = train([*common, "max_updates=80", f"run_dir={tmp_path / 'a'}"], CFPI_PENDULUM)
    first = [*common, "checkpoint.every_updates=40", f"run_dir={tmp_path / 'b'}"]
    train([*first, "max_updates=40"], CFPI_PENDULUM)
    _, resumed, _ = train(
        [*first, "max_updates=80"], CFPI_PENDULUM, resume=str(tmp_path / "b" / "step=40.ckpt")
    )
    assert resumed.updates == 80
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_offline_recipes_need_their_budget_and_refuse_online_keys(tmp_path):
    checks = [
        (["max_updates=null"], "'recipe.max_updates' must be int"),
        (["max_updates=0"], "'max_updates' must be positive"),
        (["max_env_steps=100"], "'max_env_steps' does not apply"),
        (["eval.every_env_steps=100"], "'eval.every_env_steps' does not apply"),
        (["dataset=/nonexistent.hdf5"], "file not found"),
    ]
    for overrides, message in checks:
        result = run_cli("run", BC_PENDULUM, *overrides, f"run_dir={tmp_path / 'x'}")
        assert result.returncode == 2, overrides
        assert message in result.stderr, result.stderr


def test_costs_an_env_reports_are_written_and_read_back(tmp_path):
    import gymnasium as gym

    class CostlyPendulum(gym.Wrapper):
        """Pendulum whose info carries a cost: 1 when the pole is below horizontal."""

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, {**info, "cost": float(obs[0] < 0)}

    env_id = "LitRLTest/CostlyPendulum-v0"
    if env_id not in gym.registry:
        gym.register(env_id, lambda **kw: CostlyPendulum(gym.make("Pendulum-v1", **kw)))
    table = rollout_steps(env_id, random_actor(1, 0), 250, seed=0, max_episode_steps=200)
    write_hdf5(table, tmp_path / "costly.hdf5", env_id, {"policy": "random"})
    with h5py.File(tmp_path / "costly.hdf5") as file:
        costs = file["infos/cost"][()]
        assert np.array_equal(costs, (file["next_observations"][()][:, 0] < 0).astype(np.float32))
    dataset = load_dataset(str(tmp_path / "costly.hdf5"))
    assert torch.equal(
        dataset.transitions["next", "cost"].view(-1), torch.from_numpy(costs).float()
    )


def test_offline_to_online_starts_from_the_weights_and_the_dataset(tmp_path):
    path = tmp_path / "data.hdf5"
    table = rollout_steps("Pendulum-v1", random_actor(1, 0), 300, seed=0)
    write_hdf5(
        table, path, "Pendulum-v1", {"ref_random_return": -1200.0, "ref_expert_return": -150.0}
    )
    small = [*OFFLINE_SMALL, "algo.critic_hidden=[32,32]"]
    _, offline, _ = train(
        [*small, f"dataset={path}", "max_updates=40", "checkpoint.every_updates=40",
         f"run_dir={tmp_path / 'offline'}"],
        CFPI_PENDULUM,
    )  # fmt: skip
    checkpoint = tmp_path / "offline" / "step=40.ckpt"
    online_recipe = str(REPO / "recipes" / "cfpi_online_pendulum.yaml")
    online_args = [*small, "max_env_steps=100", "eval.every_env_steps=100", "algo.batch_size=32"]
    import lit_rl.run as run_module

    loaded = {}
    original = run_module.load_initial_weights

    def spy(module, ckpt):
        original(module, ckpt)
        loaded.update({k: v.clone() for k, v in module.state_dict().items()})

    run_module.load_initial_weights = spy
    try:
        _, online, run_dir = train(
            [*online_args, f"init_from={checkpoint}", f"run_dir={tmp_path / 'online'}"],
            online_recipe,
        )
    finally:
        run_module.load_initial_weights = original
    for key, value in offline.state_dict().items():
        assert torch.equal(loaded[key], value), key  # started from the offline weights
    assert online.env_steps == 100
    assert len(online.replay_buffer) == 300 + 100  # the dataset, then collection
    rows = (run_dir / "metrics.csv").read_text()
    assert "eval/normalized_score" in rows.splitlines()[0]
    # a checkpoint of another algorithm is refused in one line
    result = run_cli(
        "run", str(REPO / "recipes" / "sac_pendulum.yaml"), "--init-from", str(checkpoint),
        f"run_dir={tmp_path / 'wrong'}",
    )  # fmt: skip
    assert result.returncode == 2 and "holds a 'cfpi' run" in result.stderr, result.stderr
