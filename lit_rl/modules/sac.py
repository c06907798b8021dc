"""Soft Actor-Critic on the off-policy engine. The math lives in `lit_rl.objectives.sac`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModuleBase

from lit_rl.modules.off_policy import OffPolicyModule
from lit_rl.modules.policy import make_gaussian_policy
from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.sac import SACLoss


class SAC(OffPolicyModule):
    """SAC with automatic temperature tuning (Haarnoja et al. 2018, arXiv 1812.05905).

    Args (besides the engine's, see `OffPolicyModule`):
        actor_hidden, critic_hidden: hidden layer sizes (2x256 in the paper).
        activation: hidden activation.
        num_qs: critics in the ensemble (2 = clipped double-Q).
        gamma: discount.
        actor_lr, critic_lr, alpha_lr: Adam learning rates.
        init_alpha: initial temperature.
        target_entropy: `None` means `-act_dim`.
        reward_scale: multiplies rewards in the critic target.
    """

    algo_name = "sac"
    loss_class: type[SACLoss] = SACLoss  # swap in a variant's loss without touching the wiring

    def __init__(
        self,
        *args,
        actor_hidden: Sequence[int] = (256, 256),
        critic_hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        num_qs: int = 2,
        gamma: float = 0.99,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        init_alpha: float = 1.0,
        target_entropy: float | None = None,
        reward_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)

    def make_loss(self) -> SACLoss:
        hp = self.hparams
        actor = TanhGaussianActor(hp.obs_dim, hp.act_dim, hp.actor_hidden, hp.activation)
        critic = EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, hp.num_qs, hp.activation)
        return self.loss_class(
            actor,
            critic,
            gamma=hp.gamma,
            init_alpha=hp.init_alpha,
            target_entropy=hp.target_entropy,
            reward_scale=hp.reward_scale,
        )

    def make_policy(self) -> TensorDictModuleBase:
        return make_gaussian_policy(self.loss_module.actor)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # One optimizer with a group per role: one step per update keeps global_step equal
        # to the update count; fused Adam runs all groups in one kernel.
        loss = self.loss_module
        groups = [
            {"params": list(loss.actor.parameters()), "lr": self.hparams.actor_lr, "name": "actor"},
            {
                "params": list(loss.critic.parameters()),
                "lr": self.hparams.critic_lr,
                "name": "critic",
            },
            {"params": [loss.log_alpha], "lr": self.hparams.alpha_lr, "name": "alpha"},
        ]
        return torch.optim.Adam(groups, fused=True)
