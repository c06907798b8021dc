"""Stochastic actors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_rl.nets.mlp import make_mlp

LOG_STD_MIN = -20.0  # SAC reference implementation (softlearning)
LOG_STD_MAX = 2.0  # SAC reference implementation (softlearning)
_LOG_2 = math.log(2.0)


class TanhGaussianActor(nn.Module):
    """SAC's squashed Gaussian policy: `a = tanh(u)`, `u ~ N(mu(s), sigma(s))`.

    Shapes: `observation [*B, obs_dim] -> action [*B, act_dim]` in [-1, 1], and
    `log_prob [*B]` of the squashed action (change of variables through tanh).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = make_mlp(obs_dim, 2 * act_dim, hidden_sizes, act)

    def distribution_params(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and log-std, the latter clamped to [LOG_STD_MIN, LOG_STD_MAX]."""
        mean, log_std = self.net(observation).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action sample and its log-probability."""
        mean, log_std = self.distribution_params(observation)
        noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        return torch.tanh(pre_tanh), squashed_gaussian_log_prob(noise, log_std, pre_tanh)

    def explore(self, observation: torch.Tensor) -> torch.Tensor:
        """An action sample without its log-probability: the cheaper path for acting."""
        mean, log_std = self.distribution_params(observation)
        return torch.tanh(torch.addcmul(mean, log_std.exp(), torch.randn_like(mean)))

    def mode(self, observation: torch.Tensor) -> torch.Tensor:
        """The deterministic action `tanh(mu(s))` used for evaluation."""
        mean, _ = self.distribution_params(observation)
        return torch.tanh(mean)


def squashed_gaussian_log_prob(
    noise: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor
) -> torch.Tensor:
    """log pi(tanh(u)) for u = mean + std * noise, summed over the action dims.

    Uses the numerically stable `log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`
    (SAC paper, appendix C).
    """
    gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (_LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (gaussian - log_det).sum(-1)
