"""LightningModules: the off-policy engine and one thin file per algorithm."""

from lit_rl.modules.consistency import ConsistencyAC, ConsistencyBC
from lit_rl.modules.diffusion_ac import DPMD, SDAC, DPMDReleasedCode
from lit_rl.modules.loop import LOOP
from lit_rl.modules.loop_offline import LOOPOffline, LOOPOfflineConsistency
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
    "consistency_bc": ConsistencyBC,
    "consistency_ac": ConsistencyAC,
    "loop_offline": LOOPOffline,
    "loop_offline_consistency": LOOPOfflineConsistency,
}

__all__ = [
    "ALGORITHMS",
    "BC",
    "CFPI",
    "ConsistencyAC",
    "ConsistencyBC",
    "DPMD",
    "LOOP",
    "LOOPOffline",
    "LOOPOfflineConsistency",
    "SAC",
    "SDAC",
    "DPMDReleasedCode",
    "OffPolicyModule",
]
