"""Expressiveness: on a one-step bandit with two equal, separated reward peaks (a = -0.6 and
a = +0.6), SDAC's policy improvement keeps both modes; SAC's Gaussian cannot.

The critic is the true reward here, so the test isolates the policy-improvement step
(the part where diffusion policies differ from SAC). DPMD is not in this test yet: with
its old-policy samples drawn by the best-of-N acting rule it collapses onto one peak
here (the fuller mode yields candidates nearer its peak, so it wins best-of-N more
often); see the tracker.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from lit_rl.nets import TanhGaussianActor
from lit_rl.nets.diffusion import DiffusionPolicy, DiffusionSchedule, EpsilonNetwork
from lit_rl.objectives.rsm import SDACLoss
from lit_rl.objectives.sac import SACLoss

PEAKS = (-0.6, 0.6)
WIDTH = 0.1
BATCH = 256
ITERATIONS = 1200


def reward(action: torch.Tensor) -> torch.Tensor:
    return sum(torch.exp(-((action - p) ** 2) / (2 * WIDTH**2)) for p in PEAKS).squeeze(-1)


class TrueRewardCritic(nn.Module):
    """A fixed 'critic' returning the bandit's reward for both heads: `[2, B]`."""

    num_qs = 2

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # so optimizers and copies have a parameter

    def forward(self, observation, action):
        return self.forward_with(None, observation, action)

    def forward_with(self, params, observation, action):
        return reward(action).unsqueeze(0).expand(2, -1) + 0 * self.dummy


def batch() -> TensorDict:
    return TensorDict({"observation": torch.zeros(BATCH, 1)}, [BATCH])


def mass_near_peaks(samples: torch.Tensor) -> list[float]:
    return [float(((samples - p).abs() < 0.2).float().mean()) for p in PEAKS]


@pytest.mark.parametrize("loss_cls", [SDACLoss])
def test_diffusion_policies_keep_both_modes(loss_cls):
    torch.manual_seed(0)
    policy = DiffusionPolicy(EpsilonNetwork(1, 1, (64, 64)), DiffusionSchedule.make("cosine", 10))
    loss = loss_cls(policy, TrueRewardCritic(), num_particles=8, num_reverse_samples=32)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    lam = 0.05
    for _ in range(ITERATIONS):
        value, _ = loss.policy_loss(batch(), lam, noise_std=0.1)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        samples = policy.sample(torch.zeros(1, 1), 2000).flatten()
    left, right = mass_near_peaks(samples)
    assert left >= 0.2 and right >= 0.2, (left, right)


def test_sac_gaussian_cannot_cover_both_modes():
    torch.manual_seed(0)
    actor = TanhGaussianActor(1, 1, (64, 64))
    loss = SACLoss(actor, TrueRewardCritic(), init_alpha=0.05)
    optimizer = torch.optim.Adam(actor.parameters(), lr=1e-3)
    for _ in range(ITERATIONS):
        value, _ = loss.actor_loss(batch())
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        samples, _ = actor.sample(torch.zeros(2000, 1))
    left, right = mass_near_peaks(samples.flatten())
    assert min(left, right) < 0.2, (left, right)
    assert mean_reward_is_finite(samples)


def mean_reward_is_finite(samples: torch.Tensor) -> bool:
    return bool(torch.isfinite(reward(samples)).all())
