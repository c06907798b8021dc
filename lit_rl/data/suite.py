"""Build the standard offline dataset qualities from one of our own training runs.

As D4RL made its Gym-MuJoCo datasets (Fu et al. 2020, section 5), from one SAC run:

    random          a uniform random policy
    expert          the run's final policy
    medium          the run's checkpoint closest to `medium_score` (a third of the way
                    from random to expert return), by its evaluation and then by its
                    own rollouts (`pick_medium`)
    medium-replay   the run's replay buffer up to that checkpoint (warm-up included)
    medium-expert   medium and expert concatenated

Each file stores the reference returns `R_random` (the random dataset's mean episode
return) and `R_expert` (the expert dataset's), from which offline runs log
`eval/normalized_score = 100 (R - R_random) / (R_expert - R_random)`. Policies act as in
training (stochastic). `summary.json` lists every file with its normalised score.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_rl.data.collect import (
    StepTable,
    module_actor,
    random_actor,
    rollout_steps,
    write_hdf5,
)
from lit_rl.data.datasets import normalized_score
from lit_rl.errors import ConfigError

QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")
MEDIUM_TOLERANCE = 10.0  # normalised points between the medium policy and its target
MAX_MEDIUM_PROBES = 8


def replay_table(rows, upto: int) -> StepTable:
    """The first `upto` replay rows (one env, in collection order) as a step table."""
    rows = rows[:upto]
    terminals = rows.get(("next", "terminated")).reshape(-1).cpu().numpy().astype(bool)
    timeouts = rows.get(("next", "done")).reshape(-1).cpu().numpy().astype(bool) & ~terminals
    timeouts[-1] |= not terminals[-1]  # the buffer is cut here
    rewards = rows.get(("next", "reward")).reshape(-1).cpu().numpy()
    ends = np.flatnonzero(terminals | timeouts)
    starts = np.concatenate([[0], ends[:-1] + 1])
    returns = [float(rewards[s : e + 1].sum()) for s, e in zip(starts, ends, strict=True)]
    return StepTable(
        observations=rows.get("observation").cpu().numpy(),
        actions=rows.get("action").cpu().numpy(),
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        next_observations=rows.get(("next", "observation")).cpu().numpy(),
        costs=None,
        episode_returns=returns,
    )


def concatenate(*tables: StepTable) -> StepTable:
    costs = [t.costs for t in tables]
    return StepTable(
        *(np.concatenate([getattr(t, f) for t in tables]) for f in (
            "observations", "actions", "rewards", "terminals", "timeouts", "next_observations"
        )),
        costs=None if any(c is None for c in costs) else np.concatenate(costs),
        episode_returns=[r for t in tables for r in t.episode_returns],
    )  # fmt: skip


def eval_curve(run_dir: Path) -> dict[int, float]:
    """`{env_steps: eval/return_mean}` of a finished run."""
    with (run_dir / "metrics.csv").open() as file:
        return {
            int(float(row["env_steps"])): float(row["eval/return_mean"])
            for row in csv.DictReader(file)
            if row.get("eval/return_mean")
        }


def medium_candidates(run_dir: Path, random_return: float, expert_return: float, score: float):
    """`(checkpoint, eval score, env steps)` of the run's evaluated checkpoints, nearest to
    normalised `score` (percent) first."""
    from lit_rl.modules.state import checkpoint_counters

    curve = eval_curve(run_dir)
    found = []
    for path in sorted(run_dir.glob("step=*.ckpt")):
        env_steps = int(checkpoint_counters(path)["env_steps"])
        if env_steps in curve:
            found.append(
                (path, normalized_score(curve[env_steps], random_return, expert_return), env_steps)
            )
    if not found:
        raise ConfigError(f"no evaluated checkpoint in {run_dir} to pick 'medium' from")
    return sorted(found, key=lambda item: abs(item[1] - score))


def pick_medium(
    candidates, env_id: str, refs: dict[str, float], score: float, probe_steps: int, seed: int
):
    """The first candidate whose own rollouts (`probe_steps` env steps, acting as the
    dataset will) score within `MEDIUM_TOLERANCE` of `score`, else the nearest of them.

    A run's evaluations are few episodes of a policy still changing fast: a
    checkpoint that evaluated at 23 may collect at 68 (seen on Pendulum), so each
    candidate is checked on its own rollouts before it makes the dataset.
    """
    from lit_rl.modules.loading import module_from_checkpoint

    best = None
    for path, eval_score, env_steps in candidates[:MAX_MEDIUM_PROBES]:
        module, _ = module_from_checkpoint(path)
        probe = rollout_steps(env_id, module_actor(module, 0.0, seed), probe_steps, seed)
        probed = normalized_score(
            float(np.mean(probe.episode_returns)), refs["random"], refs["expert"]
        )
        if best is None or abs(probed - score) < abs(best[1] - score):
            best = (path, probed, env_steps, module, eval_score)
        if abs(probed - score) <= MEDIUM_TOLERANCE:
            break
    return best


def build_dataset_suite(
    run_dir: str,
    recipe: str,
    overrides: Sequence[str] = (),
    steps: int = 20_000,
    medium_score: float = 33.0,
    checkpoint_every: int = 500,
    eval_episodes: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Train `recipe` once, then write `run_dir/<quality>.hdf5` for every quality.

    Args:
        run_dir: where the datasets (and the training run, in `training/`) go.
        recipe: the training recipe (a path; relative paths are from the working folder).
        overrides: `key=value` overrides of that recipe.
        steps: transitions in the random, medium and expert datasets.
        medium_score: the normalised score (percent) the medium policy is picked at.
        checkpoint_every: env steps between the training run's checkpoints/evaluations.
        eval_episodes: episodes per evaluation of the training run.
        seed: seeds the training run and the collection.
    """
    from lit_rl.config import load_recipe
    from lit_rl.run import fit

    out = Path(run_dir)
    training = out / "training"
    print(f"lit-rl: dataset suite in {out}", flush=True)
    cfg = load_recipe(
        recipe,
        [
            *overrides,
            f"seed={seed}",
            f"run_dir={training}",
            f"checkpoint.every_env_steps={checkpoint_every}",
            "checkpoint.keep=-1",
            f"eval.every_env_steps={checkpoint_every}",
            f"eval.episodes={eval_episodes}",
        ],
    )
    _, module, _ = fit(cfg)
    env_id = module.hparams.env_id
    tables = {
        "random": rollout_steps(env_id, random_actor(module.hparams.act_dim, seed), steps, seed),
        "expert": rollout_steps(env_id, module_actor(module, 0.0, seed + 1), steps, seed + 1),
    }
    refs = {name: float(np.mean(tables[name].episode_returns)) for name in tables}
    candidates = medium_candidates(training, refs["random"], refs["expert"], medium_score)
    probe_steps = max(2000, steps // 10)
    medium_ckpt, _, medium_at, medium_module, medium_eval = pick_medium(
        candidates, env_id, refs, medium_score, probe_steps, seed + 3
    )
    tables["medium"] = rollout_steps(
        env_id, module_actor(medium_module, 0.0, seed + 2), steps, seed + 2
    )
    rows = module.replay_buffer.storage[: len(module.replay_buffer)]
    tables["medium-replay"] = replay_table(rows, medium_at)
    tables["medium-expert"] = concatenate(tables["medium"], tables["expert"])
    summary = {}
    for quality in QUALITIES:
        table = tables[quality]
        metadata = {
            "policy": {"medium": str(medium_ckpt), "random": "random"}.get(quality, quality),
            "quality": quality,
            "seed": seed,
            "ref_random_return": refs["random"],
            "ref_expert_return": refs["expert"],
        }
        path = write_hdf5(table, out / f"{quality}.hdf5", env_id, metadata)
        mean = float(np.mean(table.episode_returns))
        summary[quality] = {
            "file": str(path),
            "transitions": len(table),
            "episodes": len(table.episode_returns),
            "return_mean": mean,
            "normalized_score": normalized_score(mean, refs["random"], refs["expert"]),
        }
    summary["medium"]["checkpoint"] = str(medium_ckpt)
    summary["medium"]["checkpoint_eval_score"] = medium_eval
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for quality, info in summary.items():
        print(
            f"lit-rl: {quality:<14} {info['transitions']:>8} transitions, return "
            f"{info['return_mean']:9.1f}, normalised {info['normalized_score']:6.1f}",
            flush=True,
        )
    return summary
