"""Target-network updates."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """`target <- (1 - tau) * target + tau * source`, for all parameters at once.

    Same rule as TorchRL's ``SoftUpdate(eps=1 - tau)``, done with one fused
    ``_foreach_lerp_`` so it costs microseconds instead of a Python loop.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    target_params = list(target.parameters())
    source_params = list(source.parameters())
    torch._foreach_lerp_(target_params, source_params, tau)
