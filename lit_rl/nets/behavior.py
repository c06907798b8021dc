"""Behaviour policies cloned from a dataset: a Gaussian mixture in pre-tanh space.

`a = tanh(u)`, `u ~ sum_k w_k N(mu_k(s), diag sigma_k(s)^2)`. One component is the
tanh-Gaussian BC policy; K components the mixture CFPI's mixture operators need. Fitting
is maximum likelihood of `u = atanh(a)`: the tanh Jacobian does not depend on the
parameters, so this is the likelihood of the actions themselves up to a constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from lit_rl.nets.mlp import make_mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ACTION_EDGE = 1.0 - 1e-4  # dataset actions at +-1 clipped here before atanh


class Mixture(NamedTuple):
    """Mixture parameters: `weights [B, K]`, `means [B, K, A]`, `stds [B, K, A]`."""

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor


def pre_tanh(action: torch.Tensor) -> torch.Tensor:
    return torch.atanh(action.clamp(-ACTION_EDGE, ACTION_EDGE))


def component_log_prob(mixture: Mixture, u: torch.Tensor) -> torch.Tensor:
    """`log N(u; mu_k, sigma_k)` of `u [B, A]` (or `[B, K, A]`) under each component,
    `[B, K]`."""
    if u.dim() == 2:
        u = u.unsqueeze(1)
    z = (u - mixture.means) / mixture.stds
    per_dim = -0.5 * z.pow(2) - mixture.stds.log() - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(-1)


def mixture_log_prob(mixture: Mixture, u: torch.Tensor) -> torch.Tensor:
    """`log sum_k w_k N(u; mu_k, sigma_k)`, `[B]`."""
    return torch.logsumexp(mixture.weights.log() + component_log_prob(mixture, u), dim=-1)


class MixtureBehavior(nn.Module):
    """`observation [B, obs] -> Mixture` with `num_components` diagonal Gaussians."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        num_components: int = 1,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.act_dim, self.num_components = act_dim, num_components
        self.net = make_mlp(obs_dim, num_components * (1 + 2 * act_dim), hidden_sizes, act)

    def forward(self, observation: torch.Tensor) -> Mixture:
        out = self.net(observation)
        k, a = self.num_components, self.act_dim
        logits = out[..., :k]
        means, log_stds = out[..., k:].reshape(*out.shape[:-1], k, 2 * a).split(a, dim=-1)
        log_stds = log_stds.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return Mixture(torch.softmax(logits, dim=-1), means, log_stds.exp())

    def nll(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of dataset actions (in pre-tanh space)."""
        return -mixture_log_prob(self(observation), pre_tanh(action)).mean()

    def mode(self, observation: torch.Tensor) -> torch.Tensor:
        """`tanh` of the heaviest component's mean: the deterministic BC action."""
        mixture = self(observation)
        best = mixture.weights.argmax(-1)
        mean = mixture.means.gather(-2, best[..., None, None].expand(*best.shape, 1, self.act_dim))
        return torch.tanh(mean.squeeze(-2))

    def sample(self, observation: torch.Tensor) -> torch.Tensor:
        """An action drawn from the mixture (exploration, data collection)."""
        mixture = self(observation)
        index = torch.distributions.Categorical(probs=mixture.weights).sample()
        gather = index[..., None, None].expand(*index.shape, 1, self.act_dim)
        mean = mixture.means.gather(-2, gather).squeeze(-2)
        std = mixture.stds.gather(-2, gather).squeeze(-2)
        return torch.tanh(mean + std * torch.randn_like(mean))
