"""A progress bar counted in env steps, with the numbers an RL run is watched by."""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import ProgressBar
from tqdm import tqdm


class EnvStepProgressBar(ProgressBar):
    """tqdm bar over the run's clock (env steps online, updates offline) showing env fps,
    updates/s, last episode return and
    the latest eval return. Replaces Lightning's batch-counted bar (the epoch is endless).
    """

    def __init__(self, refresh_every: int = 50) -> None:
        super().__init__()
        self.refresh_every = refresh_every
        self._enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.trainer.is_global_zero

    def on_train_start(self, trainer, pl_module) -> None:
        if not self.is_enabled:
            return
        self.bar = tqdm(
            total=pl_module.source.total(),
            initial=pl_module.progress,
            desc=f"{type(pl_module).__name__} {pl_module.hparams.env_id}",
            unit=" update" if pl_module.source.clock == "updates" else " step",
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0.1,
        )

    def postfix(self, trainer, pl_module) -> dict[str, str]:
        info = {"upd/s": f"{pl_module.updates_per_s:.0f}"}
        if pl_module.source.clock == "env_steps":
            info = {"fps": f"{pl_module.env_fps:.0f}", **info}
        if pl_module.last_episode_return is not None:
            info["ret"] = f"{pl_module.last_episode_return:.1f}"
        for callback in trainer.callbacks:
            last = getattr(callback, "last", None)
            if isinstance(last, dict) and "eval/return_mean" in last:
                info["eval"] = f"{last['eval/return_mean']:.1f}"
        return info

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None or batch_idx % self.refresh_every:
            return
        self.bar.n = min(pl_module.progress, self.bar.total)
        self.bar.set_postfix(self.postfix(trainer, pl_module), refresh=False)
        self.bar.refresh()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.n = min(pl_module.progress, self.bar.total)
            self.bar.set_postfix(self.postfix(trainer, pl_module), refresh=False)
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
