"""Run a small recipe under DDP and dump each rank's weights and counters (used by test_ddp.py).

Lightning's DDP launcher re-executes this script once per extra rank.
usage: python ddp_script.py RUN_DIR MAX_ENV_STEPS [CKPT|-] [OVERRIDES...]
DDP_DATASET=FILE runs bc_pendulum offline on FILE instead (MAX_ENV_STEPS: max_updates).
The recipe is sac_pendulum unless the environment variable DDP_RECIPE names another.
DDP_NO_SMALL=1 leaves out conftest's small SAC-sized overrides (for non-SAC recipes, which
then pass their own sizes as OVERRIDES).
Faults: DDP_NAN_RANK=r and DDP_NAN_AT=u make SAC's critic loss NaN on rank r only at
update u (each rank then prints "rank R: <error>" and exits 3); DDP_PID_DIR=D makes each
rank write its pid to D/pid_rank<r> once training starts (so a test can signal one rank).
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
from lit_rl.errors import NonFiniteLossError  # noqa: E402
from lit_rl.modules import ALGORITHMS, SAC  # noqa: E402
from lit_rl.run import build_callbacks  # noqa: E402


class NaNOnOneRankSAC(SAC):
    """SAC whose rewards turn NaN on rank DDP_NAN_RANK at update DDP_NAN_AT."""

    def update(self, batch):
        if self.global_rank == int(os.environ["DDP_NAN_RANK"]) and self.updates == int(
            os.environ["DDP_NAN_AT"]
        ):
            batch = batch.clone()
            reward = batch.get(("next", "reward"))
            batch.set(("next", "reward"), torch.full_like(reward, float("nan")))
        return super().update(batch)


class WritePid(pl.Callback):
    def __init__(self, pid_dir: Path) -> None:
        self.pid_dir = pid_dir

    def on_train_start(self, trainer, pl_module) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        (self.pid_dir / f"pid_rank{trainer.global_rank}").write_text(str(os.getpid()))


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
                # the next batch this rank would sample (ranks draw their own batches)
                "next_batch_obs": pl_module.replay_buffer.sample()["observation"],
            },
            self.run_dir / f"dump_rank{trainer.global_rank}.pt",
        )


def main() -> None:
    run_dir, max_env_steps = Path(sys.argv[1]), int(sys.argv[2])
    resume = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    extra = sys.argv[4:]
    if "DDP_DATASET" in os.environ:  # offline: MAX_ENV_STEPS is the update budget
        cfg = load_recipe(
            str(Path(__file__).parents[1] / "recipes" / "bc_pendulum.yaml"),
            [
                f"run_dir={run_dir}",
                f"dataset={os.environ['DDP_DATASET']}",
                "env.id=Pendulum-v1",
                f"max_updates={max_env_steps}",
                "algo.behavior_hidden=[32,32]",
                "algo.batch_size=32",
                "algo.updates_per_step=1",
                "eval.episodes=1",
                "env.max_episode_steps=50",
                "progress_bar=false",
                "logger=[csv]",
                "trainer.accelerator=cpu",
                "trainer.devices=2",
                "trainer.strategy=ddp",
                *extra,
            ],
        )
        return fit_with_dumps(cfg, run_dir, resume)
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
    fit_with_dumps(cfg, run_dir, resume)


def fit_with_dumps(cfg: dict, run_dir: Path, resume: str | None) -> None:
    extra_callbacks = [DumpRankState(run_dir)]
    if "DDP_PID_DIR" in os.environ:
        extra_callbacks.append(WritePid(Path(os.environ["DDP_PID_DIR"])))
    if "DDP_NAN_RANK" in os.environ:
        ALGORITHMS["sac"] = NaNOnOneRankSAC
    original = run_module.build_callbacks
    run_module.build_callbacks = lambda c, m, d: [*original(c, m, d), *extra_callbacks]
    try:
        run_module.fit(cfg, resume=resume)
    except NonFiniteLossError as err:
        rank = os.environ.get("LOCAL_RANK", "0")
        print(f"rank {rank}: {err}", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    assert build_callbacks is not None
    main()
