"""Soft Actor-Critic on the off-policy engine. The math lives in `lit_rl.objectives.sac`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModuleBase

from lit_rl.errors import ConfigError, NonFiniteLossError
from lit_rl.modules.off_policy import OffPolicyModule, first_non_finite, summed_loss
from lit_rl.modules.policy import ActingPolicy, GaussianActing, make_gaussian_policy
from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.cuda_graphs import GraphedStep
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

    def on_fit_start(self) -> None:
        # a fit has its own trainer and optimizer: decide and capture again
        self.__dict__.pop("_graphs_whole_update", None)
        self.__dict__.pop("_graphed_update", None)
        super().on_fit_start()

    def graphs_whole_update(self) -> bool:
        """Whether `algo.compile` replays the whole update from one CUDA graph: on one
        GPU, in full precision, with one optimizer and no hook between backward and step.
        Elsewhere (DDP's all-reduce, a gradient scaler, a subclass's hooks) only the loss
        is compiled."""
        trainer = self._trainer
        return (
            self.hparams.compile
            and self.device.type == "cuda"
            and self.world_size == 1
            and trainer is not None
            and str(trainer.precision) in ("32-true", "32")
            and len(self.update_optimizers()) == 1
            and self.lr_schedulers() is None  # a captured step keeps the lr it was recorded with
            and type(self).before_optimizer_step is OffPolicyModule.before_optimizer_step
        )

    def graphed_update(self, batch):
        """One update replayed from a CUDA graph (`GraphedStep`): losses, backward and the
        Adam step in ~0.65 ms instead of ~1.8 ms with the loss compiled (H100, HalfCheetah
        shapes). Lightning's step counting is kept; its optimizer wrapper runs once, at
        capture. The NaN check reads the losses after the replay, so a non-finite loss
        stops the run after its step was applied (to weights that are then not saved)."""
        (wrapped,) = self.update_optimizers()
        graphed = self.__dict__.get("_graphed_update")
        if graphed is None:
            optimizer = wrapped.optimizer
            for group in optimizer.param_groups:
                group["capturable"] = True  # its step count stays on the GPU

            def step(static_batch):
                losses = self.loss_module(static_batch)
                summed_loss(losses).backward()
                optimizer.step()
                return losses.detach()

            trained = [p for p in self.loss_module.parameters() if p.requires_grad]
            graphed = GraphedStep(step, trained, optimizer)
            self.__dict__["_graphed_update"] = graphed  # out of the module tree
        wrapped._on_before_step()  # Lightning's optimizer-step count (global_step)
        losses = graphed(batch)
        wrapped._on_after_step()
        bad = first_non_finite(losses)
        if bad is not None:
            raise NonFiniteLossError(bad[0], bad[1], self.updates)
        return losses

    def update(self, batch):
        graphed = self.__dict__.get("_graphs_whole_update")
        if graphed is None:  # decided at the first update of a fit: nothing in it changes
            graphed = self.__dict__["_graphs_whole_update"] = self.graphs_whole_update()
        losses = self.graphed_update(batch) if graphed else super().update(batch)
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
