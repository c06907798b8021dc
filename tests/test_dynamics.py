"""The dynamics ensemble learns Pendulum; termination rules match Gymnasium's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lit_rl.envs.termination import termination_fn
from lit_rl.nets.dynamics import EnsembleDynamics
from lit_rl.objectives.dynamics import fit_dynamics, gaussian_nll


def random_transitions(env_id: str, steps: int, seed: int = 0):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action * env.action_space.high)
        rows.append((obs, action, reward, next_obs, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    return [
        torch.tensor(np.array(column), dtype=torch.float32) for column in zip(*rows, strict=True)
    ]


def test_ensemble_beats_predict_no_change_on_pendulum():
    torch.manual_seed(0)
    obs, action, reward, next_obs, _ = random_transitions("Pendulum-v1", 2500)
    train, test = slice(0, 2000), slice(2000, None)
    model = EnsembleDynamics(3, 1, (128, 128, 128), num_members=5, num_elites=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    report = fit_dynamics(
        model, optimizer, obs[train], action[train], reward[train], next_obs[train], max_epochs=30
    )
    assert report.epochs >= 5 and torch.isfinite(report.holdout_mse).all()
    with torch.no_grad():
        predicted, predicted_reward = model.sample_step(obs[test], action[test], deterministic=True)
    model_error = (predicted - next_obs[test]).pow(2).mean()
    no_change_error = (obs[test] - next_obs[test]).pow(2).mean()
    reward_error = (predicted_reward - reward[test]).pow(2).mean()
    # measured: state MSE ~1e-3 against ~9e-2 for "no change"; reward MSE ~0.4 against a
    # reward variance of ~13.6
    assert model_error < 0.05 * no_change_error
    assert reward_error < 0.1 * reward[test].var()
    # the elites are the members with the lowest hold-out error
    assert set(model.elites.tolist()) == set(torch.argsort(report.holdout_mse)[:3].tolist())


def test_one_batched_forward_serves_every_member():
    model = EnsembleDynamics(4, 2, (16, 16), num_members=3, num_elites=2)
    obs, action = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    mean, log_var = model(obs, action)
    assert mean.shape == log_var.shape == (3, 5, 5)
    for member in range(3):
        alone, _ = model(
            obs[member : member + 1], action[member : member + 1], members=torch.tensor([member])
        )
        assert torch.allclose(alone[0], mean[member], atol=1e-6)
    assert (log_var <= model.max_log_var + 1e-6).all()
    assert (log_var >= model.min_log_var - 1e-6).all()


def test_sample_step_routes_rows_through_elites_only():
    model = EnsembleDynamics(2, 1, (8,), num_members=4, num_elites=2)
    model.elites.copy_(torch.tensor([1, 3]))
    obs, action = torch.randn(7, 2), torch.randn(7, 1)
    with torch.no_grad():
        next_obs, reward = model.sample_step(obs, action, deterministic=True)
        mean, _ = model(obs, action)
    predictions = torch.cat([mean[..., :1], obs + mean[..., 1:]], dim=-1)  # [4, 7, 3]
    got = torch.cat([reward[:, None], next_obs], dim=-1)
    for row in range(7):
        matches = [torch.allclose(got[row], predictions[m, row], atol=1e-5) for m in range(4)]
        assert matches[1] or matches[3]
        assert not (matches[0] or matches[2])


def test_gaussian_nll_is_the_formula():
    mean, log_var, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    direct = sum(
        (((mean[m] - target[m]) ** 2) / log_var[m].exp() + log_var[m]).mean() for m in range(2)
    )
    assert torch.allclose(gaussian_nll(mean, log_var, target), direct)


def test_too_few_transitions_is_a_clear_error():
    model = EnsembleDynamics(2, 1, (8,), num_members=2, num_elites=1)
    with pytest.raises(ValueError, match="more transitions"):
        fit_dynamics(
            model,
            torch.optim.Adam(model.parameters()),
            torch.randn(2, 2),
            torch.randn(2, 1),
            torch.randn(2),
            torch.randn(2, 2),
        )


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
def test_termination_rule_matches_gymnasium(env_id):
    obs, _, _, next_obs, terminated = random_transitions(env_id, 1500)
    predicted = termination_fn(env_id)(next_obs)
    assert torch.equal(predicted, terminated.bool())
    assert terminated.any() or env_id == "Ant-v5"  # random actions topple all but the ant


def test_tasks_without_a_rule_never_terminate():
    assert not termination_fn("HalfCheetah-v5")(torch.randn(10, 17)).any()
