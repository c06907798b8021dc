"""Planners with known dynamics: ARC and CEM find the optimal control of a point mass."""

from __future__ import annotations

import pytest
import torch

from lit_rl.planning.known_models import PointMass, pendulum_step
from lit_rl.planning.planners import ARCPlanner, CEMPlanner, prior_sequences, score_sequences

GAMMA = 0.99


@pytest.fixture(scope="module")
def point_mass():
    system = PointMass()
    _, gain = system.riccati(GAMMA)
    generator = torch.Generator().manual_seed(0)
    states = torch.rand(40, 2, generator=generator) * 0.4 - 0.2
    optimal = -(states @ gain.T).squeeze(-1)  # LQR first action, inside [-1, 1] here
    assert optimal.abs().max() < 1.0
    return system, system.optimal_q(GAMMA), states, optimal


def plan_all(planner_cls, system, q_value, states, iterations, **kwargs):
    torch.manual_seed(1)
    actions, scores = [], []
    for state in states:
        planner = planner_cls(
            system,
            q_value,
            1,
            horizon=3,
            num_samples=100,
            particles=1,
            iterations=iterations,
            gamma=GAMMA,
            **kwargs,
        )
        actions.append(planner(state))
        scores.append(score_sequences(system, q_value, state, planner.mean[None], 1, GAMMA))
    return torch.stack(actions).squeeze(-1), torch.stack(scores).mean()


@pytest.mark.parametrize(
    ("planner_cls", "kwargs", "tolerance"),
    [(CEMPlanner, {}, 0.01), (ARCPlanner, {"kappa": 100.0}, 0.05)],
)
def test_planner_finds_the_lqr_action(point_mass, planner_cls, kwargs, tolerance):
    system, q_value, states, optimal = point_mass
    actions, _ = plan_all(planner_cls, system, q_value, states, 8, **kwargs)
    # optimal actions spread over about [-0.9, 0.9]; the planners land within `tolerance`
    assert (actions - optimal).abs().mean() < tolerance


@pytest.mark.parametrize(
    ("planner_cls", "kwargs"), [(CEMPlanner, {}), (ARCPlanner, {"kappa": 100.0})]
)
def test_more_iterations_never_score_worse_on_average(point_mass, planner_cls, kwargs):
    system, q_value, states, _ = point_mass
    scores = [plan_all(planner_cls, system, q_value, states, k, **kwargs)[1] for k in (1, 2, 3, 5)]
    for fewer, more in zip(scores, scores[1:], strict=False):
        assert more >= fewer - 1e-3 * abs(fewer)
    assert scores[-1] > scores[0]


def test_scores_are_discounted_rewards_plus_terminal_value(point_mass):
    system, q_value, _, _ = point_mass
    state = torch.tensor([0.1, -0.2])
    actions = torch.tensor([[[0.3], [-0.1], [0.2]]])
    s0, a = state[None], actions[0]
    s1, r0, _ = system(s0, a[:1])
    s2, r1, _ = system(s1, a[1:2])
    expected = r0 + GAMMA * r1 + GAMMA**2 * q_value(s2, a[2:3])
    got = score_sequences(system, q_value, state, actions, particles=3, gamma=GAMMA)
    assert got.shape == (1, 3)
    assert torch.allclose(got, expected.expand(1, 3))


def test_termination_zeroes_what_follows():
    def falls(obs, action):
        return obs + 1, torch.ones(obs.shape[0]), torch.ones(obs.shape[0], dtype=torch.bool)

    got = score_sequences(
        falls,
        lambda o, a: torch.full((o.shape[0],), 100.0),
        torch.zeros(2),
        torch.zeros(4, 3, 1),
        particles=2,
        gamma=1.0,
    )
    assert torch.equal(got, torch.ones(4, 2))  # first reward counts, later ones and Q do not


def test_arc_candidates_include_the_prior_rollouts():
    system = PointMass()
    prior = prior_sequences(system, lambda o: -0.5 * o[:, :1], torch.tensor([0.2, 0.0]), 5, 3)
    assert prior.shape == (5, 3, 1)
    assert torch.allclose(prior[:, 0], torch.full((5, 1), -0.1))


def test_arc_with_a_perfect_prior_and_no_sampling_spread_executes_it(point_mass):
    """ARC keeps planner actions near the actor: with a dominant prior it returns it."""
    system, q_value, states, optimal = point_mass
    _, gain = system.riccati(GAMMA)
    lqr = lambda obs: (-(obs @ gain.T)).clamp(-1, 1)  # noqa: E731
    planner = ARCPlanner(
        system,
        q_value,
        1,
        horizon=3,
        num_samples=20,
        particles=1,
        iterations=3,
        gamma=GAMMA,
        prior=lqr,
        num_prior=5,
        kappa=1e4,
    )
    actions = torch.stack([planner(s) for s in states[:10]]).squeeze(-1)
    assert (actions - optimal[:10]).abs().max() < 0.02


