"""Soft Actor-Critic losses.

Haarnoja et al., "Soft Actor-Critic Algorithms and Applications" (arXiv 1812.05905):
twin critics with clipped double-Q targets (eq. 5-6, with the min of two target
critics), the reparameterised actor loss (eq. 7-10) and automatic temperature tuning
towards a target entropy of `-act_dim` (eq. 17-18).

All three losses are meant to be summed and back-propagated once. That is correct
because each term reaches only its own parameters: the actor loss evaluates the
critics with detached weights, the critic and temperature losses see a detached
policy and a detached `alpha`. ``tests/test_sac_loss.py`` checks it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.targets import polyak_update


@dataclass(frozen=True)
class SACKeys:
    """TensorDict keys the loss reads (TorchRL names)."""

    observation: str = "observation"
    action: str = "action"
    next_observation: tuple[str, str] = ("next", "observation")
    reward: tuple[str, str] = ("next", "reward")
    terminated: tuple[str, str] = ("next", "terminated")


def _column(td: TensorDictBase, key, batch: int) -> torch.Tensor:
    """A `[B, 1]` or `[B]` entry as `[B]`, refusing anything else (no silent broadcasting)."""
    value = td.get(key)
    if value.shape not in ((batch,), (batch, 1)):
        raise ValueError(
            f"expected {key} of shape [{batch}, 1] or [{batch}], got {tuple(value.shape)}"
        )
    return value.reshape(batch)


def reward_and_continuation(td: TensorDictBase, keys: SACKeys) -> tuple[torch.Tensor, torch.Tensor]:
    """`reward [B]` and `1 - terminated [B]` of a transition batch, shapes checked."""
    batch = td.get(keys.observation).shape[0]
    reward = _column(td, keys.reward, batch)
    continuation = 1.0 - _column(td, keys.terminated, batch).float()
    return reward, continuation


def ensemble_l2_loss(
    q: torch.Tensor, target_q: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """0.5 * sum over ensemble members of the mean squared error: `q [E, B]`, `target_q
    [B]` (one target for all members) or `[E, B]` (each its own); `weight [B]` scales rows
    (a mean of 1 keeps the unweighted scale)."""
    if target_q.dim() == 1:
        target_q = target_q.unsqueeze(0)
    error = (q - target_q).pow(2)
    if weight is not None:
        error = error * weight
    return 0.5 * error.mean(dim=1).sum()


class SACLoss(nn.Module):
    """SAC's actor, twin-critic (l2) and temperature losses.

    Args:
        actor: the squashed Gaussian policy.
        critic: an ensemble of Q-networks (`num_qs >= 2` for clipped double-Q).
        gamma: discount.
        init_alpha: initial temperature.
        target_entropy: entropy target; `None` means `-act_dim`.
        reward_scale: multiplies rewards in the target.

    Input keys (shapes for a batch of B): ``observation [B, obs]``, ``action [B, act]``,
    ``("next", "observation") [B, obs]``, ``("next", "reward") [B, 1]``,
    ``("next", "terminated") [B, 1]``.

    Output: ``loss_actor``, ``loss_qvalue``, ``loss_alpha`` (with gradients) and the
    detached diagnostics ``alpha``, ``entropy``, ``q_mean``, ``target_q_mean``.
    """

    keys = SACKeys()

    def __init__(
        self,
        actor: TanhGaussianActor,
        critic: EnsembleQCritic,
        gamma: float = 0.99,
        init_alpha: float = 1.0,
        target_entropy: float | None = None,
        reward_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(init_alpha)).log())
        self.gamma = gamma
        self.reward_scale = reward_scale
        self.target_entropy = float(-actor.act_dim if target_entropy is None else target_entropy)

    @property
    def alpha(self) -> torch.Tensor:
        """The temperature, detached: only `loss_alpha` trains it."""
        return self.log_alpha.detach().exp()

    def qvalue_loss(self, td: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """0.5 * sum over critics of the mean squared soft Bellman error."""
        reward, continuation = reward_and_continuation(td, self.keys)
        with torch.no_grad():
            next_obs = td.get(self.keys.next_observation)
            next_action, next_log_prob = self.actor.sample(next_obs)
            next_q = self.target_critic(next_obs, next_action).min(dim=0).values
            soft_next_value = next_q - self.alpha * next_log_prob
            target_q = self.reward_scale * reward + self.gamma * continuation * soft_next_value
        q = self.critic(td.get(self.keys.observation), td.get(self.keys.action))
        loss = ensemble_l2_loss(q, target_q)
        return loss, {"q_mean": q.detach().mean(), "target_q_mean": target_q.mean()}

    def actor_loss(self, td: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E[alpha * log pi(a|s) - min_i Q_i(s, a)], a ~ pi; critics frozen via detached weights."""
        obs = td.get(self.keys.observation)
        action, log_prob = self.actor.sample(obs)
        frozen = [p.detach() for p in self.critic.parameters()]
        q = self.critic.forward_with(frozen, obs, action).min(dim=0).values
        loss = (self.alpha * log_prob - q).mean()
        return loss, {"log_prob": log_prob.detach()}

    def alpha_loss(self, log_prob: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[log alpha * (log pi + target_entropy)], pushing the entropy to its target."""
        loss = -(self.log_alpha * (log_prob + self.target_entropy)).mean()
        return loss, {}

    def forward(self, td: TensorDictBase) -> TensorDict:
        loss_qvalue, q_info = self.qvalue_loss(td)
        loss_actor, actor_info = self.actor_loss(td)
        log_prob = actor_info["log_prob"]
        loss_alpha, _ = self.alpha_loss(log_prob)
        return TensorDict(
            {
                "loss_actor": loss_actor,
                "loss_qvalue": loss_qvalue,
                "loss_alpha": loss_alpha,
                "alpha": self.alpha,
                "entropy": -log_prob.mean(),
                **q_info,
            },
            batch_size=[],
        )

    def update_targets(self, tau: float) -> None:
        """Polyak-average the target critics towards the critics."""
        polyak_update(self.target_critic, self.critic, tau)
