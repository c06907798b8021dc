"""Loss modules: TensorDict in, TensorDict of `loss_*` terms (and detached diagnostics) out."""

from lit_rl.objectives.sac import SACLoss
from lit_rl.objectives.targets import polyak_update

__all__ = ["SACLoss", "polyak_update"]
