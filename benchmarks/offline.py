"""Gradient updates/s of offline BC and CFPI: lit_rl's engine (Lightning Trainer, dataset
source, TorchRL replay buffer) versus a plain PyTorch loop that indexes the same tensors
with the same networks, losses and optimizer. All in this one run.

    python benchmarks/offline.py                       # 1M transitions, Hopper-v5 shapes
    python benchmarks/offline.py --rows 100000 --updates 1000

The dataset is synthetic (random values, Hopper-v5 shapes) and written in the D4RL
layout, so the engine reads it as a user's file. Timings start after the first
`--skip` updates (allocation, first-call costs). Each contender runs once per round, in
turn, and its best round is reported. Target (issue #13): lit_rl / plain >= 0.95.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import lightning.pytorch as pl
import numpy as np
import torch

from lit_rl.config import load_recipe
from lit_rl.data.datasets import load_dataset
from lit_rl.run import build_module

ENV_ID = "Hopper-v5"
OBS_DIM, ACT_DIM = 11, 3


def write_dataset(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        file["observations"] = rng.normal(size=(rows, OBS_DIM)).astype(np.float32)
        file["next_observations"] = rng.normal(size=(rows, OBS_DIM)).astype(np.float32)
        file["actions"] = rng.uniform(-1, 1, size=(rows, ACT_DIM)).astype(np.float32)
        file["rewards"] = rng.normal(size=rows).astype(np.float32)
        file["terminals"] = rng.random(rows) < 0.001
        file["timeouts"] = (np.arange(rows) % 1000) == 999


class _Clock(pl.Callback):
    def __init__(self, skip: int) -> None:
        self.skip, self.start, self.start_updates = skip, None, 0

    def on_train_batch_end(self, trainer, module, *args) -> None:
        if self.start is None and module.updates >= self.skip:
            self.start, self.start_updates = time.perf_counter(), module.updates

    def on_train_end(self, trainer, module) -> None:
        self.rate = (module.updates - self.start_updates) / (time.perf_counter() - self.start)


def engine_rate(recipe: str, dataset: Path, updates: int, skip: int, device: str) -> float:
    cfg = load_recipe(
        recipe,
        [
            f"dataset={dataset}",
            f"env.id={ENV_ID}",
            f"max_updates={updates + skip}",
            f"eval.every_updates={10 * (updates + skip)}",
            f"checkpoint.every_updates={10 * (updates + skip)}",
            "logger=[]",
            "progress_bar=false",
            f"trainer.accelerator={device}",
        ],
    )
    with tempfile.TemporaryDirectory() as run_dir:
        module = build_module(cfg, Path(run_dir))
        clock = _Clock(skip)
        trainer = pl.Trainer(
            max_epochs=-1,
            logger=False,
            callbacks=[clock],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator=device,
            devices=1,
            default_root_dir=run_dir,
        )
        trainer.fit(module)
    return clock.rate


def plain_rate(recipe: str, dataset: Path, updates: int, skip: int, device: str) -> float:
    """The same module's loss and optimizer, driven by hand on indexed tensors."""
    cfg = load_recipe(recipe, [f"dataset={dataset}", f"env.id={ENV_ID}", "max_updates=1"])
    with tempfile.TemporaryDirectory() as run_dir:
        module = build_module(cfg, Path(run_dir)).to(device)
    data = load_dataset(str(dataset), ENV_ID).transitions
    data = data.select(*[k for k in module.dataset_keys() if k in data.keys(True)]).to(device)
    loss_module = module.loss_module
    optimizer = module.configure_optimizers()
    rows, batch = data.batch_size[0], module.hparams.batch_size
    for step in range(updates + skip):
        if step == skip:
            start = time.perf_counter()
        index = torch.randint(rows, (batch,), device=device)
        losses = loss_module(data[index])
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        loss_module.update_targets(module.hparams.tau)
    if device == "cuda":
        torch.cuda.synchronize()
    return updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")
    with tempfile.TemporaryDirectory() as folder:
        dataset = Path(folder) / "hopper-synthetic.hdf5"
        write_dataset(dataset, args.rows)
        print(f"{args.rows} transitions ({ENV_ID} shapes), {args.updates} timed updates")
        for name in ("bc", "cfpi"):
            recipe = f"recipes/{name}_pendulum.yaml"
            best = {"lit_rl": 0.0, "plain": 0.0}
            for _ in range(args.rounds):
                run = (args.updates, args.skip, args.device)
                best["lit_rl"] = max(best["lit_rl"], engine_rate(recipe, dataset, *run))
                best["plain"] = max(best["plain"], plain_rate(recipe, dataset, *run))
            ratio = best["lit_rl"] / best["plain"]
            print(
                f"  {name:<5} lit_rl {best['lit_rl']:8.1f} updates/s   plain {best['plain']:8.1f}"
                f" updates/s   lit_rl / plain {ratio:5.2f} (target >= 0.95)"
            )


if __name__ == "__main__":
    main()
