"""Approximate policy iteration with H-step lookahead and m-step rollouts (known finite MDPs).

Winnicki, Lubars, Livesay, Srikant (arXiv 2109.13419). With linear values `J = Phi theta`
fitted on a subset of states, each iteration does

    improvement:  mu_{k+1} greedy for T^H J_k          (H-step lookahead)
    evaluation:   target = T_{mu_{k+1}}^m T^{H-1} J_k  (m-step rollout from the lookahead)
    fit:          theta_{k+1} = least squares of Phi_D theta ~ target_D
                  (or a few gradient steps on that objective, from theta_k)

The fit can amplify errors by more than 1 / gamma in the sup norm; the iteration then
diverges unless gamma^(H + m - 1) is small enough. Lookahead and rollouts both shrink
that factor. `two_state_counterexample` is a small MDP on which H = m = 1 diverges.

Rewards are maximised (the paper minimises costs; the algebra is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FITS = ("least_squares", "gradient")


@dataclass
class FiniteMDP:
    """A finite MDP with known dynamics.

    Attributes:
        transitions: `[A, S, S]`, row `transitions[a, s]` is the next-state distribution.
        rewards: `[A, S]` expected reward of action a in state s.
        gamma: discount in [0, 1).
    """

    transitions: torch.Tensor
    rewards: torch.Tensor
    gamma: float

    def __post_init__(self) -> None:
        num_actions, num_states = self.rewards.shape
        if self.transitions.shape != (num_actions, num_states, num_states):
            raise ValueError(
                f"transitions {tuple(self.transitions.shape)} must be [A, S, S] = "
                f"[{num_actions}, {num_states}, {num_states}] to match rewards"
            )
        row_sums = self.transitions.sum(-1)
        if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-6):
            raise ValueError("every row of transitions must sum to 1")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma}")

    @property
    def num_states(self) -> int:
        return self.rewards.shape[1]

    def action_values(self, values: torch.Tensor) -> torch.Tensor:
        """`[A, S]`: r(s, a) + gamma * E[J(s')]."""
        return self.rewards + self.gamma * self.transitions @ values

    def bellman_optimal(self, values: torch.Tensor) -> torch.Tensor:
        """T J."""
        return self.action_values(values).max(0).values

    def bellman_policy(self, values: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        """T_mu J for a deterministic policy `[S]` of action indices."""
        states = torch.arange(self.num_states)
        return self.action_values(values)[policy, states]

    def optimal_values(self, tol: float = 1e-10, max_iters: int = 100_000) -> torch.Tensor:
        """J* by value iteration (exact up to `tol` in the sup norm)."""
        values = torch.zeros(self.num_states, dtype=self.rewards.dtype)
        for _ in range(max_iters):
            new = self.bellman_optimal(values)
            if (new - values).abs().max() < tol * (1 - self.gamma):
                return new
            values = new
        return values


def lookahead(
    mdp: FiniteMDP, values: torch.Tensor, horizon: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The H-step lookahead policy for `values` and T^{H-1} J, which its rollout starts from."""
    if horizon < 1:
        raise ValueError(f"lookahead horizon H must be >= 1, got {horizon}")
    for _ in range(horizon - 1):
        values = mdp.bellman_optimal(values)
    policy = mdp.action_values(values).argmax(0)
    return policy, values


def rollout(mdp: FiniteMDP, policy: torch.Tensor, values: torch.Tensor, steps: int) -> torch.Tensor:
    """T_mu^m J: m steps of the policy's Bellman operator from J."""
    if steps < 1:
        raise ValueError(f"rollout length m must be >= 1, got {steps}")
    for _ in range(steps):
        values = mdp.bellman_policy(values, policy)
    return values


def fit_least_squares(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """argmin_theta ||features theta - targets||^2."""
    return torch.linalg.lstsq(features, targets.unsqueeze(-1)).solution.squeeze(-1)


def fit_gradient(
    theta: torch.Tensor, features: torch.Tensor, targets: torch.Tensor, steps: int, lr: float
) -> torch.Tensor:
    """`steps` gradient steps on 1/2 ||features theta - targets||^2, starting from theta."""
    for _ in range(steps):
        theta = theta - lr * features.T @ (features @ theta - targets)
    return theta


@dataclass
class LinearValueProblem:
    """An MDP with linear value features and the states the fit sees."""

    mdp: FiniteMDP
    features: torch.Tensor  # [S, d]
    fit_states: torch.Tensor  # [n] indices of the states in the least-squares fit
    theta0: torch.Tensor  # [d] initial weights


def approximate_policy_iteration(
    problem: LinearValueProblem,
    horizon: int,
    rollout_steps: int,
    iterations: int,
    fit: str = "least_squares",
    gradient_steps: int = 5,
    gradient_lr: float = 0.05,
) -> torch.Tensor:
    """Run the iteration; return `[iterations + 1]` sup-norm errors ||Phi theta_k - J*||.

    Errors are returned as float64 and become inf once they overflow (divergence).
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit '{fit}'; choose one of {', '.join(FITS)}")
    mdp, features = problem.mdp, problem.features
    fit_features = features[problem.fit_states]
    optimal = mdp.optimal_values()
    theta = problem.theta0.clone()
    errors = [float((features @ theta - optimal).abs().max())]
    for _ in range(iterations):
        policy, start = lookahead(mdp, features @ theta, horizon)
        targets = rollout(mdp, policy, start, rollout_steps)[problem.fit_states]
        if fit == "least_squares":
            theta = fit_least_squares(fit_features, targets)
        else:
            theta = fit_gradient(theta, fit_features, targets, gradient_steps, gradient_lr)
        errors.append(float((features @ theta - optimal).abs().max()))
    return torch.tensor(errors, dtype=torch.float64).nan_to_num(nan=float("inf"))


def two_state_counterexample(gamma: float = 0.95) -> LinearValueProblem:
    """Two states, one feature phi = (1, 2), both states in the fit.

    Action 0 moves to state 2 with reward 0; action 1 stays put with reward -1, so J* = 0
    and action 0 is optimal. For theta > 0 the greedy action is 0 in both states, every
    target is gamma^(H+m-1) * 2 theta and the least-squares fit returns
    theta' = 6/5 gamma^(H+m-1) theta: the fit amplifies by 6/5 > 1 in the sup norm, so
    with gamma = 0.95 the iteration diverges for H + m - 1 <= 3 and converges from 4.
    """
    dtype = torch.float64
    go_to_2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=dtype)
    stay = torch.eye(2, dtype=dtype)
    mdp = FiniteMDP(
        transitions=torch.stack([go_to_2, stay]),
        rewards=torch.tensor([[0.0, 0.0], [-1.0, -1.0]], dtype=dtype),
        gamma=gamma,
    )
    features = torch.tensor([[1.0], [2.0]], dtype=dtype)
    return LinearValueProblem(mdp, features, torch.tensor([0, 1]), torch.tensor([1.0], dtype=dtype))


def random_problem(
    num_states: int, num_actions: int, num_features: int, gamma: float, seed: int = 0
) -> LinearValueProblem:
    """A random dense MDP with random features, fitted on every state."""
    generator = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    logits = torch.randn(num_actions, num_states, num_states, generator=generator, dtype=dtype)
    mdp = FiniteMDP(
        transitions=logits.softmax(-1),
        rewards=torch.rand(num_actions, num_states, generator=generator, dtype=dtype),
        gamma=gamma,
    )
    features = torch.randn(num_states, num_features, generator=generator, dtype=dtype)
    theta0 = torch.zeros(num_features, dtype=dtype)
    return LinearValueProblem(mdp, features, torch.arange(num_states), theta0)


PROBLEMS = {"two_state_counterexample": two_state_counterexample}
