"""LightningModules: the off-policy engine and one thin file per algorithm."""

from lit_rl.modules.diffusion_ac import DPMD, SDAC, DPMDReleasedCode
from lit_rl.modules.loop import LOOP
from lit_rl.modules.off_policy import OffPolicyModule
from lit_rl.modules.offline import BC, CFPI
from lit_rl.modules.sac import SAC

ALGORITHMS: dict[str, type[OffPolicyModule]] = {
    "sac": SAC,
    "dpmd": DPMD,
    "dpmd_released_code": DPMDReleasedCode,
    "sdac": SDAC,
    "loop": LOOP,
    "bc": BC,
    "cfpi": CFPI,
}

__all__ = [
    "ALGORITHMS",
    "BC",
    "CFPI",
    "DPMD",
    "LOOP",
    "SAC",
    "SDAC",
    "DPMDReleasedCode",
    "OffPolicyModule",
]
