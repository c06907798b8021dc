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


def algorithm_class(name: str, what: str = "algo.name") -> type[OffPolicyModule]:
    """The class a recipe's `algo.name` names: a registered name (`sac`, `dpmd`, ...) or a
    user's class as `package.module:ClassName` (a subclass of `OffPolicyModule`)."""
    from lit_rl.errors import ConfigError
    from lit_rl.user_code import load_object

    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if not isinstance(name, str) or ":" not in name:
        raise ConfigError(
            f"unknown {what} {name!r}; available: {', '.join(sorted(ALGORITHMS))}, "
            "or your own class as package.module:ClassName"
        )
    cls = load_object(name, what)
    if not (isinstance(cls, type) and issubclass(cls, OffPolicyModule)):
        raise ConfigError(f"{what} {name!r} is not a lit_rl algorithm (an OffPolicyModule class)")
    return cls


def algorithm_name(cls: type[OffPolicyModule]) -> str:
    """What recipes and checkpoints call `cls`: its registered name, else
    `module:ClassName` (so a user's subclass of SAC is not reloaded as SAC)."""
    if cls.algo_name is not None and ALGORITHMS.get(cls.algo_name) is cls:
        return cls.algo_name
    return f"{cls.__module__}:{cls.__qualname__}"


__all__ = [
    "ALGORITHMS",
    "algorithm_class",
    "algorithm_name",
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
