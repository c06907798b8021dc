"""CFPI: closed-form policy improvement (Li et al., ICML 2023, arXiv 2211.15956).

Linearise Q around the behaviour policy and solve the behaviour-constrained problem in
closed form, in the pre-tanh space `u` (`a = tanh(u)`) where the behaviour policy is a
Gaussian (mixture). With `g = grad_u Q(s, tanh(u))` at a Gaussian's mean,

    max_u g^T u   s.t.   (u - mu)^T Sigma^-1 (u - mu) <= kappa^2
    =>  u* = mu + kappa Sigma g / ||g||_Sigma,     ||g||_Sigma = sqrt(g^T Sigma g).

Single Gaussian: `kappa = sqrt(2 log tau)` (`log tau = 0` returns the mean). A mixture
`sum_i w_i N(mu_i, Sigma_i)` constrains `log pi_b(u) >= -delta`; two tractable inner
sets (paper, section 3.2):

- LogSumExp bound, `log pi_b >= log w_i + log N_i`: component `i` alone gives an
  ellipsoid with `kappa_i^2 = 2 (delta + log w_i) - log det(2 pi Sigma_i)`, so one
  candidate per component, each linearised at its own mean.
- Jensen bound, `log pi_b >= sum_i w_i log N_i`: one ellipsoid around the
  precision-weighted mean `mu_bar`, `Sigma_bar^-1 = sum_i w_i Sigma_i^-1`, with
  `kappa_bar^2 = 2 delta - sum_i w_i log det(2 pi Sigma_i) - C`,
  `C = sum_i w_i mu_i^T Sigma_i^-1 mu_i - mu_bar^T Sigma_bar^-1 mu_bar`.

The "best" operator evaluates every candidate with Q and keeps the best. Components
below `min_weight` (0.05) are ignored (for Jensen: the kept weights are renormalised to
sum 1, which moves `delta` by `log W`, W the kept mass, so the bound stays valid).

`delta` is set per state from `log tau`, as `delta = log tau - max_i (log w_i -
log det(2 pi Sigma_i) / 2)`: the constraint allows the density to fall `log tau` below
the highest component peak. With one component this is exactly the single-Gaussian
operator with the same `tau` (a choice of ours: the paper states the mixture operators
with `delta` itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lit_rl.nets.behavior import Mixture

QFn = Callable[[torch.Tensor], torch.Tensor]  # u [B, N, A] -> Q(s, tanh(u)) [B, N]
NORM_EPS = 1e-8


def gaussian_step(
    means: torch.Tensor, stds: torch.Tensor, grads: torch.Tensor, kappa: torch.Tensor
) -> torch.Tensor:
    """`mu + kappa * Sigma g / ||g||_Sigma` for diagonal `Sigma = stds^2` (any leading
    shape; `kappa` has the leading shape without the action dimension)."""
    var = stds.pow(2)
    norm = (var * grads.pow(2)).sum(-1, keepdim=True).sqrt().clamp_min(NORM_EPS)
    return means + kappa.unsqueeze(-1) * var * grads / norm


def q_and_grad(q_fn: QFn, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q at `u [B, N, A]` and its gradient with respect to `u` (never to parameters)."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        q = q_fn(u)
        (grad,) = torch.autograd.grad(q.sum(), u)
    return q.detach(), grad


def log_det_2pi(stds: torch.Tensor) -> torch.Tensor:
    """`log det(2 pi Sigma)` of diagonal Gaussians, over the last dimension."""
    return (2 * stds.log() + math.log(2 * math.pi)).sum(-1)


def component_peaks(mixture: Mixture) -> torch.Tensor:
    """`log w_i + log N_i(mu_i)` `[B, K]`: each weighted component's log density at its mean."""
    return mixture.weights.log() - 0.5 * log_det_2pi(mixture.stds)


def delta_from_log_tau(mixture: Mixture, log_tau: float) -> torch.Tensor:
    """`[B]`: the density may fall `log tau` below the highest component peak."""
    return log_tau - component_peaks(mixture).max(-1).values


def lse_slack(mixture: Mixture, log_tau: float) -> torch.Tensor:
    """`delta + log w_i + log N_i(mu_i)` `[B, K]` for `delta_from_log_tau`, written as
    `log tau - (highest peak - peak_i)` so that the highest component gets exactly
    `log tau` (and `log tau = 0` exactly its mean)."""
    peaks = component_peaks(mixture)
    return log_tau - (peaks.max(-1, keepdim=True).values - peaks)


