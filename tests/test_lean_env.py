"""The lean env path (`lit_rl.envs.lean.GymnasiumEnv`): one TorchRL env class that writes
every key the old GymWrapper + transforms stack wrote, steps exactly as Gymnasium does,
and puts several envs behind a Gymnasium vector env (sync or async) with TorchRL's
partial resets and checkpointable env state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs.utils import check_env_specs

import lit_rl  # noqa: F401  (registers the safety envs)
from lit_rl.envs import make_env
from lit_rl.envs.make import make_gym_env

SAFE = "lit_rl/SafePointGoalSmall-v0"


@pytest.mark.parametrize(
    ("env_id", "seed"),
    [("Pendulum-v1", 0), ("Hopper-v5", [0, 1]), (SAFE, 0), (SAFE, [3, 4, 5])],
)
def test_specs_match_what_the_env_writes(env_id, seed):
    env = make_env(env_id, seed)
    check_env_specs(env)  # TorchRL's own check: every key and shape of reset/step
    keys = set(env.rollout(3)["next"].keys())
    assert {"observation", "reward", "done", "terminated", "truncated"} <= keys
    assert {"step_count", "episode_reward", "is_init"} <= keys
    assert ({"cost", "episode_cost"} <= keys) == (env_id == SAFE)
    env.close()


def test_steps_exactly_as_gymnasium_with_running_counters():
    env = make_env("Hopper-v5", seed=7, max_episode_steps=50)
    reference = make_gym_env("Hopper-v5", max_episode_steps=50)
    expected_obs, _ = reference.reset(seed=7)
    actions = torch.rand(60, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    td = env.reset()
    assert bool(td["is_init"]) and int(td["step_count"]) == 0
    np.testing.assert_array_equal(td["observation"].numpy(), expected_obs.astype(np.float32))
    episode_return = 0.0
    for t, action in enumerate(actions):
        td["action"] = action
        td = env.step(td)
        obs, reward, terminated, truncated, _ = reference.step(action.numpy())
        episode_return += np.float32(reward)
        nxt = td["next"]
        np.testing.assert_array_equal(nxt["observation"].numpy(), obs.astype(np.float32))
        assert float(nxt["reward"]) == pytest.approx(reward)
        assert bool(nxt["terminated"]) == terminated and bool(nxt["truncated"]) == truncated
        assert bool(nxt["done"]) == (terminated or truncated)
        assert int(nxt["step_count"]) == t + 1 and not bool(nxt["is_init"])
        assert float(nxt["episode_reward"]) == pytest.approx(episode_return, rel=1e-5)
        if terminated or truncated:
            break
        td = nxt.clone()
    assert terminated or truncated, "Hopper under random actions ends within 50 steps"


def test_partial_reset_resets_only_the_envs_asked():
    env = make_env("Pendulum-v1", [0, 1, 2])
    td = env.reset()
    for _ in range(4):
        td["action"] = torch.zeros(3, 1)
        td = env.step(td)["next"].clone()
    before = td["observation"].clone()
    td["_reset"] = torch.tensor([[False], [True], [False]])
    after = env.reset(td)
    assert after["step_count"].view(-1).tolist() == [4, 0, 4]
    assert after["is_init"].view(-1).tolist() == [False, True, False]
    assert after["episode_reward"][1].item() == 0.0 and after["episode_reward"][0].item() < 0
    assert torch.equal(after["observation"][[0, 2]], before[[0, 2]])
    assert not torch.equal(after["observation"][1], before[1])
    # the reset env really restarted: stepping continues from the new observation
    after["action"] = torch.zeros(3, 1)
    stepped = env.step(after)["next"]
    assert stepped["step_count"].view(-1).tolist() == [5, 1, 5]


def test_each_vector_env_has_its_own_seed():
    env = make_env("Pendulum-v1", [5, 9])
    first = env.reset()["observation"]
    for i, seed in enumerate((5, 9)):
        assert torch.equal(first[i], make_env("Pendulum-v1", seed).reset()["observation"])


def test_vector_env_reports_each_envs_cost():
    env = make_env(SAFE, [0, 1])
    reference = [make_gym_env(SAFE) for _ in range(2)]
    for ref, seed in zip(reference, (0, 1), strict=True):
        ref.reset(seed=seed)
    td = env.reset()
    totals = np.zeros(2)
    for t in range(200):  # drive one way, then back: env 1 crosses a hazard
        td["action"] = torch.tensor([[1.0, 0.3]]).expand(2, 2) if t < 100 else -torch.ones(2, 2)
        nxt = env.step(td)["next"]
        steps = zip(reference, td["action"], strict=True)
        costs = [ref.step(action.numpy())[4]["cost"] for ref, action in steps]
        totals += costs
        assert nxt["cost"].view(-1).tolist() == pytest.approx(costs)
        assert nxt["episode_cost"].view(-1).tolist() == pytest.approx(list(totals))
        td = nxt.clone()
    assert totals[1] > 0, "the test must see some cost"


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_env_states_round_trip_across_vector_kinds(vectorization):
    env = make_env("Hopper-v5", [0, 1], vectorization=vectorization)
    kind = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
    assert isinstance(env.gym_env, kind)
    td = env.reset()
    actions = [torch.full((2, 3), 0.1 * k) for k in range(6)]
    for action in actions[:3]:
        td["action"] = action
        td = env.step(td)["next"].clone()
    states = env.env_states()
    carrier = td.clone()

    def continue_from(td):
        observations = []
        for action in actions[3:]:
            td["action"] = action
            td = env.step(td)["next"].clone()
            observations.append(td["observation"])
        return torch.stack(observations)

    first = continue_from(td)
    env.load_env_states(states)
    assert torch.equal(continue_from(carrier), first)
    env.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_collector_resets_only_the_envs_that_finished(vectorization):
    env = make_env("Hopper-v5", [0, 1, 2], vectorization=vectorization, max_episode_steps=20)
    collector = Collector(
        env, None, frames_per_batch=90, total_frames=90, storing_device=None, track_traj_ids=False
    )
    (batch,) = list(collector)  # [3 envs, 30 steps]
    collector.shutdown()
    assert batch.batch_size == (3, 30)
    done = batch["next", "done"].squeeze(-1)
    starts = batch["is_init"].squeeze(-1)
    assert int(done.sum()) >= 3  # every env ended at least once (time limit 20)
    assert int(batch["next", "step_count"].max()) <= 20
    # an env restarts exactly after its own episode ended, never because another did
    assert torch.equal(starts[:, 1:], done[:, :-1])
    counts = batch["step_count"].squeeze(-1)
    assert torch.equal(counts[:, 1:][~starts[:, 1:]], counts[:, :-1][~starts[:, 1:]] + 1)
