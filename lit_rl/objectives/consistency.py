"""Consistency-BC and Consistency-AC losses (Ding and Jin, arXiv 2309.16984).

* Consistency-BC: consistency training of the policy on the dataset's actions
  (`lit_rl.nets.consistency`): `loss_consistency`.
* Consistency-AC, Diffusion-QL's recipe with a consistency policy:
  - twin critic regressing on `reward_scale * r + gamma (1 - term) min_k Q'_k(s', a')`,
    `a'` sampled from the EMA policy (`critic_target="policy"`, Diffusion-QL's), or the
    action the dataset took next (`"dataset"`: SARSA, the critic of the behaviour
    policy as in CFPI, which never bootstraps from actions outside the data)
    (`loss_qvalue`);
  - policy: `consistency_weight * loss_consistency + eta * (-Q_1(s, a) / mean|Q_2(s, a)|)`
    with `a` sampled from the policy, differentiated through the sampling chain and
    the critic's detached weights (`loss_actor_q`). Offline the consistency term keeps
    the policy on the data; online the paper drops it (weight 0: Q term only).
  - acting: `num_candidates` samples from the EMA policy, one drawn by softmax over
    their min-Q (Diffusion-QL's rule).
"""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from lit_rl.nets.conditional import softmax_choice
from lit_rl.nets.consistency import CT_VARIANTS, ConsistencyPolicy
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.cuda_graphs import GraphedCall
from lit_rl.objectives.sac import SACKeys, ensemble_l2_loss, reward_and_continuation
from lit_rl.objectives.sarsa import dataset_next_action
from lit_rl.objectives.targets import polyak_update

CRITIC_TARGETS = ("policy", "dataset")


class ConsistencyBCLoss(nn.Module):
    """`loss_consistency` of the dataset's actions; keeps the EMA policy that is both the
    training target and the acting policy.

    Args:
        policy: the consistency policy.
        variant: consistency training, ``improved`` (iCT: the target is the online
            network, gradient stopped) or ``original`` (the target is the EMA policy).
    """

    def __init__(self, policy: ConsistencyPolicy, variant: str = "improved") -> None:
        super().__init__()
        if variant not in CT_VARIANTS:
            raise ValueError(f"consistency training '{variant}'; choose one of {CT_VARIANTS}")
        self.policy = policy
        self.ema_policy = copy.deepcopy(policy).requires_grad_(False)
        self.variant = variant
        # `act` replayed from one CUDA graph per batch size (GPU acting; not a submodule)
        self.graphed_act = GraphedCall(self.act)

    def consistency_loss(self, batch: TensorDictBase, num_points: int) -> torch.Tensor:
        target = self.policy if self.variant == "improved" else self.ema_policy
        terms = self.policy.consistency_loss_terms(
            batch.get("observation"), batch.get("action"), target, num_points, self.variant
        )
        return terms.mean()

    def forward(self, batch: TensorDictBase, num_points: int = 2) -> TensorDict:
        return TensorDict(
            {"loss_consistency": self.consistency_loss(batch, num_points)}, batch_size=[]
        )

    @torch.no_grad()
    def act(self, observation: torch.Tensor) -> torch.Tensor:
        """One sample of the EMA policy per state: `[B, obs] -> [B, act]`."""
        return self.ema_policy.sample(observation, 1)[:, 0]

    def update_ema(self, rate: float) -> None:
        polyak_update(self.ema_policy, self.policy, rate)

    def update_targets(self, tau: float) -> None:
        """Consistency-BC has no critic; the EMA policy moves in `update_ema`."""


class ConsistencyACLoss(ConsistencyBCLoss):
    """`loss_qvalue` + `loss_consistency` (weighted) + `loss_actor_q`, summed into one
    backward: the critic's terms never reach the policy and the policy's terms see the
    critic's weights detached.

    Args:
        policy, critic: the consistency policy and the twin Q ensemble.
        gamma, reward_scale: critic target `reward_scale * r + gamma * ...`.
        eta: weight of the normalised Q term.
        consistency_weight: weight of the consistency (behaviour) term; 0 drops it.
        num_candidates: samples of the acting rule.
        variant: consistency training (see `ConsistencyBCLoss`).
        critic_target: where `a'` comes from: ``policy`` or ``dataset``.
    """

    def __init__(
        self,
        policy: ConsistencyPolicy,
        critic: EnsembleQCritic,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        eta: float = 1.0,
        consistency_weight: float = 1.0,
        num_candidates: int = 50,
        variant: str = "improved",
        critic_target: str = "policy",
    ) -> None:
        super().__init__(policy, variant)
        if critic_target not in CRITIC_TARGETS:
            raise ValueError(f"critic_target '{critic_target}'; choose one of {CRITIC_TARGETS}")
        self.critic_target = critic_target
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.gamma, self.reward_scale = gamma, reward_scale
        self.eta, self.consistency_weight = eta, consistency_weight
        self.num_candidates = num_candidates
        self.keys = SACKeys()

    def q_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """min over the ensemble of Q(s, a): `[*B, obs]`, `[*B, act]` -> `[*B]`."""
        flat_obs = observation.reshape(-1, observation.shape[-1])
        flat_act = action.reshape(-1, action.shape[-1])
        return self.critic(flat_obs, flat_act).min(0).values.reshape(action.shape[:-1])

    def critic_loss(self, batch: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        reward, continuation = reward_and_continuation(batch, self.keys)
        next_obs = batch.get(("next", "observation"))
        weight = None
        with torch.no_grad():
            if self.critic_target == "dataset":
                next_action, weight = dataset_next_action(batch, continuation)
            else:
                next_action = self.ema_policy.sample(next_obs, 1)[:, 0]
            next_q = self.target_critic(next_obs, next_action).min(0).values
            target = self.reward_scale * reward + self.gamma * continuation * next_q
        q = self.critic(batch.get("observation"), batch.get("action"))
        return ensemble_l2_loss(q, target, weight), q.detach().mean()

    def q_term(self, observation: torch.Tensor) -> torch.Tensor:
        """`-Q_1(s, a) / mean|Q_2(s, a)|` for `a` from the policy (Diffusion-QL's
        normalisation: the scale of Q does not set the step size)."""
        action = self.policy.sample(observation, 1)[:, 0]
        params = [p.detach() for p in self.critic.parameters()]
        q = self.critic.forward_with(params, observation, action)
        return -q[0].mean() / q[-1].abs().mean().detach().clamp_min(1e-6)

    def forward(self, batch: TensorDictBase, num_points: int = 2) -> TensorDict:
        loss_qvalue, q_mean = self.critic_loss(batch)
        out = TensorDict({"loss_qvalue": loss_qvalue, "q_mean": q_mean}, batch_size=[])
        if self.consistency_weight > 0:
            consistency = self.consistency_loss(batch, num_points)
            out["loss_consistency"] = self.consistency_weight * consistency
        if self.eta > 0:
            out["loss_actor_q"] = self.eta * self.q_term(batch.get("observation"))
        return out

    @torch.no_grad()
    def act(self, observation: torch.Tensor) -> torch.Tensor:
        """`num_candidates` EMA-policy samples per state, one chosen by softmax over min-Q."""
        candidates = self.ema_policy.sample(observation, self.num_candidates)
        repeated = observation.unsqueeze(1).expand(-1, self.num_candidates, -1)
        return softmax_choice(candidates, self.q_value(repeated, candidates))

    def update_targets(self, tau: float) -> None:
        polyak_update(self.target_critic, self.critic, tau)