def test_planner_refuses_a_batch_of_observations():
    planner = CEMPlanner(PointMass(), None, 1, horizon=2, num_samples=10, num_elites=2)
    with pytest.raises(ValueError, match="one env at a time"):
        planner(torch.zeros(3, 2))


def test_known_pendulum_model_matches_gymnasium():
    import gymnasium as gym
    import numpy as np

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(100):
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        predicted, reward, _ = pendulum_step(torch.tensor(obs)[None], torch.tensor(action)[None])
        obs, true_reward, *_ = env.step(2 * action)
        assert torch.allclose(predicted[0], torch.tensor(obs), atol=1e-4)
        assert abs(float(reward) - true_reward) < 1e-4


class TwoWayEnsemble:
    """A stochastic ensemble of two members: member 0 moves s -> s + 1, member 1 moves
    s -> s - 1, reward (s')^2. A rollout that stays on one member earns 1 + 4 = 5 over
    two steps; one that switches members halfway earns 1 + 0 = 1."""

    num_members = 2

    def members_step(self, obs, action):
        direction = torch.tensor([1.0, -1.0]).view(2, 1, 1)
        next_obs = obs + direction
        reward = next_obs.squeeze(-1) ** 2
        return next_obs, reward, torch.zeros_like(reward, dtype=torch.bool)

    def random_member_step(self, obs, action):
        """What a per-step random member would do (the behaviour this test rules out)."""
        direction = torch.where(torch.rand(obs.shape[0], 1) < 0.5, 1.0, -1.0)
        next_obs = obs + direction
        reward = next_obs.squeeze(-1) ** 2
        return next_obs, reward, torch.zeros_like(reward, dtype=torch.bool)


def test_each_rollout_stays_on_one_ensemble_member():
    model = TwoWayEnsemble()
    actions = torch.zeros(6, 3, 1)
    kwargs = dict(particles=4, gamma=1.0, num_members=2)
    returns = score_sequences(
        model.random_member_step,
        None,
        torch.zeros(1),
        actions,
        members_step=model.members_step,
        **kwargs,
    )
    assert returns.shape == (6, 8)  # every sequence: 2 members x 4 particles
    assert torch.equal(returns, torch.full((6, 8), 5.0))
    torch.manual_seed(0)
    mixed = score_sequences(model.random_member_step, None, torch.zeros(1), actions, 4, 1.0)
    assert (mixed == 1.0).any()  # per-step members: the test above would see these


def test_arc_scores_average_every_member_and_particle():
    """A planner on the two-member model scores each sequence by all 2 x 3 rollouts."""
    model = TwoWayEnsemble()
    planner = ARCPlanner(
        model.random_member_step,
        None,
        1,
        horizon=3,
        num_samples=7,
        particles=3,
        iterations=1,
        gamma=1.0,
        members_step=model.members_step,
        num_members=2,
    )
    scores = planner.score(torch.zeros(1), torch.zeros(7, 3, 1))
    assert torch.equal(scores, torch.full((7,), 5.0))


def test_sampling_is_a_truncated_normal_inside_the_bounds():
    """Noise truncated to 2 std (no mass piled at the cut, std 0.880 not 0.939 of a
    clamped normal), variance capped by the distance to the bounds (nothing clipped)."""
    torch.manual_seed(0)
    planner = CEMPlanner(PointMass(), None, 1, horizon=2, num_samples=200_000, num_elites=2)
    centre = torch.zeros(2, 1)
    samples = planner.sample(centre, torch.full((2, 1), 0.25))
    z = samples / 0.5
    assert z.abs().max() <= 2.0
    assert (z.abs() > 1.999).float().mean() < 1e-3  # a clamped normal puts 4.6% here
    assert z.std().item() == pytest.approx(0.8796, abs=0.005)
    near_bound = torch.full((2, 1), 0.9)
    samples = planner.sample(near_bound, torch.full((2, 1), 0.25))
    assert samples.max() < 1.0 and (samples == 1.0).sum() == 0  # no clipping needed
    assert samples.std().item() == pytest.approx(0.05 * 0.8796, rel=0.02)  # sqrt(0.1^2 / 4)


def test_warm_start_repeats_the_last_planned_action():
    planner = CEMPlanner(PointMass(), None, 1, horizon=3, num_samples=10, num_elites=2)
    planner.mean = torch.tensor([[0.1], [0.2], [0.3]])
    assert torch.equal(planner.initial_mean(torch.zeros(2)), torch.tensor([[0.2], [0.3], [0.3]]))
    planner.reset()
    assert torch.equal(planner.initial_mean(torch.zeros(2)), torch.zeros(3, 1))
