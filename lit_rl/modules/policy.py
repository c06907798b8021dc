"""Acting wrappers that turn an actor into a TensorDict policy for collectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.envs.utils import ExplorationType, exploration_type, set_exploration_type

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


class ActingPolicy(TensorDictModuleBase):
    """A TensorDict policy: reads `in_keys`, calls `acting` on them, writes ``"action"``.

    Collectors call the policy once per env step, so it writes its output with one
    ``set`` instead of `TensorDictModule`'s generic output handling (which converts each
    output with ``TensorDict.from_any`` and, for a plain tensor, looks up whether pandas
    is importable: together about 0.14 ms a step here).

    Devices: inputs go to the device of `acting`'s parameters and the action comes back
    on the inputs' device. Envs step on the CPU, so collectors and evaluation rollouts
    hand CPU tensordicts to a policy trained on a GPU without any casting of their own.
    """

    def __init__(self, acting: nn.Module, in_keys: Sequence[str] = ("observation",)) -> None:
        super().__init__()
        self.acting = acting
        self.in_keys = list(in_keys)
        self.out_keys = ["action"]

    def acting_device(self) -> torch.device | None:
        """Where `acting` computes: its `device` if it names one (a planner), else its
        first parameter's (or buffer's) device.

        The first parameter is found once and kept: `Module.to` moves a parameter's
        data in place, so its `.device` stays current, while walking the module tree
        again on every env step cost ~0.1 ms (a third of SAC's acting on Hopper)."""
        device = getattr(self.acting, "device", None)
        if device is not None:
            return device
        probe = self.__dict__.get("_device_probe")
        if probe is None:
            probe = next(self.acting.parameters(), None)
            if probe is None:  # buffers are replaced, not moved, by `Module.to`: no cache
                buffer = next(self.acting.buffers(), None)
                return None if buffer is None else buffer.device
            self.__dict__["_device_probe"] = probe
        return probe.device

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        inputs = [tensordict.get(key) for key in self.in_keys]
        device, source = self.acting_device(), inputs[0].device
        if device is None or device == source:
            return tensordict.set("action", self.acting(*inputs))
        action = self.acting(*(x.to(device, non_blocking=True) for x in inputs))
        return tensordict.set("action", action.to(source))


def make_gaussian_policy(actor: TanhGaussianActor) -> ActingPolicy:
    """``observation -> action`` TensorDict policy around a squashed Gaussian actor."""
    return ActingPolicy(GaussianActing(actor))


def act_on_numpy(
    policy: TensorDictModuleBase,
    observation: np.ndarray,
    episode_start: bool,
    deterministic: bool,
    device: torch.device | None = None,
) -> np.ndarray:
    """One call of a TensorDict policy outside a collector: a NumPy observation `[obs]`
    or `[B, obs]` in, its action in [-1, 1] out (float32 NumPy). `episode_start` fills
    `is_init` (planners drop their warm start); `deterministic` picks the exploration
    type (evaluation's, or training's sampling). Used by `lit-rl collect`, evaluation
    videos and `lit_rl.load_policy`."""
    obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32)
    batch = obs.shape[:-1]
    td = TensorDict(
        {"observation": obs, "is_init": torch.full((*batch, 1), episode_start)},
        batch_size=batch,
    )
    mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    with torch.no_grad(), set_exploration_type(mode):
        action = policy(td if device is None else td.to(device)).get("action")
    return action.float().cpu().numpy()
