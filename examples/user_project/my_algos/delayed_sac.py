"""SAC whose actor and temperature learn every `actor_delay` updates (as TD3 delays its
actor). Run it with `algo.name: my_algos.delayed_sac:DelayedActorSAC` in a recipe."""

from __future__ import annotations

from lit_rl.modules import SAC


class DelayedActorSAC(SAC):
    def __init__(self, *args, actor_delay: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # every argument becomes a recipe key

    def range_checks(self) -> dict[str, bool]:
        return {**super().range_checks(), "actor_delay": self.hparams.actor_delay >= 1}

    def update(self, batch):
        losses = self.compute_losses(batch)  # loss_* terms (summed) and diagnostics
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        optimizer = self.optimizers()
        # zero_grad + backward, stopping every rank on a NaN/inf loss; every parameter
        # gets a gradient, so DDP stays in step
        self.checked_backward(losses, total, [optimizer])
        # `updates` is the same on every rank, so every rank skips the same updates
        if self.updates % self.hparams.actor_delay != 0:
            for param in [*self.loss_module.actor.parameters(), self.loss_module.log_alpha]:
                param.grad = None  # Adam leaves parameters without a gradient alone
        optimizer.step()
        return losses
