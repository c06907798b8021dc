"""Consistency policies on the engine: Consistency-BC (offline) and Consistency-AC
(offline, offline-to-online, online). The math lives in `lit_rl.objectives.consistency`
and `lit_rl.nets.consistency`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from lit_rl.errors import ConfigError
from lit_rl.modules.off_policy import BUFFER_KEYS, OffPolicyModule
from lit_rl.modules.policy import ActingPolicy, acting_deterministically
from lit_rl.nets.conditional import ConditionalMLP
from lit_rl.nets.consistency import CT_VARIANTS, ConsistencyPolicy, curriculum_points
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.consistency import CRITIC_TARGETS, ConsistencyACLoss, ConsistencyBCLoss


class ConsistencyActing(nn.Module):
    """The loss's acting rule; exploring adds Gaussian noise of std `noise` (online).

    On a GPU (with `cuda_graphs`, outside autocast) the rule replays from the loss's CUDA
    graph per batch size: sampling and the candidates' Q are ~30-60 small kernels whose
    launches, not arithmetic, set the latency (as for the diffusion policies).
    """

    def __init__(
        self,
        loss: ConsistencyBCLoss,
        noise: float,
        cuda_graphs: bool = True,
        one_sample: bool = False,
    ) -> None:
        super().__init__()
        self.loss, self.noise, self.cuda_graphs = loss, noise, cuda_graphs
        self.one_sample = one_sample

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        batched = observation.dim() > 1
        obs = observation if batched else observation.unsqueeze(0)
        graphs = self.cuda_graphs and obs.is_cuda and not torch.is_autocast_enabled("cuda")
        if self.one_sample:  # one EMA-policy sample, no choice by Q (Consistency-BC's rule)
            action = ConsistencyBCLoss.act(self.loss, obs)
        elif graphs:
            action = self.loss.graphed_act(obs)
        else:
            action = self.loss.act(obs)
        if not acting_deterministically() and self.noise > 0:
            action = (action + self.noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return (action if batched else action.squeeze(0)).float()


class ConsistencyBC(OffPolicyModule):
    """Consistency-BC (Ding and Jin, arXiv 2309.16984): consistency training of a policy
    on the dataset's actions; acts with one sample of the EMA policy.

    Args (besides the engine's):
        policy_hidden, activation: the network F (3x256 Mish, as the diffusion policies).
        policy_lr: Adam learning rate of the policy.
        sampling_steps: network calls per sampled action (2).
        curriculum_start, curriculum_end: CT's discretisation curriculum s0 -> s1 (2, 150)
            over the run's updates (`lit_rl.nets.consistency.curriculum_points`).
        consistency_training: ``improved`` (iCT, Song and Dhariwal 2023: lognormal noise
            pairs, pseudo-Huber, the online network as target) or ``original`` (CT of
            Song et al. 2023 with the EMA target, as the paper states it). Improved is
            the default because, measured on a bimodal dataset in 4000 updates, the
            original left half its samples between the modes (tests/test_consistency.py).
        ema_rate: Polyak rate of the EMA policy, the acting policy and the original CT's
            target (0.005, i.e. EMA decay 0.995).
        sigma_data, sigma_min, sigma_max, rho: the consistency parametrisation (0.5,
            0.002, 80, 7).
        explore_noise: Gaussian noise added to actions when collecting (online).
        cuda_graphs: on a GPU, replay the acting rule from CUDA graphs (see
            `ConsistencyActing`).
        lr_decay: anneal every learning rate to 0 over the run on a cosine (the
            authors' released offline script runs with ``--lr_decay``); the late
            updates then barely move the networks.
        grad_norm: clip the gradient norm of each network (policy, critic) to this
            before the step (the released per-task ``gn``, 9 on HalfCheetah/Hopper
            medium); None: no clipping.
    """

    algo_name = "consistency_bc"
    requires_dataset = True

    def __init__(
        self,
        *args,
        policy_hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        policy_lr: float = 3e-4,
        sampling_steps: int = 2,
        curriculum_start: int = 2,
        curriculum_end: int = 150,
        consistency_training: str = "improved",
        ema_rate: float = 0.005,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        explore_noise: float = 0.0,
        cuda_graphs: bool = True,
        lr_decay: bool = False,
        grad_norm: float | None = None,
        **kwargs,
    ) -> None:
        if consistency_training not in CT_VARIANTS:
            raise ConfigError(
                f"algo.consistency_training='{consistency_training}'; "
                f"choose one of {', '.join(CT_VARIANTS)}"
            )
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "policy_lr": hp.policy_lr > 0,
            "sampling_steps": hp.sampling_steps >= 1,
            "curriculum_start": hp.curriculum_start >= 2,
            "curriculum_end": hp.curriculum_end >= hp.curriculum_start,
            "ema_rate": 0 < hp.ema_rate <= 1,
            "sigma_data": hp.sigma_data > 0,
            "sigma_min": hp.sigma_min > 0,
            "sigma_max": hp.sigma_max > hp.sigma_min,
            "rho": hp.rho > 0,
            "explore_noise": hp.explore_noise >= 0,
            "grad_norm": hp.grad_norm is None or hp.grad_norm > 0,
        }

    def make_policy_net(self) -> ConsistencyPolicy:
        hp = self.hparams
        net = ConditionalMLP(hp.obs_dim, hp.act_dim, hp.policy_hidden, hp.activation)
        return ConsistencyPolicy(
            net, hp.sampling_steps, hp.sigma_data, hp.sigma_min, hp.sigma_max, hp.rho
        )

    def make_loss(self) -> nn.Module:
        return ConsistencyBCLoss(self.make_policy_net(), self.hparams.consistency_training)

    def make_policy(self) -> TensorDictModuleBase:
        hp = self.hparams
        return ActingPolicy(ConsistencyActing(self.loss_module, hp.explore_noise, hp.cuda_graphs))

    def consistency_points(self, updates: int) -> int:
        """Karras boundaries of consistency training at update `updates`."""
        hp = self.hparams
        total = self.total_updates(self.world_size)
        return curriculum_points(updates, total, hp.curriculum_start, hp.curriculum_end)

    def lr_factor(self, updates: int) -> float:
        """Learning rate / its recipe value at update `updates` (0-based): 1 without
        `lr_decay`, else `(1 + cos(pi u / U)) / 2` over the run's U updates (positive at
        its last update, 0 after it)."""
        if not self.hparams.lr_decay:
            return 1.0
        total = max(self.total_updates(self.world_size), 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(updates, total - 1) / total))

    def schedules(self, updates: int) -> dict[str, float]:
        factor = self.lr_factor(updates)
        rates = {f"{group['name']}_lr": group["lr"] * factor for group in self.param_groups()}
        return {"consistency_points": self.consistency_points(updates), **rates}

    def compute_losses(self, batch: TensorDictBase) -> TensorDictBase:
        return self.loss_module(batch, num_points=self.consistency_points(self.updates))

    def before_optimizer_step(self) -> None:
        if self.hparams.grad_norm is not None:
            # the optimizer's own groups: one per network, no parameter lists rebuilt per update
            for group in self.update_optimizers()[0].param_groups:
                torch.nn.utils.clip_grad_norm_(group["params"], self.hparams.grad_norm)

    def after_update(self) -> None:
        super().after_update()
        self.loss_module.update_ema(self.hparams.ema_rate)
        if self.hparams.lr_decay:
            self.lr_schedulers().step()

    def param_groups(self) -> list[dict]:
        """One Adam group per network, named (`schedules` reports `<name>_lr`)."""
        policy = self.loss_module.policy
        return [
            {"params": list(policy.parameters()), "lr": self.hparams.policy_lr, "name": "policy"}
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        # one fused Adam with a group per network: one step per update
        optimizer = torch.optim.Adam(self.param_groups(), fused=True)
        if not self.hparams.lr_decay:
            return optimizer
        # stepped once per update (`after_update`): its count is `updates`, and Lightning
        # checkpoints it with the optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class ConsistencyAC(ConsistencyBC):
    """Consistency-AC (Ding and Jin): a twin critic and a consistency policy trained on
    `consistency_weight * consistency loss + eta * (-Q / mean|Q|)`; acts by drawing one of
    `num_candidates` samples by softmax over Q. Offline with `dataset=`, online without,
    offline-to-online with `init_from=`.

    Args (besides Consistency-BC's and the engine's):
        critic_hidden: the twin critic (3x256 Mish).
        critic_lr, gamma, reward_scale: its Adam rate and target.
        eta: weight of the Q term (1.0).
        consistency_weight: weight of the consistency term; None: 1 when the run has a
            dataset (offline, or offline-to-online whose buffer starts with it), 0 online
            from scratch (the paper's online setting: Q term only).
        num_candidates: samples per acting decision (50).
        critic_target: the next action of the critic's target, ``policy`` (an EMA-policy
            sample, the paper's) or ``dataset`` (SARSA: offline only, the critic of the
            behaviour policy; see `lit_rl.objectives.consistency`).
    """

    algo_name = "consistency_ac"
    requires_dataset = False

    def __init__(
        self,
        *args,
        critic_hidden: Sequence[int] = (256, 256, 256),
        critic_lr: float = 3e-4,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        eta: float = 1.0,
        consistency_weight: float | None = None,
        num_candidates: int = 50,
        critic_target: str = "policy",
        **kwargs,
    ) -> None:
        if critic_target not in CRITIC_TARGETS:
            raise ConfigError(
                f"algo.critic_target='{critic_target}'; choose one of {', '.join(CRITIC_TARGETS)}"
            )
        super().__init__(*args, **kwargs)
        if critic_target == "dataset" and self.hparams.dataset is None:
            raise ConfigError("algo.critic_target=dataset needs a dataset (offline runs only)")

    def dataset_keys(self) -> tuple:
        if self.hparams.critic_target == "dataset":
            return (*BUFFER_KEYS, ("next", "action"), ("next", "has_action"))
        return super().dataset_keys()

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        weight = hp.consistency_weight
        return {
            **super().range_checks(),
            "critic_lr": hp.critic_lr > 0,
            "eta": hp.eta >= 0,
            "consistency_weight": weight is None or weight >= 0,
            "num_candidates": hp.num_candidates >= 1,
            "gamma": 0 <= hp.gamma <= 1,
        }

    def resolved_consistency_weight(self) -> float:
        hp = self.hparams
        if hp.consistency_weight is not None:
            return float(hp.consistency_weight)
        return 1.0 if hp.dataset is not None or hp.init_from is not None else 0.0

    def make_loss(self) -> ConsistencyACLoss:
        hp = self.hparams
        critic = EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, 2, hp.activation)
        return ConsistencyACLoss(
            self.make_policy_net(),
            critic,
            gamma=hp.gamma,
            reward_scale=hp.reward_scale,
            eta=hp.eta,
            consistency_weight=self.resolved_consistency_weight(),
            num_candidates=hp.num_candidates,
            variant=hp.consistency_training,
            critic_target=hp.critic_target,
        )

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        """The acting rule (`eval/return_mean`) and the policy alone, one EMA sample
        without the choice by Q (`eval/one_sample_return_mean`): where the critic's errors
        steer the choice, the two part (docs/consistency.md)."""
        noise = self.hparams.explore_noise
        one_sample = ConsistencyActing(self.loss_module, noise, one_sample=True)
        return {"": self.make_policy(), "one_sample": ActingPolicy(one_sample)}

    def param_groups(self) -> list[dict]:
        critic = self.loss_module.critic
        return [
            *super().param_groups(),
            {"params": list(critic.parameters()), "lr": self.hparams.critic_lr, "name": "critic"},
        ]
