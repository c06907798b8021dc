"""CVPO: Constrained Variational Policy Optimization (Liu et al., ICML 2022, arXiv 2201.11927).

Safe RL as constrained EM. For each state of a batch, N actions `a_j ~ pi_old(.|s)`:

E-step: the non-parametric policy `q(a_j|s) = softmax_j((Q_r - lambda Q_c) / eta)` that
maximises `E_q[Q_r]` subject to `E_q[Q_c] <= eps_c` and `KL(q || pi_old) <= eps_KL`.
Its temperature and multiplier minimise the convex dual

    g(eta, lambda) = eta eps_KL + lambda eps_c
                     + eta E_s[ log (1/N) sum_j exp((Q_r(s,a_j) - lambda Q_c(s,a_j)) / eta) ]

over eta > 0, lambda >= 0 (`solve_dual`, a bounded quasi-Newton solve with the analytic
gradient, warm-started from the previous batch's solution).

M-step: fit the parametric Gaussian to the weighted samples, maximising
`E_s sum_j q_j log pi(a_j|s)` under MPO's decoupled trust regions: the mean is fitted
with the old covariance and the covariance with the old mean, and
`KL_mean(pi_old || pi) <= eps_mean`, `KL_cov(pi_old || pi) <= eps_cov` hold through
multipliers updated by dual descent (`alpha <- clamp(alpha - scale (eps - KL), 0, max)`).

Critics: twin reward Q (no entropy term) with clipped double-Q targets; a cost Q whose
target ignores `terminated` (CVPO's tasks have fixed-length episodes), clamped at 0
(costs are non-negative). With several cost critics (`num_cost_qs`; the paper uses one)
the max over them is the cost value, the pessimistic mirror of clipped double-Q. The episodic cost
limit `d` over `T` steps becomes the per-step threshold on the discounted cost value
`eps_c = d (1 - gamma^T) / (1 - gamma) / T` (`per_step_threshold`).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy.optimize import minimize
from tensordict import TensorDict, TensorDictBase
from torch import nn

from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.gaussian import CholeskyGaussianActor, gaussian_kl, gaussian_log_prob
from lit_rl.objectives.sac import ensemble_l2_loss, reward_and_continuation
from lit_rl.objectives.sac_lagrangian import cost_column
from lit_rl.objectives.targets import polyak_update

ETA_BOUNDS = (1e-6, 1e5)  # the released code's bounds
LAMBDA_BOUNDS = (0.0, 1e5)


def per_step_threshold(cost_limit: float, gamma: float, episode_length: int) -> float:
    """`d (1 - gamma^T) / (1 - gamma) / T`: the discounted value of a constant per-step
    cost `d / T`, i.e. the cost critic's value when an episode spends exactly its limit."""
    return cost_limit * (1.0 - gamma**episode_length) / (1.0 - gamma) / episode_length


def dual_value_and_grad(
    params: np.ndarray, q_reward: np.ndarray, q_cost: np.ndarray, eps_kl: float, eps_cost: float
) -> tuple[float, np.ndarray]:
    """`g(eta, lambda)` and its gradient for `q_reward, q_cost [B, N]` (float64)."""
    eta, lam = float(params[0]), float(params[1])
    advantage = q_reward - lam * q_cost
    scaled = advantage / eta
    top = scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled - top)
    total = exp.sum(axis=1, keepdims=True)
    log_mean_exp = (top + np.log(total)).squeeze(1) - math.log(q_reward.shape[1])
    weights = exp / total
    value = eta * eps_kl + lam * eps_cost + eta * log_mean_exp.mean()
    d_eta = eps_kl + log_mean_exp.mean() - (weights * scaled).sum(axis=1).mean()
    d_lam = eps_cost - (weights * q_cost).sum(axis=1).mean()
    return value, np.array([d_eta, d_lam])


def solve_dual(
    q_reward: torch.Tensor,
    q_cost: torch.Tensor,
    eps_kl: float,
    eps_cost: float,
    init: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float]:
    """`(eta, lambda)` minimising the E-step dual for `q_reward, q_cost [B, N]`."""
    q_r = q_reward.detach().double().cpu().numpy()
    q_c = q_cost.detach().double().cpu().numpy()
    start = np.clip(np.asarray(init, dtype=np.float64), [ETA_BOUNDS[0], 0.0], None)
    result = minimize(
        dual_value_and_grad,
        start,
        args=(q_r, q_c, eps_kl, eps_cost),
        jac=True,
        method="L-BFGS-B",
        bounds=[ETA_BOUNDS, LAMBDA_BOUNDS],
        options={"ftol": 1e-12, "gtol": 1e-9},
    )
    eta, lam = result.x
    return float(eta), float(lam)


