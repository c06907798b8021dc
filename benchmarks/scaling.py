"""Env steps/s of one recipe on 1 and on N DDP ranks, measured in this one run.

Each rank collects its own env steps and does its own updates at the recipe's UTD ratio
(`docs/engine.md`, "Counting"), so N ranks collect N times as many env steps per update
time, and each update all-reduces the gradients once. The ideal is N times the env steps
per second of one rank; what is lost goes to the all-reduce and to cores shared between
ranks. Each run gets the machine's cores split evenly among its ranks
(``OMP_NUM_THREADS = cores / ranks``): one rank uses every core, so the ratio says what
adding ranks buys on the same machine.

    python benchmarks/scaling.py                                  # sac_hopper, 1 vs 2 CPU ranks
    python benchmarks/scaling.py --ranks 1 2 4 --accelerator gpu --num-envs 4   # a GPU box

Env steps/s are the run's own `time/env_fps` (global env steps over wall time, logged
every `log_every_updates` updates), median over the logs after the first, so process
start, warm-up and the first compilation of kernels are left out. Target (issue 17):
>= 1.8x for 2 ranks where the machine has the cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def env_steps_per_s(run_dir: Path) -> float:
    """Median `time/env_fps` of a finished run's CSV, after its first log."""
    rates = []
    for metrics in run_dir.rglob("metrics.csv"):
        with metrics.open() as file:
            rates += [
                float(row["time/env_fps"])
                for row in csv.DictReader(file)
                if row.get("time/env_fps")
            ]
    if len(rates) < 2:
        raise RuntimeError(f"too few logs in {run_dir} to measure; raise --steps")
    return statistics.median(rates[1:])


def rank_threads(args: argparse.Namespace, ranks: int) -> int:
    """Threads per rank: `--threads-per-rank`, else the cores split evenly (1 on a GPU)."""
    if args.accelerator != "cpu":
        return 1
    return args.threads_per_rank or max(1, args.cores // ranks)


def run(args: argparse.Namespace, ranks: int, root: Path) -> float:
    """One `lit-rl run` on `ranks` DDP processes; returns its global env steps/s."""
    run_dir = root / f"ranks{ranks}"
    threads = rank_threads(args, ranks)
    warmup = args.warmup * ranks
    overrides = [
        f"run_dir={run_dir}",
        "progress_bar=false",
        "logger=[csv]",
        f"trainer.accelerator={args.accelerator}",
        f"trainer.devices={ranks}",
        f"trainer.strategy={'ddp' if ranks > 1 else 'auto'}",
        f"algo.num_envs={args.num_envs}",
        f"algo.warmup_steps={warmup}",
        f"max_env_steps={warmup + args.steps * ranks}",
        "eval.every_env_steps=1000000000",
        "checkpoint.every_env_steps=1000000000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    # `python -m lit_rl.cli` rather than the `lit-rl` script: it also runs from a source
    # tree on PYTHONPATH (a lent GPU machine), and DDP's launcher re-runs the same line
    result = subprocess.run(
        [sys.executable, "-m", "lit_rl.cli", "run", args.recipe, *overrides],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{ranks} ranks failed:\n{result.stderr[-3000:]}")
    return env_steps_per_s(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/sac_hopper.yaml")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="env steps per rank, timed")
    parser.add_argument("--warmup", type=int, default=300, help="random env steps per rank")
    parser.add_argument("--num-envs", type=int, default=1, help="envs per rank")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--threads-per-rank", type=int, default=0,
        help="give every rank this many threads instead of splitting --cores (a many-core "
        "machine: small updates run slower on 16 threads than on 2)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"{args.recipe}: {args.cores} cores, {args.accelerator}, {args.num_envs} env(s) per rank")
    with tempfile.TemporaryDirectory() as tmp:
        rates = {ranks: run(args, ranks, Path(tmp)) for ranks in args.ranks}
    base = rates[args.ranks[0]]
    for ranks, rate in rates.items():
        threads = rank_threads(args, ranks) if args.accelerator == "cpu" else "-"
        print(
            f"{ranks} rank(s) x {threads} thread(s): {rate:7.1f} env steps/s | "
            f"{rate / base:.2f}x of {args.ranks[0]} rank(s) (ideal {ranks / args.ranks[0]:.0f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
