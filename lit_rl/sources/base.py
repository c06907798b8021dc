"""The engine's data seam: what a source of batches must do for the one training loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lit_rl.modules.off_policy import OffPolicyModule


class DataSource:
    """Fills `module.replay_buffer` and says when the next update may run.

    The engine's loop is the same for every source: `start` at fit start, then before
    each update `ready_for_update()` (False ends the run), `module.update(buffer.sample())`,
    and after the last update `finished()`. A source also names the run's progress
    clock (`clock`: env steps online, updates offline), which evaluation, checkpoints
    and the progress bar count in, and checkpoints what it owns per rank.
    """

    clock: str = "env_steps"

    def __init__(self, module: OffPolicyModule) -> None:
        self.module = module

    def start(self) -> None:
        """Build the replay buffer (and whatever feeds it) at fit start."""
        raise NotImplementedError

    def stop(self) -> None:
        """Release what `start` built (processes, envs)."""

    def ready_for_update(self) -> bool:
        """Make the data the next update needs; False once the run's budget is spent."""
        raise NotImplementedError

    def finished(self) -> bool:
        """Whether the run is complete (checked after each training step)."""
        raise NotImplementedError

    def progress(self) -> int:
        """The run's clock now (global env steps, or updates)."""
        raise NotImplementedError

    def total(self) -> int:
        """The clock's value at the end of the run."""
        raise NotImplementedError

    def total_updates(self, world_size: int = 1) -> int:
        """Updates the whole run does (per rank)."""
        raise NotImplementedError

    def updates_per_clock_tick(self) -> float:
        """Updates per unit of the clock (converts checkpoint periods to updates)."""
        return 1.0

    def rank_state(self) -> dict[str, Any]:
        """What this rank must write beside a checkpoint (tensors and plain values)."""
        return {}

    def load_rank_state(self, saved: dict[str, Any]) -> None:
        """Restore `rank_state()` after `start` (on resume)."""
