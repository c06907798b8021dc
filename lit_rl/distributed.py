"""Small collective decisions that keep DDP ranks in lock-step."""

from __future__ import annotations

import torch


def any_rank_true(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on any rank (an all-reduce of one integer; rank-local
    without a process group)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())