def e_step_weights(
    q_reward: torch.Tensor, q_cost: torch.Tensor, eta: float, lam: float
) -> torch.Tensor:
    """`q [B, N] = softmax_j((Q_r - lambda Q_c) / eta)`, the E-step's policy."""
    return torch.softmax((q_reward - lam * q_cost) / eta, dim=1)


class CVPOLoss(nn.Module):
    """CVPO's critic, cost-critic and M-step losses (one backward for all).

    Args:
        actor: the full-covariance Gaussian policy; a target copy (Polyak-averaged like
            the critics) is the E-step's `pi_old`.
        critic: twin reward critics; cost_critic: the cost critics (max over members).
        cost_threshold: `eps_c`, the per-step threshold (`per_step_threshold`).
        gamma: discount of the reward critics.
        cost_gamma: discount of the cost critic (None = gamma); `cost_threshold` must be
            computed with it.
        num_samples: actions sampled per state in the E-step (N).
        kl_epsilon: eps_KL of the E-step (0.1).
        kl_mean_epsilon, kl_cov_epsilon: the M-step's trust regions (0.001 each).
        alpha_mean_scale, alpha_cov_scale: dual step sizes of their multipliers.
        alpha_mean_max, alpha_cov_max: the multipliers' upper bounds.

    Input keys as SAC's plus ``("next", "cost")``. Outputs ``loss_actor``,
    ``loss_qvalue``, ``loss_cost_qvalue`` and diagnostics (``eta``, ``lagrange_multiplier``,
    ``kl_mean``, ``kl_cov``, ``q_mean``, ``cost_q_mean``, ``weights_entropy``).
    """

    def __init__(
        self,
        actor: CholeskyGaussianActor,
        critic: EnsembleQCritic,
        cost_critic: EnsembleQCritic,
        cost_threshold: float,
        gamma: float = 0.99,
        cost_gamma: float | None = None,
        num_samples: int = 32,
        kl_epsilon: float = 0.1,
        kl_mean_epsilon: float = 0.001,
        kl_cov_epsilon: float = 0.001,
        alpha_mean_scale: float = 1.0,
        alpha_cov_scale: float = 100.0,
        alpha_mean_max: float = 0.1,
        alpha_cov_max: float = 10.0,
    ) -> None:
        super().__init__()
        self.actor, self.critic, self.cost_critic = actor, critic, cost_critic
        self.target_actor = copy.deepcopy(actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.target_cost_critic = copy.deepcopy(cost_critic).requires_grad_(False)
        self.cost_threshold, self.gamma, self.num_samples = cost_threshold, gamma, num_samples
        self.cost_gamma = gamma if cost_gamma is None else cost_gamma
        self.kl_epsilon = kl_epsilon
        self.kl_mean_epsilon, self.kl_cov_epsilon = kl_mean_epsilon, kl_cov_epsilon
        self.alpha_mean_scale, self.alpha_cov_scale = alpha_mean_scale, alpha_cov_scale
        self.alpha_mean_max, self.alpha_cov_max = alpha_mean_max, alpha_cov_max
        # the E-step's dual variables (warm start) and the M-step's multipliers
        self.register_buffer("eta", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("lagrange", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("alpha_mean", torch.tensor(0.0))
        self.register_buffer("alpha_cov", torch.tensor(0.0))

    def critic_losses(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, dict]:
        reward, continuation = reward_and_continuation(td, _KEYS)
        cost = cost_column(td)
        obs, action = td.get("observation"), td.get("action")
        with torch.no_grad():
            next_obs = td.get(("next", "observation"))
            next_action = self.target_actor.explore(next_obs)
            next_q = self.target_critic(next_obs, next_action).min(dim=0).values
            target_q = reward + self.gamma * continuation * next_q
            # the cost value ignores termination (fixed-length episodes), as released
            next_cost = self.target_cost_critic(next_obs, next_action).max(dim=0).values
            target_cost = (cost + self.cost_gamma * next_cost).clamp_min(0.0)
        q = self.critic(obs, action)
        q_cost = self.cost_critic(obs, action)
        info = {"q_mean": q.detach().mean(), "cost_q_mean": q_cost.detach().mean()}
        return ensemble_l2_loss(q, target_q), ensemble_l2_loss(q_cost, target_cost), info

    @torch.no_grad()
    def e_step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions `[N, B, A]` (clipped to the box) and their weights `[B, N]`."""
        actions = self.target_actor.sample_actions(obs, self.num_samples).clamp(-1.0, 1.0)
        flat_obs = obs.unsqueeze(0).expand(self.num_samples, *obs.shape).reshape(-1, obs.shape[-1])
        flat_actions = actions.reshape(-1, actions.shape[-1])
        batch = obs.shape[0]
        q_reward = self.target_critic(flat_obs, flat_actions).min(dim=0).values
        q_cost = self.target_cost_critic(flat_obs, flat_actions).max(dim=0).values
        q_reward = q_reward.view(self.num_samples, batch).T  # [B, N]
        q_cost = q_cost.view(self.num_samples, batch).T
        eta, lam = solve_dual(
            q_reward,
            q_cost,
            self.kl_epsilon,
            self.cost_threshold,
            init=(float(self.eta), float(self.lagrange)),
        )
        self.eta.fill_(eta)
        self.lagrange.fill_(lam)
        return actions, e_step_weights(q_reward, q_cost, eta, lam)

    def m_step_loss(
        self, obs: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MPO's decoupled weighted maximum likelihood with KL trust regions."""
        mean, tril = self.actor.distribution_params(obs)
        with torch.no_grad():
            old_mean, old_tril = self.target_actor.distribution_params(obs)
        log_prob_mean = gaussian_log_prob(actions, mean, old_tril)  # [N, B]
        log_prob_cov = gaussian_log_prob(actions, old_mean, tril)
        likelihood = (weights.T * (log_prob_mean + log_prob_cov)).sum(0).mean()
        kl_mean, _ = gaussian_kl(old_mean, old_tril, mean, old_tril)
        _, kl_cov = gaussian_kl(old_mean, old_tril, old_mean, tril)
        kl_mean, kl_cov = kl_mean.mean(), kl_cov.mean()
        with torch.no_grad():  # dual descent on the trust-region multipliers
            step_mean = self.alpha_mean_scale * (self.kl_mean_epsilon - kl_mean)
            step_cov = self.alpha_cov_scale * (self.kl_cov_epsilon - kl_cov)
            self.alpha_mean.copy_((self.alpha_mean - step_mean).clamp(0.0, self.alpha_mean_max))
            self.alpha_cov.copy_((self.alpha_cov - step_cov).clamp(0.0, self.alpha_cov_max))
        loss = -likelihood + self.alpha_mean * kl_mean + self.alpha_cov * kl_cov
        return loss, {"kl_mean": kl_mean.detach(), "kl_cov": kl_cov.detach()}

    def forward(self, td: TensorDictBase) -> TensorDict:
        loss_q, loss_cost, info = self.critic_losses(td)
        # the E- and M-step's states: the batch's, or recent ones (`policy_observation`)
        obs = td.get("policy_observation", None)
        obs = td.get("observation") if obs is None else obs
        actions, weights = self.e_step(obs)
        loss_actor, m_info = self.m_step_loss(obs, actions, weights)
        entropy = -(weights * weights.clamp_min(1e-12).log()).sum(1).mean()
        return TensorDict(
            {
                "loss_actor": loss_actor,
                "loss_qvalue": loss_q,
                "loss_cost_qvalue": loss_cost,
                "eta": self.eta.float(),
                "lagrange_multiplier": self.lagrange.float(),
                "weights_entropy": entropy,
                **info,
                **m_info,
            },
            batch_size=[],
        )

    def update_targets(self, tau: float) -> None:
        polyak_update(self.target_critic, self.critic, tau)
        polyak_update(self.target_cost_critic, self.cost_critic, tau)
        polyak_update(self.target_actor, self.actor, tau)


class _Keys:
    observation = "observation"
    reward = ("next", "reward")
    terminated = ("next", "terminated")


_KEYS = _Keys()
