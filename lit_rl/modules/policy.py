"""Acting wrappers that turn an actor into a TensorDict policy for collectors."""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs.utils import ExplorationType, exploration_type

from lit_rl.nets.actors import TanhGaussianActor

_DETERMINISTIC = (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN)


def acting_deterministically() -> bool:
    """Whether TorchRL's current exploration type asks for deterministic actions
    (evaluation sets it; collection leaves it random). Shared by every acting rule."""
    return exploration_type() in _DETERMINISTIC


class GaussianActing(nn.Module):
    """Samples from the actor when exploring, takes `tanh(mu)` under a deterministic
    exploration type (TorchRL's ``set_exploration_type``), as SAC evaluates.

    The action is returned in float32 even under autocast, as env specs expect.
    """

    def __init__(self, actor: TanhGaussianActor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if acting_deterministically():
            action = self.actor.mode(observation)
        else:
            action = self.actor.explore(observation)
        return action.float()


def make_gaussian_policy(actor: TanhGaussianActor) -> TensorDictModule:
    """``observation -> action`` TensorDictModule around a squashed Gaussian actor."""
    return TensorDictModule(GaussianActing(actor), in_keys=["observation"], out_keys=["action"])
