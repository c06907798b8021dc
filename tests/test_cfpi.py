"""CFPI's operators against numerical solutions of the problems they solve in closed form,
and its critic's SARSA target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from tensordict import TensorDict

from lit_rl.nets.behavior import Mixture, component_log_prob
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.cfpi import (
    delta_from_log_tau,
    gaussian_step,
    improve,
    jensen_ellipsoid,
    lse_candidates,
    lse_slack,
)
from lit_rl.objectives.sarsa import CFPILoss, lower_bound


def linear_q(g: torch.Tensor):
    """`Q(u) = g . u` in pre-tanh space, for one state: `u [1, N, A] -> [1, N]`."""
    return lambda u: (u * g).sum(-1)


@pytest.mark.parametrize("seed", range(5))
def test_single_gaussian_closed_form_equals_the_constrained_optimum(seed):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 6))
    mu, std, g = rng.normal(size=dim), rng.uniform(0.1, 1.5, dim), rng.normal(size=dim)
    log_tau = float(rng.uniform(0.1, 2.0))
    closed = gaussian_step(
        torch.tensor(mu), torch.tensor(std), torch.tensor(g), torch.tensor(math.sqrt(2 * log_tau))
    ).numpy()
    # max g.u  s.t.  sum((u - mu)^2 / std^2) <= 2 log tau, solved numerically
    numeric = minimize(
        lambda u: -g @ u,
        mu,
        jac=lambda u: -g,
        constraints=[
            {"type": "ineq", "fun": lambda u: 2 * log_tau - (((u - mu) / std) ** 2).sum()}
        ],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    ).x
    assert np.allclose(closed, numeric, atol=1e-4)
    # and the full operator with one component is that same point
    mixture = Mixture(
        torch.ones(1, 1, dtype=torch.float64),
        torch.tensor(mu).view(1, 1, dim),
        torch.tensor(std).view(1, 1, dim),
    )
    for operator in ("best", "lse", "jensen"):
        u = improve(mixture, linear_q(torch.tensor(g)), log_tau, operator)
        assert np.allclose(u[0].numpy(), closed, atol=1e-6), operator


def test_log_tau_zero_returns_the_behaviour_mean():
    mixture = Mixture(torch.ones(4, 1), torch.randn(4, 1, 3), torch.rand(4, 1, 3) + 0.1)
    for operator in ("best", "lse", "jensen"):
        u = improve(mixture, lambda u: u.sum(-1) * 3.0, log_tau=0.0, operator=operator)
        assert torch.allclose(u, mixture.means[:, 0], atol=1e-6), operator


def random_mixture(rng, k=3, dim=2, spread=1.5):
    weights = rng.dirichlet(np.ones(k))
    weights = np.maximum(weights, 0.06)
    weights = weights / weights.sum()
    return Mixture(
        torch.tensor(weights).view(1, k),
        torch.tensor(rng.normal(scale=spread, size=(1, k, dim))),
        torch.tensor(rng.uniform(0.3, 1.0, size=(1, k, dim))),
    )


def brute_force_max(g, inside, dim=2, points=400_000, box=6.0, seed=0):
    """max of g.u over sampled points u satisfying `inside(u) -> bool [N]`."""
    u = (torch.rand(points, dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * box
    u = u.double()
    ok = inside(u)
    assert ok.sum() > 100
    return float((u[ok] @ g).max())


@pytest.mark.parametrize("seed", range(3))
def test_lse_operator_reaches_the_best_point_of_its_constraint_set(seed):
    rng = np.random.default_rng(seed)
    mixture, g = random_mixture(rng), torch.tensor(rng.normal(size=2))
    delta = delta_from_log_tau(mixture, 1.0)

    def inside(u):  # the LogSumExp bound's set: some component alone satisfies it
        log_parts = mixture.weights.log() + component_log_prob(
            Mixture(*(x.expand(len(u), *x.shape[1:]) for x in mixture)), u
        )
        return (log_parts >= -delta).any(-1)

    u = improve(mixture, linear_q(g), 1.0, "lse")
    best = brute_force_max(g, inside)
    value = float(u[0] @ g)
    assert bool(inside(u.view(1, 2) - 1e-9 * g))  # feasible (up to rounding on the boundary)
    assert value >= best - 1e-6
    assert value <= best + 0.05  # not beyond the set: brute force comes close from inside


@pytest.mark.parametrize("seed", range(3))
def test_jensen_operator_reaches_the_best_point_of_its_constraint_set(seed):
    rng = np.random.default_rng(seed + 10)
    mixture, g = random_mixture(rng, spread=0.7), torch.tensor(rng.normal(size=2))
    delta = delta_from_log_tau(mixture, 3.0)

    def inside(u):  # Jensen's bound: sum_i w_i log N_i(u) >= -delta
        expanded = Mixture(*(x.expand(len(u), *x.shape[1:]) for x in mixture))
        return (expanded.weights * component_log_prob(expanded, u)).sum(-1) >= -delta

    _, _, kappa_sq = jensen_ellipsoid(mixture, 3.0)
    assert float(kappa_sq) > 0  # log tau = 3 leaves these draws a non-empty set
    u = improve(mixture, linear_q(g), 3.0, "jensen")
    best = brute_force_max(g, inside)
    value = float(u[0] @ g)
    assert value >= best - 1e-6 and value <= best + 0.05


def test_best_operator_takes_the_better_candidate_and_ignores_light_components():
    # two components: a light one (weight 0.04) far along g, and a heavy one
    mixture = Mixture(
        torch.tensor([[0.96, 0.04]]),
        torch.tensor([[[0.0, 0.0]], [[5.0, 5.0]]]).view(1, 2, 2),
        torch.full((1, 2, 2), 0.5),
    )
    g = torch.tensor([1.0, 1.0])
    u = improve(mixture, linear_q(g), 0.5, "best")
    assert float(u[0] @ g) < 5.0  # the light component is not used
    _, feasible = lse_candidates(mixture, torch.zeros(1, 2, 2) + g, lse_slack(mixture, 0.5))
    assert feasible.tolist() == [[True, False]]
    lse = improve(mixture, linear_q(g), 0.5, "lse")
    jensen = improve(mixture, linear_q(g), 0.5, "jensen")
    assert float(u[0] @ g) == pytest.approx(max(float(lse[0] @ g), float(jensen[0] @ g)))


def test_lower_bound_of_twin_heads_is_their_minimum():
    q = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
    assert torch.allclose(lower_bound(q), torch.tensor([1.0, 2.0]))


def sarsa_batch():
    batch = 8
    td = TensorDict(
        {
            "observation": torch.randn(batch, 3),
            "action": torch.rand(batch, 1) * 2 - 1,
            ("next", "observation"): torch.randn(batch, 3),
            ("next", "action"): torch.rand(batch, 1) * 2 - 1,
            ("next", "reward"): torch.randn(batch, 1),
            ("next", "terminated"): torch.zeros(batch, 1, dtype=torch.bool),
            ("next", "has_action"): torch.ones(batch, 1, dtype=torch.bool),
        },
        batch_size=[batch],
    )
    td["next", "terminated"][0] = True
    td["next", "has_action"][0] = False
    td["next", "has_action"][1] = False  # cut by a time limit: no target
    return td


def test_sarsa_target_uses_the_dataset_next_action_and_skips_unknown_ones():
    from lit_rl.nets.behavior import MixtureBehavior

    torch.manual_seed(0)
    loss = CFPILoss(MixtureBehavior(3, 1, (16,)), EnsembleQCritic(3, 1, (16,), 2), gamma=0.9)
    td = sarsa_batch()
    out = loss(td)
    q = loss.critic(td["observation"], td["action"]).detach()
    next_q = loss.target_critic(td["next", "observation"], td["next", "action"]).detach()
    cont = 1.0 - td["next", "terminated"].float().view(-1)
    target = td["next", "reward"].view(-1) + 0.9 * cont * next_q
    keep = torch.ones(8)
    keep[1] = 0.0
    expected = 0.5 * ((q - target).pow(2) * keep / keep.mean()).mean(1).sum()
    assert torch.allclose(out["loss_qvalue"], expected, atol=1e-6)
    # a different next action changes the loss: the target reads it
    td["next", "action"] = -td["next", "action"]
    assert not torch.allclose(loss(td)["loss_qvalue"], out["loss_qvalue"])


def test_a_mixture_behaviour_policy_fits_two_modes():
    from lit_rl.nets.behavior import MixtureBehavior

    torch.manual_seed(0)
    obs = torch.zeros(512, 1)
    # 70% of actions near +0.6, 30% near -0.6: one Gaussian would put its mean between
    actions = torch.where(torch.rand(512, 1) < 0.7, 0.6, -0.6) + 0.02 * torch.randn(512, 1)
    single, mixture = MixtureBehavior(1, 1, (32,), 1), MixtureBehavior(1, 1, (32,), 2)
    for policy in (single, mixture):
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
        for _ in range(600):
            optimizer.zero_grad()
            policy.nll(obs, actions).backward()
            optimizer.step()
    assert float(mixture.nll(obs, actions)) < float(single.nll(obs, actions)) - 1.0
    assert abs(float(mixture.mode(obs[:1])) - 0.6) < 0.05  # the heavier mode
    weights = sorted(mixture(obs[:1]).weights.view(-1).tolist())
    assert weights == pytest.approx([0.3, 0.7], abs=0.05)


def test_the_iterative_variant_targets_the_improved_policy():
    from lit_rl.nets.behavior import MixtureBehavior

    torch.manual_seed(0)
    make = lambda next_action: CFPILoss(  # noqa: E731
        MixtureBehavior(3, 1, (16,)), EnsembleQCritic(3, 1, (16,), 2), next_action=next_action
    )
    sarsa, iterative = make("dataset"), make("policy")
    iterative.load_state_dict(sarsa.state_dict())
    td = sarsa_batch()
    td["next", "has_action"][:] = True
    assert not torch.allclose(sarsa(td)["loss_qvalue"], iterative(td)["loss_qvalue"])
    # the iterative target does not read the dataset's next action
    before = iterative(td)["loss_qvalue"]
    td["next", "action"] = -td["next", "action"]
    assert torch.allclose(iterative(td)["loss_qvalue"], before)
