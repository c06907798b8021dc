"""Environments: TorchRL envs built from Gymnasium ids, and their checkpointable state."""

from lit_rl.envs.lean import GymnasiumEnv
from lit_rl.envs.make import check_env_id, make_env
from lit_rl.envs.snapshot import restore_env_state, snapshot_env_state

__all__ = [
    "GymnasiumEnv",
    "check_env_id",
    "make_env",
    "restore_env_state",
    "snapshot_env_state",
]
