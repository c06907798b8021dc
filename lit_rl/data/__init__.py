"""Replay buffers and their checkpointable state."""

from lit_rl.data.replay import load_replay_state, make_replay_buffer, replay_state

__all__ = ["load_replay_state", "make_replay_buffer", "replay_state"]
