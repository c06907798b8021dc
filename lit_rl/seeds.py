"""Several seeds of one recipe from one command: `lit-rl run RECIPE seed=0,1,2`.

Each seed runs as its own `lit-rl run` process (one after another, or `--jobs N` at a
time, each with its share of the cores), in its own folder `runs/NAME/<stamp>_seed<S>`
with one stamp shared by the group, and the command that compares them is printed at the
end.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lit_rl.errors import ConfigError

SEED_LIST = re.compile(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*")


def parse_seeds(spec: str) -> list[int]:
    """`"0-4"` -> [0, 1, 2, 3, 4]; `"0,1,5"` -> [0, 1, 5]; a mix of both works too."""
    seeds: list[int] = []
    try:
        for part in spec.split(","):
            first, dash, last = part.strip().partition("-")
            low, high = int(first), int(last) if dash else int(first)
            if high < low:
                raise ValueError
            seeds.extend(range(low, high + 1))
    except ValueError:
        raise ConfigError(f"seeds '{spec}': write them as 0-4 or 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds '{spec}' name a seed twice")
    return seeds


def split_seed_override(overrides: Sequence[str]) -> tuple[list[str], list[int] | None]:
    """The overrides without `seed=...`, and the seeds it names (None if absent)."""
    rest, seeds = [], None
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "seed" and SEED_LIST.fullmatch(value) and ("," in value or "-" in value):
            seeds = parse_seeds(value)
        else:
            rest.append(item)  # one seed (or a bad value) is the recipe's to check
    return rest, seeds


def _command(recipe: str, overrides: Sequence[str], seed: int, run_dir: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from lit_rl.cli import main; sys.exit(main())",
        "run",
        recipe,
        *overrides,
        f"seed={seed}",
        f"run_dir={run_dir}",
    ]


def child_env(jobs: int) -> dict[str, str]:
    """The environment of each seed's process: with `jobs` at a time, each gets an equal
    share of the cores for torch's threads (unless OMP_NUM_THREADS is set). Processes that
    each start one thread per core compete for the cores: measured here, a small SAC run
    ran 10x slower beside one other busy process than alone."""
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def run_seeds(recipe: str, overrides: Sequence[str], seeds: Sequence[int], jobs: int) -> int:
    """Run `recipe` once per seed; returns the worst exit code (0 if all succeeded)."""
    from lit_rl.config import _now, _unique_suffix, load_recipe
    from lit_rl.recipe_paths import find_recipe

    path = find_recipe(recipe)
    cfg = load_recipe(path, [*overrides, f"seed={seeds[0]}"])  # checks it before any run
    custom_dir = any(item.partition("=")[0].strip() == "run_dir" for item in overrides)
    if custom_dir:
        base = Path(cfg["run_dir"]).parent / f"{Path(cfg['run_dir']).name}_seed"
    else:
        base = Path("runs") / cfg["name"] / f"{_now()}_{_unique_suffix()}_seed"
    folders = {seed: f"{base}{seed}" for seed in seeds}
    commands = {s: _command(str(path), overrides, s, d) for s, d in folders.items()}
    codes: dict[int, int] = {}
    running: dict[int, subprocess.Popen] = {}
    pending = list(seeds)
    print(f"lit-rl: {len(seeds)} seeds of {path}, {jobs} at a time", flush=True)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                print(f"lit-rl: seed {seed} -> {folders[seed]}", flush=True)
                running[seed] = subprocess.Popen(commands[seed], env=child_env(jobs))
            for seed, process in list(running.items()):
                if process.poll() is not None:
                    codes[seed] = process.returncode
                    del running[seed]
            time.sleep(0.2)
    except KeyboardInterrupt:  # the runs got Ctrl-C too: let them write last.ckpt
        for process in running.values():
            process.wait()
        print("lit-rl: interrupted; resume each run with lit-rl run --resume", file=sys.stderr)
        return 130
    failed = {seed: code for seed, code in codes.items() if code != 0}
    for seed, code in sorted(failed.items()):
        print(f"lit-rl: seed {seed} failed (exit {code}); see {folders[seed]}", file=sys.stderr)
    group = shlex.quote(f"{base}*")
    print(f"lit-rl: compare them with: lit-rl plot {group} --out {cfg['name']}.png", flush=True)
    return max(failed.values(), default=0)
