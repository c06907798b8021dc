"""Lookahead policy iteration: the counterexample diverges at H = 1 and converges with
enough lookahead or rollout; on tabular features the iteration is exact."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import REPO, run_cli

from lit_rl.planning.lookahead_pi import (
    FiniteMDP,
    approximate_policy_iteration,
    lookahead,
    random_problem,
    rollout,
    two_state_counterexample,
)


@pytest.mark.parametrize("fit", ["least_squares", "gradient"])
def test_counterexample_diverges_without_lookahead_and_converges_with_it(fit):
    problem = two_state_counterexample(gamma=0.95)
    no_lookahead = approximate_policy_iteration(problem, 1, 1, 80, fit)
    deep = approximate_policy_iteration(problem, 6, 1, 80, fit)
    long_rollout = approximate_policy_iteration(problem, 1, 6, 80, fit)
    # grows without bound: geometric growth, every iteration worse than the last
    assert no_lookahead[-1] > 100 * no_lookahead[0]
    assert (no_lookahead[1:] > no_lookahead[:-1]).all()
    assert deep[-1] < 0.01 * deep[0]
    assert long_rollout[-1] < 0.01 * long_rollout[0]


def test_more_lookahead_and_longer_rollouts_converge_faster():
    problem = two_state_counterexample(gamma=0.95)
    finals = [approximate_policy_iteration(problem, h, 1, 40)[-1] for h in (1, 2, 3, 4, 6)]
    assert all(a > b for a, b in zip(finals, finals[1:], strict=False))
    finals_m = [approximate_policy_iteration(problem, 1, m, 40)[-1] for m in (1, 2, 4, 6)]
    assert all(a > b for a, b in zip(finals_m, finals_m[1:], strict=False))


def test_counterexample_growth_rate_matches_the_analysis():
    """theta' = 6/5 gamma^(H+m-1) theta: the error ratio per iteration is that factor."""
    gamma = 0.95
    for horizon, steps in [(1, 1), (2, 1), (1, 3), (3, 2)]:
        errors = approximate_policy_iteration(two_state_counterexample(gamma), horizon, steps, 5)
        ratio = errors[1:] / errors[:-1]
        expected = 1.2 * gamma ** (horizon + steps - 1)
        assert torch.allclose(ratio, torch.full_like(ratio, expected), rtol=1e-9)


def test_tabular_features_recover_the_optimal_values():
    problem = random_problem(num_states=15, num_actions=3, num_features=15, gamma=0.9, seed=1)
    problem.features = torch.eye(15, dtype=torch.float64)
    problem.theta0 = torch.zeros(15, dtype=torch.float64)
    errors = approximate_policy_iteration(problem, 1, 1, 300)
    assert errors[-1] < 1e-8


def test_lookahead_and_rollout_are_bellman_operators():
    problem = random_problem(6, 2, 3, gamma=0.8, seed=2)
    mdp = problem.mdp
    values = torch.randn(6, dtype=torch.float64)
    policy, start = lookahead(mdp, values, 3)
    assert torch.allclose(start, mdp.bellman_optimal(mdp.bellman_optimal(values)))
    q = mdp.rewards + mdp.gamma * torch.einsum("ast,t->as", mdp.transitions, start)
    assert torch.equal(policy, q.argmax(0))
    manual = start
    for _ in range(2):
        manual = q_of(mdp, manual)[policy, torch.arange(6)]
    assert torch.allclose(rollout(mdp, policy, start, 2), manual)


def q_of(mdp: FiniteMDP, values: torch.Tensor) -> torch.Tensor:
    return mdp.rewards + mdp.gamma * torch.einsum("ast,t->as", mdp.transitions, values)


def test_bad_mdp_is_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        FiniteMDP(torch.ones(1, 2, 2), torch.zeros(1, 2), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        FiniteMDP(torch.eye(2).unsqueeze(0), torch.zeros(1, 2), 1.0)


def test_recipe_writes_the_curves_and_plot(tmp_path):
    recipe = str(REPO / "recipes" / "lookahead_pi_counterexample.yaml")
    result = run_cli("run", recipe, f"run_dir={tmp_path}", "lookahead_pi.iterations=30")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lookahead_pi.png").stat().st_size > 10_000
    rows = list(csv.DictReader((tmp_path / "errors.csv").open()))
    assert len(rows) == 31
    assert float(rows[-1]["H1_m1"]) > 10 * float(rows[0]["H1_m1"])
    assert float(rows[-1]["H6_m1"]) < 0.1 * float(rows[0]["H6_m1"])
    assert "diverges" in result.stdout and "converges" in result.stdout


def test_recipe_typo_is_a_one_line_error(tmp_path):
    recipe = str(REPO / "recipes" / "lookahead_pi_counterexample.yaml")
    result = run_cli("run", recipe, f"run_dir={tmp_path}", "lookahead_pi.horizon=3")
    assert result.returncode == 2
    assert "unknown key 'lookahead_pi.horizon'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
