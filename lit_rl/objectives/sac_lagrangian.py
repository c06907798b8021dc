"""SAC-Lagrangian: SAC with a cost critic and a multiplier on the cost in the actor loss.

The common safe-RL baseline (Ray, Achiam & Amodei 2019, "Benchmarking Safe Exploration";
OmniSafe's SACLag). Besides SAC's losses (`lit_rl.objectives.sac`):

    cost critic:  Q_c(s, a) -> c + gamma (1 - terminated) max_i Q_c,i'(s', a'),  a' ~ pi(s')
    actor:        (alpha log pi(a|s) - min_i Q_i(s, a) + lambda max_i Q_c,i(s, a)) / (1 + lambda)

Dividing by `1 + lambda` (OmniSafe) keeps the actor's gradient scale when the
multiplier grows. The cost side mirrors clipped double-Q: the actor *minimises* the cost
value, so it seeks the cost critic's underestimates, and bootstrapping compounds them
(a single cost critic's mean value fell to -4 on lit_rl/SafePointGoalSmall-v0 although
every cost is >= 0, and the policy drove into hazards). The max over twin cost critics
is the pessimistic estimate, and targets are clamped at 0 (costs are non-negative).
The multiplier is not trained by gradient: the module updates it from episode costs
(`lit_rl.objectives.lagrange.PIDLagrangian`).
"""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict, TensorDictBase

from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.lagrange import PIDLagrangian
from lit_rl.objectives.sac import SACLoss, _column, ensemble_l2_loss, reward_and_continuation
from lit_rl.objectives.targets import polyak_update

COST = ("next", "cost")


def cost_column(td: TensorDictBase) -> torch.Tensor:
    """The batch's per-step costs `[B]` (shape checked like the reward)."""
    return _column(td, COST, td.get("observation").shape[0])


class SACLagrangianLoss(SACLoss):
    """SAC's losses plus `loss_cost_qvalue`, with the cost in the actor loss.

    Args (besides `SACLoss`'s):
        cost_critic: the cost Q ensemble (the max over its members is the cost value).
        multiplier: the PID multiplier whose `value` weighs the cost.
        cost_gamma: discount of the cost critic (defaults to `gamma`).

    Extra input key: ``("next", "cost") [B, 1]``. Extra outputs: ``loss_cost_qvalue``,
    ``lagrange_multiplier``, ``cost_q_mean``.
    """

    def __init__(
        self,
        actor: TanhGaussianActor,
        critic: EnsembleQCritic,
        cost_critic: EnsembleQCritic,
        multiplier: PIDLagrangian,
        cost_gamma: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(actor, critic, **kwargs)
        self.cost_critic = cost_critic
        self.target_cost_critic = copy.deepcopy(cost_critic).requires_grad_(False)
        self.multiplier = multiplier
        self.cost_gamma = self.gamma if cost_gamma is None else cost_gamma

    def cost_qvalue_loss(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared Bellman error of the cost critic; returns (loss, Q_c mean)."""
        _, continuation = reward_and_continuation(td, self.keys)
        cost = cost_column(td)
        with torch.no_grad():
            next_obs = td.get(self.keys.next_observation)
            next_action, _ = self.actor.sample(next_obs)
            next_cost = self.target_cost_critic(next_obs, next_action).max(dim=0).values
            target = (cost + self.cost_gamma * continuation * next_cost).clamp_min(0.0)
        q_cost = self.cost_critic(td.get(self.keys.observation), td.get(self.keys.action))
        return ensemble_l2_loss(q_cost, target), q_cost.detach().mean()

    def actor_loss(self, td: TensorDictBase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = td.get(self.keys.observation)
        action, log_prob = self.actor.sample(obs)
        frozen = [p.detach() for p in self.critic.parameters()]
        q = self.critic.forward_with(frozen, obs, action).min(dim=0).values
        frozen_cost = [p.detach() for p in self.cost_critic.parameters()]
        q_cost = self.cost_critic.forward_with(frozen_cost, obs, action).max(dim=0).values
        lam = self.multiplier.value
        loss = ((self.alpha * log_prob - q + lam * q_cost) / (1.0 + lam)).mean()
        return loss, {"log_prob": log_prob.detach()}

    def forward(self, td: TensorDictBase) -> TensorDict:
        out = super().forward(td)
        loss_cost, cost_q_mean = self.cost_qvalue_loss(td)
        out.set("loss_cost_qvalue", loss_cost)
        out.set("cost_q_mean", cost_q_mean)
        out.set("lagrange_multiplier", self.multiplier.value.clone())
        return out

    def update_targets(self, tau: float) -> None:
        super().update_targets(tau)
        polyak_update(self.target_cost_critic, self.cost_critic, tau)
