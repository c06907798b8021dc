"""Safe RL: costs through the engine, the safety envs, CVPO's E/M-steps, the PID
multiplier and safe planning. Learning checks are in tests/test_safe_learning.py (slow)."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import REPO, run_cli, small_overrides, train
from tensordict import TensorDict
from torch.distributions import MultivariateNormal, kl_divergence

from lit_rl.envs.make import make_env
from lit_rl.envs.safety.velocity import VELOCITY_TASKS, VelocityCost
from lit_rl.envs.snapshot import restore_env_state, snapshot_env_state
from lit_rl.nets.gaussian import CholeskyGaussianActor, gaussian_kl, gaussian_log_prob
from lit_rl.objectives.cvpo import (
    dual_value_and_grad,
    e_step_weights,
    per_step_threshold,
    solve_dual,
)
from lit_rl.objectives.lagrange import PIDLagrangian
from lit_rl.planning.planners import ARCPlanner, SafeARCPlanner

POINTGOAL = str(REPO / "recipes" / "cvpo_pointgoal.yaml")
NAVIGATION_IDS = [
    "lit_rl/SafePointGoal-v0",
    "lit_rl/SafeCarGoal-v0",
    "lit_rl/SafePointGoalSmall-v0",
]


def greedy_action(observation: np.ndarray, robot: str) -> np.ndarray:
    """Turn towards the goal, drive when facing it (drives through hazards)."""
    angle = np.arctan2(observation[4], observation[3])
    forward = 1.0 if abs(angle) < 0.5 else 0.0
    turn = float(np.clip(angle, -1, 1))
    if robot == "point":
        return np.array([forward, turn])
    return np.clip(np.array([forward - turn, forward + turn]), -1, 1)


# --------------------------------------------------------------------- environments
@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_navigation_cost_is_the_cost_of_the_observation(env_id):
    """What a planner computes from an observation is what the env charges, step by step,
    and a goal-seeking policy both reaches goals and enters hazards."""
    env = gym.make(env_id)
    robot = env.unwrapped.robot
    observation, info = env.reset(seed=3)
    assert info["cost"] == 0.0
    costs, goal_rewards = [], 0
    for _ in range(400):
        observation, reward, terminated, truncated, info = env.step(
            greedy_action(observation, robot)
        )
        from_obs = env.unwrapped.cost_from_observation(torch.as_tensor(observation))
        assert float(from_obs) == pytest.approx(info["cost"], abs=1e-9)
        costs.append(info["cost"])
        goal_rewards = info["goals_reached"]
        if terminated or truncated:
            break
    assert goal_rewards >= 1
    assert set(costs) <= {0.0, 1.0}


def test_fixed_layout_keeps_hazards_and_start_and_draws_new_goals():
    """`randomize_layout=False` (Safety Gym's flag): one layout from `layout_seed` for every
    episode, whatever the reset seed; goals stay random; the default still varies."""

    def layout(env, seed):
        env.reset(seed=seed)
        inner = env.unwrapped
        return inner.hazards.copy(), inner.data.qpos[:3].copy(), inner.goal.copy()

    fixed = gym.make("lit_rl/SafePointGoalSmall-v0", randomize_layout=False)
    (hazards_a, start_a, goal_a), (hazards_b, start_b, goal_b) = (
        layout(fixed, 1),
        layout(fixed, 2),
    )
    np.testing.assert_array_equal(hazards_a, hazards_b)
    np.testing.assert_array_equal(start_a, start_b)
    assert not np.allclose(goal_a, goal_b)
    other_seed = gym.make("lit_rl/SafePointGoalSmall-v0", randomize_layout=False, layout_seed=7)
    assert not np.allclose(layout(other_seed, 1)[0], hazards_a)
    random = gym.make("lit_rl/SafePointGoalSmall-v0")
    assert not np.allclose(layout(random, 1)[0], layout(random, 2)[0])


def test_penetration_cost_grows_towards_the_hazard_centre():
    env = gym.make("lit_rl/SafePointGoal-v0", cost_indicator=False).unwrapped
    env.reset(seed=0)
    hazard = env.hazards[0]
    costs = []
    for offset in (0.25, 0.15, 0.05):  # hazard radius 0.2
        env.data.qpos[:2] = hazard + [offset, 0.0]
        env.data.qvel[:] = 0
        _, _, _, _, info = env.step(np.zeros(2))
        costs.append(info["cost"])
    assert costs[0] == 0.0 and 0 < costs[1] < costs[2] <= 0.2


def test_velocity_cost_counts_steps_over_the_limit():
    class Scripted(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):
            return np.zeros(1), {}

        def step(self, action):
            return np.zeros(1), 0.0, False, False, {"x_velocity": float(action[0])}

    env = VelocityCost(Scripted(), velocity_limit=0.5)
    assert env.reset()[1]["cost"] == 0.0
    assert [env.step(np.array([v]))[4]["cost"] for v in (0.4, 0.6, -0.9)] == [0.0, 1.0, 0.0]
    assert set(VELOCITY_TASKS) == {
        "Hopper",
        "HalfCheetah",
        "Walker2d",
        "Ant",
        "Humanoid",
        "Swimmer",
    }
    hopper = gym.make("lit_rl/SafeHopperVelocity-v0")
    _, info = hopper.reset(seed=0)
    _, _, _, _, info = hopper.step(hopper.action_space.sample())
    assert info["cost"] == float(info["x_velocity"] > 0.7402)


def test_navigation_snapshot_continues_the_same_episode():
    env = gym.make("lit_rl/SafePointGoalSmall-v0")
    env.reset(seed=5)
    for _ in range(30):
        env.step(np.array([1.0, 0.3]))
    saved = snapshot_env_state(env)
    later = [env.step(np.array([0.5, -0.2]))[0] for _ in range(20)]
    other = gym.make("lit_rl/SafePointGoalSmall-v0")
    other.reset(seed=99)  # a different layout, overwritten by the snapshot
    restore_env_state(other, saved)
    again = [other.step(np.array([0.5, -0.2]))[0] for _ in range(20)]
    np.testing.assert_array_equal(np.stack(later), np.stack(again))


def test_torchrl_env_carries_costs_only_when_the_env_has_them():
    torch.manual_seed(0)  # TorchRL's random actions come from the torch RNG
    for seed in range(10):  # random actions meet a hazard in some of these episodes
        env = make_env("lit_rl/SafePointGoal-v0", seed=seed)
        rollout = env.rollout(1000, break_when_any_done=False)
        cost = rollout.get(("next", "cost"))
        assert cost.shape == (1000, 1)
        torch.testing.assert_close(rollout.get(("next", "episode_cost"))[-1, 0], cost.sum())
        if cost.sum() > 0:
            break
    assert cost.sum() > 0
    plain = make_env("Pendulum-v1", seed=1).rollout(3)
    assert ("next", "cost") not in plain.keys(include_nested=True)


# ------------------------------------------------------------------------------ CVPO
def test_per_step_threshold_matches_the_paper():
    assert per_step_threshold(10, 0.99, 400) == pytest.approx(2.455, abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dual_solver_finds_the_grid_minimum(seed):
    """(eta, lambda) from the solver match a brute-force grid minimum of the dual, and
    the weights are the softmax the solution defines."""
    gen = torch.Generator().manual_seed(seed)
    q_reward = torch.randn(64, 16, generator=gen) * 2 + 5
    q_cost = torch.rand(64, 16, generator=gen) * 4
    eps_kl, eps_cost = 0.1, float(q_cost.mean()) * 0.8  # a binding cost constraint
    eta, lam = solve_dual(q_reward, q_cost, eps_kl, eps_cost)
    qr, qc = q_reward.double().numpy(), q_cost.double().numpy()

    def dual(e, la):
        return dual_value_and_grad(np.array([e, la]), qr, qc, eps_kl, eps_cost)[0]

    def grid_minimum(etas, lams):
        return min((dual(e, la), e, la) for e in etas for la in lams)

    _, e0, l0 = grid_minimum(np.geomspace(1e-2, 1e2, 120), np.linspace(0, 6, 120))
    # refine around the coarse minimum (the dual is flat along a valley)
    best, best_eta, best_lam = grid_minimum(
        np.geomspace(e0 / 1.3, e0 * 1.3, 100), np.linspace(max(0, l0 - 0.1), l0 + 0.1, 100)
    )
    assert dual(eta, lam) <= best + 1e-9
    assert lam > 0  # the constraint binds
    assert eta == pytest.approx(best_eta, rel=0.01) and lam == pytest.approx(best_lam, abs=0.01)
    weights = e_step_weights(q_reward, q_cost, eta, lam)
    torch.testing.assert_close(weights, torch.softmax((q_reward - lam * q_cost) / eta, dim=1))
    # the E-step's solution satisfies its constraints (complementary slackness)
    expected_cost = float((weights.double() * q_cost.double()).sum(1).mean())
    assert expected_cost == pytest.approx(eps_cost, rel=1e-3)


def test_dual_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    qr = (torch.randn(32, 8, generator=gen) * 3).double().numpy()
    qc = torch.rand(32, 8, generator=gen).double().numpy()
    point = np.array([0.8, 0.4])
    _, grad = dual_value_and_grad(point, qr, qc, 0.1, 0.3)
    for i in range(2):
        h = np.eye(2)[i] * 1e-6
        up = dual_value_and_grad(point + h, qr, qc, 0.1, 0.3)[0]
        down = dual_value_and_grad(point - h, qr, qc, 0.1, 0.3)[0]
        assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5)


def test_gaussian_log_prob_and_decoupled_kl():
    actor = CholeskyGaussianActor(5, 3, (32, 32))
    obs = torch.randn(4, 5)
    mean, tril = actor.distribution_params(obs)
    actions = actor.sample_actions(obs, 7)
    reference = MultivariateNormal(mean, scale_tril=tril)
    torch.testing.assert_close(gaussian_log_prob(actions, mean, tril), reference.log_prob(actions))
    mean2, tril2 = actor.distribution_params(torch.randn(4, 5))
    kl_mean, kl_cov = gaussian_kl(mean, tril, mean2, tril2)
    full = kl_divergence(reference, MultivariateNormal(mean2, scale_tril=tril2))
    # the two parts: KL(p||q) = mean part (with q's covariance) + covariance part
    torch.testing.assert_close(kl_mean + kl_cov, full, atol=1e-5, rtol=1e-5)
    assert torch.all(kl_mean >= 0) and torch.all(kl_cov >= -1e-6)


def test_m_step_moves_the_mean_to_the_weighted_actions_within_its_trust_region():
    from lit_rl.nets.critics import EnsembleQCritic
    from lit_rl.objectives.cvpo import CVPOLoss

    torch.manual_seed(0)
    actor = CholeskyGaussianActor(3, 2, (32, 32))
    loss = CVPOLoss(actor, EnsembleQCritic(3, 2, (8,)), EnsembleQCritic(3, 2, (8,), 1), 1.0)
    obs = torch.randn(64, 3)
    actions = loss.target_actor.sample_actions(obs, 16).clamp(-1, 1)
    weights = torch.zeros(64, 16)
    best = actions[..., 0].argmax(0)  # the sample with the largest first coordinate
    weights[torch.arange(64), best] = 1.0
    before = actor.mode(obs)[:, 0].mean()
    optimizer = torch.optim.Adam(actor.parameters(), lr=1e-3)
    for _ in range(50):
        value, info = loss.m_step_loss(obs, actions, weights)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    after = actor.mode(obs)[:, 0].mean()
    assert after > before + 0.05
    assert float(loss.alpha_mean) > 0  # the mean's trust region became active


# ----------------------------------------------------------------------- multiplier
def test_pid_multiplier_rises_under_violation_and_falls_back_to_zero():
    pid = PIDLagrangian(cost_limit=10.0)
    values = [pid.update(30.0) for _ in range(50)]
    assert values[-1] > values[10] > values[0] > 0
    after = [pid.update(0.0) for _ in range(400)]
    assert after[-1] == 0.0
    pid2 = PIDLagrangian(cost_limit=10.0)
    assert max(pid2.update(5.0) for _ in range(50)) < 0.01  # never violated: stays ~0


# ------------------------------------------------------------------- safe planning
def _line_world():
    """1-D toy: x' = x + 0.1 a, reward x', cost 1 where x > 0.5."""

    def step(obs, action):
        nxt = obs + 0.1 * action
        return nxt, nxt[..., 0], torch.zeros(nxt.shape[:-1], dtype=torch.bool)

    def cost_fn(obs):
        return (obs[..., 0] > 0.5).float()

    return step, cost_fn


def test_safe_arc_declines_the_rewarding_unsafe_path():
    torch.manual_seed(0)
    step, cost_fn = _line_world()
    kwargs = dict(act_dim=1, horizon=4, num_samples=200, particles=1, iterations=4, kappa=20.0)
    plain = ARCPlanner(step, None, **kwargs)
    safe = SafeARCPlanner(step, None, cost_fn=cost_fn, **kwargs)
    x, x_safe = torch.tensor([0.4]), torch.tensor([0.4])
    for _ in range(10):
        x = x + 0.1 * plain(x)
        x_safe = x_safe + 0.1 * safe(x_safe)
    assert float(x) > 0.5  # ARC walks into the costly region for reward
    assert float(x_safe) <= 0.5 and float(x_safe) > 0.3  # safe ARC stops at its edge


def test_safe_arc_minimises_cost_when_nothing_is_feasible():
    torch.manual_seed(0)
    step, cost_fn = _line_world()
    safe = SafeARCPlanner(
        step, None, cost_fn=cost_fn, act_dim=1, horizon=4, num_samples=100, particles=1
    )
    x = torch.tensor([0.62])  # every short sequence stays (partly) in the costly region
    for _ in range(6):
        x = x + 0.1 * safe(x)
    assert float(x) < 0.55


def test_safe_arc_finds_a_way_out_when_its_sampling_has_collapsed_at_a_bound():
    """A warm-started plan at full speed (+1, an action bound) gets zero sampling
    variance from the released cap, so ARC's samples all repeat it; the uniform samples
    still offer the sequences that stop short of the costly region."""

    def run(uniform_samples: int) -> float:
        torch.manual_seed(0)
        step, cost_fn = _line_world()
        planner = SafeARCPlanner(
            step,
            None,
            cost_fn=cost_fn,
            act_dim=1,
            horizon=4,
            num_samples=50,
            particles=1,
            iterations=4,
            kappa=20.0,
            uniform_samples=uniform_samples,
        )
        x = torch.tensor([0.3])
        planner.mean = torch.ones(4, 1)  # the previous plan: full speed ahead
        for _ in range(8):
            x = x + 0.1 * planner(x)
        return float(x)

    assert run(uniform_samples=0) > 0.5  # collapsed: drives into the costly region
    assert 0.4 < run(uniform_samples=50) <= 0.5  # approaches its edge, stays out


def test_safe_arc_adds_uniform_samples_only_when_too_few_are_feasible():
    """Uniform sequences would pull a feasible plan's weighted mean towards the action
    box's centre (the robot crawled), so they join only when needed."""
    step, cost_fn = _line_world()
    planner = SafeARCPlanner(
        step, None, cost_fn=cost_fn, act_dim=1, horizon=4, particles=1, uniform_samples=30
    )
    safe_start, stuck_start = torch.tensor([0.0]), torch.tensor([0.45])
    full_speed = torch.ones(20, 4, 1)
    kept, _ = planner.weigh(safe_start, full_speed)
    assert kept.shape[0] == 20  # all 20 feasible: nothing added
    widened, logits = planner.weigh(stuck_start, full_speed)
    assert widened.shape[0] == 50 and logits.shape == (50,)
    torch.testing.assert_close(widened[:20], full_speed)


# ---------------------------------------------------------------------------- engine
def test_safe_runs_log_costs_and_store_them(tmp_path):
    overrides = small_overrides(
        tmp_path,
        "algo.name=sac_lagrangian",
        "max_env_steps=400",
        "eval.every_env_steps=200",
        "env.max_episode_steps=100",
    )
    _, module, run_dir = train(overrides, recipe=str(REPO / "recipes" / "sac_lag_pointgoal.yaml"))
    storage = module.replay_buffer.storage[: len(module.replay_buffer)]
    assert ("next", "cost") in storage.keys(include_nested=True)
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    columns = set(rows[0])
    assert {"eval/cost_mean", "eval/cost_std", "train/episode_cost"} <= columns
    assert any(row.get("train/lagrange_multiplier") for row in rows)
    assert module.loss_module.multiplier.updates == 4  # one update per finished episode


def test_env_kwargs_reach_every_env_of_a_run(tmp_path):
    """`env.kwargs` go to gymnasium.make for the training and evaluation envs and
    survive in the checkpoint: with `cost_indicator: false` the goal task's cost is the
    hazard penetration (fractions), not steps in hazards (0 or 1)."""
    overrides = small_overrides(
        tmp_path,
        "algo.name=sac_lagrangian",
        "max_env_steps=1000",
        "eval.every_env_steps=1000",
        "env.max_episode_steps=200",
        "env.kwargs={cost_indicator: false}",
    )
    _, module, _ = train(overrides, recipe=str(REPO / "recipes" / "sac_lag_pointgoal.yaml"))
    costs = module.replay_buffer.storage[: len(module.replay_buffer)]["next", "cost"]
    inside = costs[costs > 0]
    assert inside.numel() > 0 and bool((inside < 0.25 + 1e-6).all())  # r = 0.25
    assert bool((inside < 1).any())  # penetration, not an indicator
    # merged with the recipe's own options
    assert module.hparams.env_kwargs == {"randomize_layout": False, "cost_indicator": False}
    assert not module.make_env(7).gym_env.unwrapped.cost_indicator  # the evaluation env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [POINTGOAL, "env.id=Pendulum-v1", "env.kwargs=null"],
            "cvpo learns from costs, but env 'Pendulum-v1' reports no info['cost']",
        ),
        ([POINTGOAL, "cost_limit=null"], "cvpo needs the recipe's top-level cost_limit"),
        ([POINTGOAL, "cost_limit=-1"], "'cost_limit' must be >= 0"),
        (
            [POINTGOAL, "env.kwargs={colour: red}"],
            "do not fit env 'lit_rl/SafePointGoalSmall-v0': SafeGoalEnv.__init__() got an "
            "unexpected keyword argument 'colour'",
        ),
        (
            [POINTGOAL, "env.kwargs={randomize_layout: flase}"],
            "randomize_layout must be true or false, got 'flase'",
        ),
        (
            [
                str(REPO / "recipes" / "safe_loop_pointgoal.yaml"),
                "env.id=lit_rl/SafeHopperVelocity-v0",
                "env.kwargs=null",
            ],
            "env 'lit_rl/SafeHopperVelocity-v0' has no cost_from_observation",
        ),
    ],
)
def test_bad_safe_configs_fail_in_one_line(args, message, tmp_path):
    result = run_cli("run", *args, f"run_dir={tmp_path / 'run'}", "progress_bar=false")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_safe_arc_keeps_the_mean_only_when_it_is_feasible():
    """Two feasible detours around a hazard average to a plan through it: the planner
    keeps (and in evaluation executes) the best feasible candidate instead."""

    def step(obs, action):
        nxt = obs + 0.1 * action
        return nxt, nxt[..., 1], torch.zeros(nxt.shape[:-1], dtype=torch.bool)

    def cost_fn(obs):  # a hazard straight ahead of the start (0, 0)
        return ((obs[..., 0].abs() < 0.05) & (obs[..., 1] > 0.05)).float()

    planner = SafeARCPlanner(step, None, cost_fn=cost_fn, act_dim=2, horizon=3, particles=1)
    observation = torch.zeros(2)
    left = torch.tensor([[-1.0, 1.0]] * 3)
    right = torch.tensor([[1.0, 1.0]] * 3)
    candidates = torch.stack([left, right])
    mean = candidates.mean(0)  # straight ahead, through the hazard
    weights = torch.tensor([0.4, 0.6])
    torch.testing.assert_close(planner.settle(observation, mean, candidates, weights), right)
    feasible_mean = torch.tensor([[-1.0, 0.5]] * 3)
    assert planner.settle(observation, feasible_mean, candidates, weights) is feasible_mean


