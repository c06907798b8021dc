"""Replay buffers and their checkpointable state."""

from lit_rl.data.replay import make_replay_buffer, tensordict_from_state, tensordict_state
from lit_rl.data.replay_segments import ReplaySegments

__all__ = ["ReplaySegments", "make_replay_buffer", "tensordict_from_state", "tensordict_state"]
