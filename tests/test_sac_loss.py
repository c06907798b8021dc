"""SAC's losses against a direct formula, gradient isolation and Polyak targets."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from lit_rl.nets import EnsembleQCritic, TanhGaussianActor
from lit_rl.objectives import SACLoss

OBS, ACT, B = 5, 2, 16


def make_batch(batch: int = B) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            "observation": torch.randn(batch, OBS, generator=g),
            "action": torch.rand(batch, ACT, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(batch, OBS, generator=g),
                "reward": torch.randn(batch, 1, generator=g),
                "terminated": torch.rand(batch, 1, generator=g) < 0.3,
            },
        },
        [batch],
    )


def make_loss(**kwargs) -> SACLoss:
    torch.manual_seed(1)
    return SACLoss(
        TanhGaussianActor(OBS, ACT, (16, 16)), EnsembleQCritic(OBS, ACT, (16, 16)), **kwargs
    )


def direct_q(critic: EnsembleQCritic, obs, act, head: int) -> torch.Tensor:
    """Q of one head written as a plain MLP, independent of the batched implementation."""
    x = torch.cat([obs, act], -1)
    layers = list(critic.layers)
    for i, layer in enumerate(layers):
        x = x @ layer.weight[head] + layer.bias[head, 0]
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x.squeeze(-1)


def direct_sample(actor: TanhGaussianActor, obs, noise):
    mean, log_std = actor.net(obs).chunk(2, -1)
    log_std = log_std.clamp(-20, 2)
    std = log_std.exp()
    u = mean + std * noise
    a = torch.tanh(u)
    normal_logp = torch.distributions.Normal(mean, std).log_prob(u)
    logp = (normal_logp - torch.log(1 - a.pow(2) + 1e-12)).sum(-1)
    return a, logp


def test_losses_equal_direct_formula():
    gamma, alpha0, scale = 0.97, 0.5, 2.0
    loss = make_loss(gamma=gamma, init_alpha=alpha0, reward_scale=scale)
    with torch.no_grad():  # make the target differ from the online critic
        for p in loss.target_critic.parameters():
            p.add_(0.05)
    td = make_batch()
    torch.manual_seed(123)
    out = loss(td)
    # the loss draws noise: next actions first, then current actions
    torch.manual_seed(123)
    noise_next = torch.randn(B, ACT)
    noise_now = torch.randn(B, ACT)

    obs, act = td["observation"], td["action"]
    next_obs = td["next", "observation"]
    r = td["next", "reward"].squeeze(-1)
    term = td["next", "terminated"].squeeze(-1).float()
    a_next, logp_next = direct_sample(loss.actor, next_obs, noise_next)
    q_next = torch.minimum(
        direct_q(loss.target_critic, next_obs, a_next, 0),
        direct_q(loss.target_critic, next_obs, a_next, 1),
    )
    y = scale * r + gamma * (1 - term) * (q_next - alpha0 * logp_next)
    critic_loss = 0.5 * sum(((direct_q(loss.critic, obs, act, h) - y) ** 2).mean() for h in (0, 1))
    a_new, logp_new = direct_sample(loss.actor, obs, noise_now)
    q_new = torch.minimum(
        direct_q(loss.critic, obs, a_new, 0), direct_q(loss.critic, obs, a_new, 1)
    )
    actor_loss = (alpha0 * logp_new - q_new).mean()
    alpha_loss = -(math.log(alpha0) * (logp_new + (-ACT))).mean()

    torch.testing.assert_close(out["loss_qvalue"], critic_loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["loss_actor"], actor_loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["loss_alpha"], alpha_loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["entropy"], -logp_new.mean(), rtol=1e-4, atol=1e-4)
    assert out["alpha"].item() == pytest.approx(alpha0)


@pytest.mark.parametrize(
    ("loss_key", "owner"),
    [("loss_actor", "actor"), ("loss_qvalue", "critic"), ("loss_alpha", "log_alpha")],
)
def test_each_loss_reaches_only_its_own_parameters(loss_key, owner):
    loss = make_loss()
    out = loss(make_batch())
    out[loss_key].backward()
    groups = {
        "actor": list(loss.actor.parameters()),
        "critic": list(loss.critic.parameters()),
        "log_alpha": [loss.log_alpha],
    }
    for name, params in groups.items():
        touched = any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        assert touched == (name == owner), (
            f"{loss_key} {'missed' if name == owner else 'reached'} {name}"
        )
    assert all(not p.requires_grad for p in loss.target_critic.parameters())


def test_targets_move_by_polyak_averaging():
    loss = make_loss()
    with torch.no_grad():
        for p in loss.critic.parameters():
            p.add_(1.0)
    before = [p.clone() for p in loss.target_critic.parameters()]
    online = [p.clone() for p in loss.critic.parameters()]
    loss(make_batch())["loss_qvalue"].backward()  # backward leaves targets untouched
    for p, b in zip(loss.target_critic.parameters(), before, strict=True):
        torch.testing.assert_close(p, b)
    loss.update_targets(0.1)
    for p, b, o in zip(loss.target_critic.parameters(), before, online, strict=True):
        torch.testing.assert_close(p, 0.9 * b + 0.1 * o)


def test_wrong_reward_shape_is_refused():
    td = make_batch()
    td.set(("next", "reward"), torch.randn(B, 2))
    with pytest.raises(ValueError, match=r"reward.*\(16, 2\)"):
        make_loss()(td)