@pytest.mark.parametrize("module", ["sac_lagrangian", "cvpo"])
def test_cost_targets_are_pessimistic_and_non_negative(module):
    """The cost target uses the larger of twin target cost critics and never goes
    below zero (costs are non-negative)."""
    from tensordict import TensorDict

    from lit_rl.nets.actors import TanhGaussianActor
    from lit_rl.nets.critics import EnsembleQCritic
    from lit_rl.objectives.cvpo import CVPOLoss
    from lit_rl.objectives.sac_lagrangian import SACLagrangianLoss

    torch.manual_seed(0)
    critic, cost_critic = EnsembleQCritic(3, 2, (16,)), EnsembleQCritic(3, 2, (16,), 2)
    if module == "cvpo":
        loss = CVPOLoss(CholeskyGaussianActor(3, 2, (16,)), critic, cost_critic, 1.0, gamma=0.9)
    else:
        loss = SACLagrangianLoss(
            TanhGaussianActor(3, 2, (16,)), critic, cost_critic, PIDLagrangian(1.0), gamma=0.9
        )
    with torch.no_grad():  # target cost critics: member 0 says -5, member 1 says 2
        layers = list(loss.target_cost_critic.layers)
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()
        layers[-1].bias[0].fill_(-5.0)
        layers[-1].bias[1].fill_(2.0)
        for layer in list(loss.cost_critic.layers):
            layer.weight.zero_()
            layer.bias.zero_()
    batch = 8
    td = TensorDict(
        {
            "observation": torch.randn(batch, 3),
            "action": torch.rand(batch, 2) * 2 - 1,
            ("next", "observation"): torch.randn(batch, 3),
            ("next", "reward"): torch.zeros(batch, 1),
            ("next", "terminated"): torch.zeros(batch, 1, dtype=torch.bool),
            ("next", "cost"): torch.full((batch, 1), 0.5),
        },
        [batch],
    )
    out = loss(td)
    # current cost critics output 0, so the loss is 0.5 * members * target^2
    expected_target = 0.5 + 0.9 * 2.0  # the max member, not the mean (-1.5) or member 0
    torch.testing.assert_close(out["loss_cost_qvalue"], torch.tensor(expected_target**2))
    with torch.no_grad():
        loss.target_cost_critic.layers[-1].bias.fill_(-5.0)
    assert float(loss(td)["loss_cost_qvalue"]) == 0.0  # 0.5 - 4.5 clamps to 0


