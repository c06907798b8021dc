"""A critic of the behaviour policy learned from a dataset, and CFPI's loss around it.

SARSA-style evaluation (CFPI's one-step setting): each head regresses on
`r + gamma * (1 - terminated) * Q'_k(s', a')` with `a'` the action the dataset took
next, so the critic evaluates the behaviour policy without querying any other action.
Rows whose next action is unknown (an episode cut by a time limit) are left out; rows
that terminate need none. The iterative variant (`next_action="policy"`) takes `a'`
from the improved policy at `s'` instead: policy evaluation of CFPI's own policy.

The lower confidence bound CFPI improves on is `mean - std` over heads (population
std: with twin heads, their minimum).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase

from lit_rl.nets.behavior import MixtureBehavior
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.behavior_cloning import BCLoss
from lit_rl.objectives.cfpi import improve
from lit_rl.objectives.sac import SACKeys, ensemble_l2_loss, reward_and_continuation
from lit_rl.objectives.targets import polyak_update

NEXT_ACTIONS = ("dataset", "policy")


def dataset_next_action(
    batch: TensorDictBase, continuation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(a' [B, A], weight [B])`: the action the dataset took next, and row weights that
    drop rows whose next action is unknown (cut by a time limit; terminal rows need none)
    while keeping the usual mean's scale."""
    known = batch.get(("next", "has_action")).reshape(-1) | (continuation == 0)
    weight = known.float() / known.float().mean().clamp_min(1e-6)
    return batch.get(("next", "action")), weight


def lower_bound(q: torch.Tensor) -> torch.Tensor:
    """`mean - std` over the heads (dim 0) of `q [E, ...]`."""
    return q.mean(0) - q.std(0, correction=0)


class CFPILoss(BCLoss):
    """`loss_behavior` (BC) + `loss_qvalue` (the critic), summed into one backward:
    the terms share no parameters.

    Args:
        behavior: the behaviour policy (K = 1: tanh-Gaussian; K > 1: mixture).
        critic: the Q ensemble (twin by default).
        gamma, reward_scale: the critic target's discount and reward multiplier.
        log_tau, operator, min_weight: CFPI's operator (`lit_rl.objectives.cfpi`).
        next_action: ``dataset`` (one-step, SARSA) or ``policy`` (iterative).
    """

    def __init__(
        self,
        behavior: MixtureBehavior,
        critic: EnsembleQCritic,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        log_tau: float = 0.5,
        operator: str = "best",
        min_weight: float = 0.05,
        next_action: str = "dataset",
    ) -> None:
        super().__init__(behavior)
        if next_action not in NEXT_ACTIONS:
            raise ValueError(f"next_action '{next_action}'; choose one of {NEXT_ACTIONS}")
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.gamma, self.reward_scale = gamma, reward_scale
        self.log_tau, self.operator, self.min_weight = log_tau, operator, min_weight
        self.next_action = next_action
        self.keys = SACKeys()

    def q_lower_bound(self, observation: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """`u [B, N, A] -> mean - std of Q(s, tanh(u))`, with the critic's weights
        detached (its gradient reaches `u` only)."""
        params = [p.detach() for p in self.critic.parameters()]

        def q_fn(u: torch.Tensor) -> torch.Tensor:
            batch, num, act_dim = u.shape
            obs = observation.unsqueeze(1).expand(batch, num, observation.shape[-1])
            q = self.critic.forward_with(
                params, obs.reshape(batch * num, -1), torch.tanh(u).reshape(batch * num, act_dim)
            )
            return lower_bound(q).view(batch, num)

        return q_fn

    def policy_action(self, observation: torch.Tensor) -> torch.Tensor:
        """CFPI's improved action `[B, A]` in [-1, 1]."""
        mixture = self.behavior(observation)
        mixture = type(mixture)(*(x.detach() for x in mixture))
        u = improve(
            mixture, self.q_lower_bound(observation), self.log_tau, self.operator, self.min_weight
        )
        return torch.tanh(u)

    def forward(self, batch: TensorDictBase) -> TensorDict:
        out = super().forward(batch)
        reward, continuation = reward_and_continuation(batch, self.keys)
        next_obs = batch.get(("next", "observation"))
        if self.next_action == "dataset":
            next_action, weight = dataset_next_action(batch, continuation)
        else:
            next_action, weight = self.policy_action(next_obs), None
        with torch.no_grad():
            next_q = self.target_critic(next_obs, next_action)  # [E, B], each head its own
            target = self.reward_scale * reward + self.gamma * continuation * next_q
        q = self.critic(batch.get("observation"), batch.get("action"))
        out["loss_qvalue"] = ensemble_l2_loss(q, target, weight)
        out["q_mean"] = q.detach().mean()
        return out

    def update_targets(self, tau: float) -> None:
        polyak_update(self.target_critic, self.critic, tau)
