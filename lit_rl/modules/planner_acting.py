"""The acting rule of planning algorithms: a planner behind the TensorDict policy API."""

from __future__ import annotations

import time

import torch
from torch import nn

from lit_rl.modules.policy import acting_deterministically
from lit_rl.planning.planners import SequencePlanner


class PlannerActing(nn.Module):
    """`observation -> action` through a planner; resets its warm start at episode starts.

    Explores (ARC: samples by the MPPI weights) unless the exploration type is
    deterministic, as in evaluation.

    A planner holds no parameters of its own, so `ActingPolicy` cannot tell from it where
    to send observations: `device` is that of `computes_on`, the module whose networks
    the planner calls (held by reference, not registered, so it is not saved twice).
    """

    def __init__(self, planner: SequencePlanner, computes_on: nn.Module | None = None) -> None:
        super().__init__()
        self.planner = planner
        self._computes_on = (computes_on,)
        self.plan_seconds = 0.0
        self.plans = 0

    @property
    def device(self) -> torch.device | None:
        module = self._computes_on[0]
        tensor = None if module is None else next(module.parameters(), None)
        return None if tensor is None else tensor.device

    def forward(self, observation: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
        if bool(is_init.any()):
            self.planner.reset()
        start = time.perf_counter()
        with torch.no_grad():
            action = self.planner(observation, explore=not acting_deterministically())
        self.plan_seconds += time.perf_counter() - start
        self.plans += 1
        return action.float()

    def acting_state(self) -> dict:
        """The warm start a resumed run must continue from (the engine checkpoints it)."""
        return self.planner.state_dict()

    def load_acting_state(self, state: dict) -> None:
        self.planner.load_state_dict(state)
