"""Run a small recipe under DDP and dump each rank's weights and counters (used by test_ddp.py).

Lightning's DDP launcher re-executes this script once per extra rank.
usage: python ddp_script.py RUN_DIR MAX_ENV_STEPS [CKPT|-] [OVERRIDES...]
The recipe is sac_pendulum unless the environment variable DDP_RECIPE names another.
DDP_NO_SMALL=1 leaves out conftest's small SAC-sized overrides (for non-SAC recipes, which
then pass their own sizes as OVERRIDES).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import PENDULUM, small_overrides  # noqa: E402

from lit_rl import run as run_module  # noqa: E402
from lit_rl.config import load_recipe  # noqa: E402
from lit_rl.run import build_callbacks  # noqa: E402


class DumpRankState(pl.Callback):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(
            {
                "state_dict": pl_module.state_dict(),
                "env_steps": pl_module.env_steps,
                "local_env_steps": pl_module.local_env_steps,
                "updates": pl_module.updates,
                "buffer_len": len(pl_module.replay_buffer),
                "first_obs": pl_module.replay_buffer.storage[0]["observation"],
            },
            self.run_dir / f"dump_rank{trainer.global_rank}.pt",
        )


def main() -> None:
    run_dir, max_env_steps = Path(sys.argv[1]), int(sys.argv[2])
    resume = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    extra = sys.argv[4:]
    cfg = load_recipe(
        os.environ.get("DDP_RECIPE", PENDULUM),
        (
            [f"run_dir={run_dir}"]
            if os.environ.get("DDP_NO_SMALL") == "1"
            else small_overrides(run_dir)
        )
        + [
            f"max_env_steps={max_env_steps}",
            "algo.warmup_steps=200",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            *extra,
        ],
    )
    original = run_module.build_callbacks
    run_module.build_callbacks = lambda c, m, d: [*original(c, m, d), DumpRankState(run_dir)]
    run_module.fit(cfg, resume=resume)


if __name__ == "__main__":
    assert build_callbacks is not None
    main()
