"""DPMD's and SDAC's losses against direct formulas on fixed tensors."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from test_sac_loss import direct_q

from lit_rl.nets import EnsembleQCritic
from lit_rl.nets.diffusion import DiffusionPolicy, DiffusionSchedule, EpsilonNetwork
from lit_rl.objectives.rsm import DPMDLoss, ReleasedCodeDPMDLoss, SDACLoss

OBS, ACT, B, T, M = 4, 2, 8, 10, 5


def make_batch() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": torch.rand(B, ACT, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "terminated": torch.zeros(B, 1, dtype=torch.bool),
            },
        },
        [B],
    )


def parts():
    torch.manual_seed(2)
    policy = DiffusionPolicy(
        EpsilonNetwork(OBS, ACT, (16, 16)), DiffusionSchedule.make("linear", T)
    )
    return policy, EnsembleQCritic(OBS, ACT, (16, 16))


FIXED_A0 = torch.linspace(-0.9, 0.9, B * ACT).reshape(B, ACT)


def min_q(critic, obs, act):
    return torch.minimum(direct_q(critic, obs, act, 0), direct_q(critic, obs, act, 1))


@pytest.mark.parametrize("normalization", ["paper", "released_code"])
def test_dpmd_loss_equals_direct_formula(normalization, monkeypatch):
    policy, critic = parts()
    loss_class = DPMDLoss if normalization == "paper" else ReleasedCodeDPMDLoss
    loss = loss_class(policy, critic)
    monkeypatch.setattr(loss, "act", lambda obs, noise_std=0.0, policy=None: FIXED_A0)
    td, lam = make_batch(), 0.7
    torch.manual_seed(5)
    value, info = loss.policy_loss(td, lam)
    torch.manual_seed(5)
    t = torch.randint(0, T, (B,))
    noise = torch.randn(B, ACT)

    obs = td["observation"]
    q = min_q(critic, obs, FIXED_A0)
    mu, sigma = q.mean(), q.std(unbiased=False)  # first update initialises the running stats
    z = (q - mu) / sigma if normalization == "paper" else q - mu / sigma
    w = torch.exp(z.clamp(-3, 3) / lam)
    ab = policy.schedule.alpha_bars[t][:, None]
    a_t = ab.sqrt() * FIXED_A0 + (1 - ab).sqrt() * noise
    expected = (w * ((policy.eps_net(obs, a_t, t) - noise) ** 2).sum(-1)).mean()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(info["weight_mean"], w.mean(), rtol=1e-5, atol=1e-6)


def test_released_code_normalisation_saturates_the_clip():
    """q - mu / sigma keeps Q's raw scale: with |Q| >> 3 every weight sits at the clip."""
    policy, critic = parts()
    paper = DPMDLoss(policy, critic)
    released = ReleasedCodeDPMDLoss(policy, critic)
    q = torch.linspace(-200.0, -100.0, 64)
    for loss in (paper, released):
        loss.q_stats.update(q)
    assert (released.normalized_q(q).clamp(-3, 3) == -3).all()
    assert paper.normalized_q(q).clamp(-3, 3).unique().numel() > 50


def test_sdac_loss_equals_direct_formula(monkeypatch):
    policy, critic = parts()
    loss = SDACLoss(policy, critic, num_reverse_samples=M)
    monkeypatch.setattr(loss, "act", lambda obs, noise_std=0.0, policy=None: FIXED_A0)
    td, lam = make_batch(), 0.3
    torch.manual_seed(9)
    value, _ = loss.policy_loss(td, lam)
    torch.manual_seed(9)
    t = torch.randint(0, T, (B,))
    e1 = torch.randn(B, ACT)
    eps = torch.randn(B, M, ACT)

    obs = td["observation"]
    ab = policy.schedule.alpha_bars[t][:, None]
    a_t = ab.sqrt() * FIXED_A0 + (1 - ab).sqrt() * e1
    a0 = ((a_t[:, None] - (1 - ab)[:, None].sqrt() * eps) / ab[:, None].sqrt()).clamp(-1, 1)
    q = torch.stack([min_q(critic, obs, a0[:, i]) for i in range(M)], dim=1)  # [B, M]
    w = torch.softmax(q / lam, dim=1)
    torch.testing.assert_close(w.sum(1), torch.ones(B))  # self-normalised per state
    pred = policy.eps_net(obs, a_t, t)
    expected = (w * ((pred[:, None] - eps) ** 2).sum(-1)).sum(1).mean()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


def test_critic_target_uses_the_acting_rule_and_no_entropy(monkeypatch):
    policy, critic = parts()
    loss = DPMDLoss(policy, critic, gamma=0.9, reward_scale=0.2)
    with torch.no_grad():
        for p in loss.target_critic.parameters():
            p.add_(0.1)
    monkeypatch.setattr(loss, "act", lambda obs, noise_std=0.0, policy=None: FIXED_A0)
    td = make_batch()
    value, info = loss.qvalue_loss(td)
    y = 0.2 * td["next", "reward"].squeeze(-1) + 0.9 * min_q(
        loss.target_critic, td["next", "observation"], FIXED_A0
    )
    q = [direct_q(critic, td["observation"], td["action"], h) for h in (0, 1)]
    expected = 0.5 * sum(((qh - y) ** 2).mean() for qh in q)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


def test_acting_rule_picks_the_best_candidate_in_one_batch():
    policy, critic = parts()
    loss = DPMDLoss(policy, critic, num_particles=6)
    obs = torch.randn(3, OBS)
    torch.manual_seed(1)
    action = loss.act(obs)
    torch.manual_seed(1)
    candidates = policy.sample(obs, 6)
    scores = min_q(
        critic, obs[:, None].expand(3, 6, OBS).reshape(-1, OBS), candidates.reshape(-1, ACT)
    ).reshape(3, 6)
    torch.testing.assert_close(action, candidates[torch.arange(3), scores.argmax(1)])
