"""Behaviour cloning: maximum likelihood of the dataset's actions."""

from __future__ import annotations

from tensordict import TensorDict, TensorDictBase
from torch import nn

from lit_rl.nets.behavior import MixtureBehavior


class BCLoss(nn.Module):
    """`loss_behavior`: the behaviour policy's negative log-likelihood of `action` given
    `observation` (pre-tanh space, see `lit_rl.nets.behavior`)."""

    def __init__(self, behavior: MixtureBehavior) -> None:
        super().__init__()
        self.behavior = behavior

    def forward(self, batch: TensorDictBase) -> TensorDict:
        nll = self.behavior.nll(batch.get("observation"), batch.get("action"))
        return TensorDict({"loss_behavior": nll}, batch_size=[])

    def update_targets(self, tau: float) -> None:
        """BC has no target networks."""