def lse_candidates(
    mixture: Mixture, grads: torch.Tensor, slack: torch.Tensor, min_weight: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """One candidate per component `[B, K, A]` (`grads` at each mean) and which are
    feasible `[B, K]` (weight >= min_weight and a non-empty ellipsoid). `slack [B, K]` is
    `delta + log w_i - log det(2 pi Sigma_i) / 2`, so `kappa_i^2 = 2 slack_i`."""
    kappa_sq = 2 * slack
    feasible = (mixture.weights >= min_weight) & (kappa_sq >= 0)
    kappa = kappa_sq.clamp_min(0).sqrt()
    return gaussian_step(mixture.means, mixture.stds, grads, kappa), feasible


def jensen_ellipsoid(
    mixture: Mixture, log_tau: float, min_weight: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(mu_bar [B, A], std_bar [B, A], kappa_bar^2 [B])` of the Jensen bound's set for
    `delta_from_log_tau`.

    With the kept weights `w'` (mass W) and `peak_i = log w_i - log det(2 pi Sigma_i) / 2`,
    `kappa_bar^2 = 2 log tau - 2 (max_j peak_j - sum_i w'_i peak_i)
    + 2 (log W - sum_i w'_i log w_i) - C`, `C = sum_i w'_i ||mu_i - mu_bar||^2_{Sigma_i^-1}`:
    the same quantity as in the module docstring, arranged so that one component gives
    exactly `2 log tau`.
    """
    kept = mixture.weights * (mixture.weights >= min_weight)
    mass = kept.sum(-1, keepdim=True).clamp_min(1e-12)
    weights = kept / mass
    precision_terms = weights.unsqueeze(-1) / mixture.stds.pow(2)  # [B, K, A]
    precision = precision_terms.sum(-2)  # [B, A]
    mean = (precision_terms * mixture.means).sum(-2) / precision
    spread = (precision_terms * (mixture.means - mean.unsqueeze(-2)).pow(2)).sum((-2, -1))
    peaks = component_peaks(mixture)
    log_w = mixture.weights.log()
    below_peak = peaks.max(-1).values - (weights * peaks).sum(-1)
    mass_term = mass.squeeze(-1).log() - (weights * log_w).sum(-1)
    kappa_sq = 2 * log_tau - 2 * below_peak + 2 * mass_term - spread
    return mean, precision.rsqrt(), kappa_sq


def jensen_candidate(
    mixture: Mixture, q_fn: QFn, log_tau: float, min_weight: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Jensen bound's solution `[B, A]` and whether its set is non-empty `[B]`."""
    mean, std, kappa_sq = jensen_ellipsoid(mixture, log_tau, min_weight)
    _, grad = q_and_grad(q_fn, mean.unsqueeze(1))
    step = gaussian_step(mean, std, grad.squeeze(1), kappa_sq.clamp_min(0).sqrt())
    return step, kappa_sq >= 0


OPERATORS = ("best", "lse", "jensen")


def improve(
    mixture: Mixture,
    q_fn: QFn,
    log_tau: float,
    operator: str = "best",
    min_weight: float = 0.05,
) -> torch.Tensor:
    """CFPI's improved pre-tanh action `[B, A]` for a behaviour mixture (K >= 1).

    `operator`: `lse` (best LogSumExp candidate by Q), `jensen`, or `best` (all of them
    by Q). With one component all three are the single-Gaussian operator.
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator '{operator}'; choose one of {', '.join(OPERATORS)}")
    batch = mixture.means.shape[0]
    candidates, feasible = [], []
    if operator in ("lse", "best"):
        _, grads = q_and_grad(q_fn, mixture.means)
        lse, lse_ok = lse_candidates(mixture, grads, lse_slack(mixture, log_tau), min_weight)
        candidates.append(lse)
        feasible.append(lse_ok)
    if operator in ("jensen", "best"):
        jensen, jensen_ok = jensen_candidate(mixture, q_fn, log_tau, min_weight)
        candidates.append(jensen.unsqueeze(1))
        feasible.append(jensen_ok.unsqueeze(1))
    # the heaviest component's mean: always inside the constraint, the fallback
    heaviest = mixture.weights.argmax(-1)
    fallback = mixture.means[torch.arange(batch, device=heaviest.device), heaviest]
    candidates.append(fallback.unsqueeze(1))
    feasible.append(torch.ones(batch, 1, dtype=torch.bool, device=heaviest.device))
    all_u, all_ok = torch.cat(candidates, dim=1), torch.cat(feasible, dim=1)
    if all_u.shape[1] == 2:  # one candidate and the fallback: no Q evaluation needed
        choice = (~all_ok[:, 0]).long()
    else:
        with torch.no_grad():
            q = q_fn(all_u).masked_fill(~all_ok, float("-inf"))
        choice = q.argmax(-1)
    return all_u[torch.arange(batch, device=choice.device), choice]
