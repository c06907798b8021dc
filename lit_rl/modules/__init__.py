"""LightningModules: the off-policy engine and one thin file per algorithm."""

from lit_rl.modules.consistency import ConsistencyAC, ConsistencyBC
from lit_rl.modules.cvpo import CVPO
from lit_rl.modules.diffusion_ac import DPMD, SDAC, DPMDReleasedCode
from lit_rl.modules.loop import LOOP
from lit_rl.modules.loop_offline import LOOPOffline, LOOPOfflineConsistency
from lit_rl.modules.off_policy import OffPolicyModule
from lit_rl.modules.offline import BC, CFPI
from lit_rl.modules.sac import SAC
from lit_rl.modules.sac_lagrangian import SACLagrangian
from lit_rl.modules.safe_loop import SafeLOOP

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
    "sac_lagrangian": SACLagrangian,
    "cvpo": CVPO,
    "safe_loop": SafeLOOP,
}

__all__ = [
    "ALGORITHMS",
    "BC",
    "CFPI",
    "CVPO",
    "ConsistencyAC",
    "ConsistencyBC",
    "DPMD",
    "LOOP",
    "LOOPOffline",
    "LOOPOfflineConsistency",
    "SAC",
    "SACLagrangian",
    "SafeLOOP",
    "SDAC",
    "DPMDReleasedCode",
    "OffPolicyModule",
]