@pytest.mark.parametrize("recipe", ["cvpo_pointgoal", "sac_lag_pointgoal"])
def test_safe_resume_equals_uninterrupted_run(recipe, tmp_path):
    """Multipliers, the dual's warm start, episode costs and the goal task's layout all
    continue across a resume (bit-identical weights and replay)."""
    path = str(REPO / "recipes" / f"{recipe}.yaml")
    total, half = 400, 250  # half is mid-episode (50-step episodes), past warm-up

    def overrides(folder, steps):
        return small_overrides(tmp_path / folder, f"max_env_steps={steps}")

    _, straight, _ = train(overrides("straight", total), recipe=path)
    _, _, half_dir = train(overrides("halves", half), recipe=path)
    _, resumed, _ = train(
        overrides("halves", total), recipe=path, resume=str(half_dir / "last.ckpt")
    )
    rows = lambda m: m.replay_buffer.storage[: len(m.replay_buffer)]  # noqa: E731
    assert (rows(resumed) == rows(straight)).all()
    assert resumed.last_episode_cost == straight.last_episode_cost
    for (name, p_resumed), p_straight in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p_resumed, p_straight, rtol=0, atol=0, msg=name)


def cost_batch(obs_dim: int, act_dim: int, observation: torch.Tensor) -> TensorDict:
    """A random batch of transitions with costs, at the given observations."""
    n = observation.shape[0]
    return TensorDict(
        {
            "observation": observation,
            "action": torch.rand(n, act_dim) * 2 - 1,
            "next": {
                "observation": torch.randn(n, obs_dim),
                "reward": torch.randn(n, 1),
                "cost": torch.rand(n, 1),
                "terminated": torch.zeros(n, 1, dtype=torch.bool),
                "done": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


def test_cvpo_threshold_uses_the_cost_discount_and_the_time_limit(tmp_path):
    from lit_rl.config import load_recipe
    from lit_rl.run import build_module

    cfg = load_recipe(POINTGOAL, ["algo.cost_gamma=0.9"])
    module = build_module(cfg, tmp_path)
    expected = per_step_threshold(5, 0.9, 200)  # SafePointGoalSmall-v0: 200 steps
    assert module.cost_threshold() == pytest.approx(expected)
    assert module.loss_module.cost_threshold == pytest.approx(expected)
    assert module.loss_module.cost_gamma == 0.9 and module.loss_module.gamma == 0.99


def test_cvpo_cost_limit_decays_to_the_recipe_limit(tmp_path):
    """The released code's cost-limit decay: eps_c comes from a limit that falls linearly
    from cost_limit_start to cost_limit over cost_decay_updates, then stays."""
    from lit_rl.config import load_recipe
    from lit_rl.run import build_module

    overrides = [
        *("algo.cost_gamma=0.9", "algo.cost_limit_start=25", "algo.cost_decay_updates=1000"),
        "algo.recent_states=null",  # states from the batch: the replay buffer is empty here
    ]
    module = build_module(load_recipe(POINTGOAL, overrides), tmp_path)
    for updates, limit in ((0, 25.0), (500, 15.0), (1000, 5.0), (10**6, 5.0)):
        assert module.schedules(updates)["cost_limit"] == pytest.approx(limit)
        assert module.cost_threshold(updates) == pytest.approx(per_step_threshold(limit, 0.9, 200))
    # the loss computes each update with that update's threshold
    hp, n = module.hparams, 8
    batch = cost_batch(hp.obs_dim, hp.act_dim, torch.randn(n, hp.obs_dim))
    assert module.loss_module.cost_threshold == pytest.approx(per_step_threshold(25, 0.9, 200))
    module.updates = 500
    module.compute_losses(batch)
    assert module.loss_module.cost_threshold == pytest.approx(per_step_threshold(15.0, 0.9, 200))
    plain = build_module(load_recipe(POINTGOAL, ["algo.cost_gamma=0.9"]), tmp_path / "plain")
    assert plain.schedules(0)["cost_limit"] == plain.schedules(10**6)["cost_limit"] == 5.0


def test_sample_recent_draws_only_the_newest_rows_also_after_wrapping():
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from lit_rl.data.replay import sample_recent

    def rows(written: int, capacity: int) -> ReplayBuffer:
        buffer = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=4)
        buffer.extend(TensorDict({"observation": torch.arange(float(written))[:, None]}, [written]))
        return buffer

    torch.manual_seed(0)
    drawn = sample_recent(rows(20, 100), 5, 400)["observation"].flatten().unique()
    assert drawn.tolist() == [15.0, 16.0, 17.0, 18.0, 19.0]
    wrapped = sample_recent(rows(13, 10), 3, 300)["observation"].flatten().unique()
    assert wrapped.tolist() == [10.0, 11.0, 12.0]  # rows 10-12 overwrote slots 0-2
    everything = sample_recent(rows(6, 10), 50, 400)["observation"].flatten().unique()
    assert everything.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_cvpo_recent_states_feed_the_e_and_m_step(tmp_path, monkeypatch):
    """`algo.recent_states`: the E-step (and the M-step) see states drawn from the newest
    transitions; the critics still learn from the uniform batch."""
    from lit_rl.config import load_recipe
    from lit_rl.data.replay import make_replay_buffer
    from lit_rl.run import build_module

    module = build_module(load_recipe(POINTGOAL, ["algo.recent_states=5"]), tmp_path)
    hp, n = module.hparams, 16
    stored = 50
    module.replay_buffer = make_replay_buffer(1000, n)
    module.replay_buffer.extend(
        TensorDict(
            {
                "observation": torch.arange(float(stored))[:, None].expand(stored, hp.obs_dim),
                "action": torch.zeros(stored, hp.act_dim),
            },
            [stored],
        )
    )
    batch = cost_batch(hp.obs_dim, hp.act_dim, torch.full((n, hp.obs_dim), -7.0))
    seen = {}
    loss = module.loss_module
    e_step, critic_losses = loss.e_step, loss.critic_losses

    def recording_e_step(obs):
        seen["e_step"] = obs
        return e_step(obs)

    def recording_critic_losses(td):
        seen["critics"] = td.get("observation")
        return critic_losses(td)

    monkeypatch.setattr(loss, "e_step", recording_e_step)
    monkeypatch.setattr(loss, "critic_losses", recording_critic_losses)
    module.compute_losses(batch)
    assert set(seen["e_step"][:, 0].tolist()) <= {45.0, 46.0, 47.0, 48.0, 49.0}
    assert (seen["critics"] == -7.0).all()
