"""Soft Actor-Critic on the off-policy engine. The math lives in `lit_rl.objectives.sac`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModuleBase

from lit_rl.errors import ConfigError
from lit_rl.modules.off_policy import OffPolicyModule
from lit_rl.modules.policy import ActingPolicy, GaussianActing, make_gaussian_policy
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
        compile: run the loss (forward and backward) and the acting rule through
            `torch.compile` ("reduce-overhead", i.e. CUDA graphs, on a GPU; inductor's
            default on a CPU, where it was slower than eager here: docs/engine.md).
            Compiled and eager updates agree to float tolerance (tests/test_compile.py).
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
        compile: bool = False,  # noqa: A002  (the recipe key the issue names: algo.compile)
        **kwargs,
    ) -> None:
        if compile and type(self).compute_losses is not SAC.compute_losses:
            raise ConfigError(
                f"algo.compile=true: {self.algo_name} computes its losses its own way; "
                "compiling covers the SAC loss only"
            )
        super().__init__(*args, **kwargs)

    def compile_mode(self) -> str:
        return "reduce-overhead" if self.device.type == "cuda" else "default"

    def compute_losses(self, batch):
        if not self.hparams.compile:
            return self.loss_module(batch)
        compiled = self.__dict__.get("_compiled_loss")
        if compiled is None:
            # kept out of the module tree: the compiled wrapper shares the loss module's
            # parameters and must not add a second copy of them to checkpoints
            compiled = torch.compile(self.loss_module, mode=self.compile_mode())
            self.__dict__["_compiled_loss"] = compiled
        return compiled(batch)

    def update(self, batch):
        losses = super().update(batch)
        if self.hparams.compile and self.device.type == "cuda":
            # Under CUDA graphs the gradients are the graph's output buffers, which the
            # next replay (acting, the next update) overwrites; a stale `.grad` left on a
            # parameter then fails whoever reads it later (Lightning's `.cpu()` at the
            # end of fit did). The step has used them: drop them now.
            for optimizer in self.update_optimizers():
                optimizer.zero_grad(set_to_none=True)
        return losses

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
        if not self.hparams.compile:
            return make_gaussian_policy(self.loss_module.actor)
        # one compiled acting rule per module: every policy made after (collection, each
        # evaluation) reuses its compiled code instead of compiling a new wrapper
        acting = self.__dict__.get("_compiled_acting")
        if acting is None:
            acting = torch.compile(GaussianActing(self.loss_module.actor), mode=self.compile_mode())
            self.__dict__["_compiled_acting"] = acting
        return ActingPolicy(acting)

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
