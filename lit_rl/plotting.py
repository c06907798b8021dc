"""`lit-rl plot`: learning curves across seeds, and rliable-style aggregates.

Runs that differ only by seed (same config.yaml but for `seed` and `run_dir`) form one
group, drawn as the mean over seeds with a 95% bootstrap confidence band; one panel per
task (env id), x in env steps (gradient updates for offline runs). `--aggregate` adds
the interquartile mean (IQM) and optimality gap of each algorithm's final scores across
tasks and seeds, with stratified bootstrap CIs (Agarwal et al., NeurIPS 2021: resample
runs within each task). The estimators are written here (the `rliable` package pulls in
a stack this project does not otherwise need) and tested against their definitions.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lit_rl.errors import ConfigError

# Okabe-Ito: distinguishable under the common colour-vision deficiencies
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SEED_KEYS = ("seed", "run_dir")


@dataclass
class Run:
    path: Path
    config: dict
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    clock: str = "env_steps"

    @property
    def task(self) -> str:
        env = self.config.get("env") or {}
        return str(env.get("id") or self.config.get("dataset") or "?")

    @property
    def algorithm(self) -> str:
        return str((self.config.get("algo") or {}).get("name", "?"))

    def group_key(self) -> str:
        """The config without what differs between seeds of one experiment."""
        rest = {k: v for k, v in self.config.items() if k not in SEED_KEYS}
        return json.dumps(rest, sort_keys=True, default=str)


def find_run_dirs(patterns: Sequence[str]) -> list[Path]:
    """Run folders (holding metrics.csv) named by the patterns, or found below them."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
        for match in map(Path, matches):
            if (match / "metrics.csv").is_file():
                found.append(match)
            elif match.is_dir():
                found.extend(sorted(p.parent for p in match.rglob("metrics.csv")))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ConfigError(f"no run folders (with metrics.csv) match {' '.join(patterns)}")
    return unique


def read_run(run_dir: Path, metric: str) -> Run | None:
    """The run's curve of `metric` against its clock; None if it never logged `metric`."""
    config_path = run_dir / "config.yaml"
    config = {}
    if config_path.is_file():
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    offline = config.get("dataset") is not None
    clock = "updates" if offline else "env_steps"
    xs, ys = [], []
    with (run_dir / "metrics.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            value, when = row.get(metric), row.get(clock) or row.get("step")
            if value not in (None, "") and when not in (None, ""):
                xs.append(float(when))
                ys.append(float(value))
    if not xs:
        return None
    order = np.argsort(xs, kind="stable")
    return Run(run_dir, config, np.asarray(xs)[order], np.asarray(ys)[order], clock)


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Label -> runs, one group per config up to the seed; labels are recipe names,
    numbered when two configs share a name."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.group_key(), []).append(run)
    labels: dict[str, list[Run]] = {}
    for members in by_key.values():
        name = str(members[0].config.get("name") or members[0].path.parent.name)
        label, index = name, 2
        while label in labels:
            label, index = f"{name} #{index}", index + 1
        labels[label] = members
    return labels


def align(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    """`(x, Y[run, point])`: every run's curve on the union of their x values, up to the
    shortest run's end (linear interpolation between logged points)."""
    end = min(run.x[-1] for run in runs)
    grid = np.unique(np.concatenate([run.x for run in runs]))
    grid = grid[grid <= end]
    return grid, np.stack([np.interp(grid, run.x, run.y) for run in runs])


def bootstrap_mean_ci(
    values: np.ndarray, samples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 of `values [runs, points]` and its percentile bootstrap CI
    (runs resampled with replacement)."""
    mean = values.mean(axis=0)
    if values.shape[0] < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.shape[0], size=(samples, values.shape[0]))
    means = values[picks].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return mean, low, high


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (25% cut each side)."""
    from scipy.stats import trim_mean

    return float(trim_mean(np.ravel(scores), proportiontocut=0.25))


def optimality_gap(scores: np.ndarray, threshold: float = 100.0) -> float:
    """How far scores fall short of `threshold` on average (scores above it count as it)."""
    return float(threshold - np.mean(np.minimum(np.ravel(scores), threshold)))


def stratified_bootstrap_ci(
    scores_per_task: Sequence[np.ndarray],
    statistic: Callable[[np.ndarray], float],
    samples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`(point, low, high)`: `statistic` of all scores, and its CI from resampling runs
    with replacement within each task (the task mix stays fixed)."""
    point = statistic(np.concatenate(scores_per_task))
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    for i in range(samples):
        stats[i] = statistic(
            np.concatenate([s[rng.integers(0, len(s), size=len(s))] for s in scores_per_task])
        )
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return point, float(low), float(high)


def _save(fig, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out]
    fig.savefig(out, dpi=150, bbox_inches="tight")
    if out.suffix.lower() == ".png":
        svg = out.with_suffix(".svg")
        fig.savefig(svg, bbox_inches="tight")
        paths.append(svg)
    return paths


def plot_curves(groups: dict[str, list[Run]], metric: str, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({runs[0].task for runs in groups.values()})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(groups)}
    for ax, task in zip(axes[0], tasks, strict=True):
        for label, runs in groups.items():
            if runs[0].task != task:
                continue
            x, values = align(runs)
            mean, low, high = bootstrap_mean_ci(values)
            seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
            ax.plot(
                x, mean, color=colours[label], lw=2, marker="o", ms=3, label=f"{label} ({seeds})"
            )
            if len(runs) > 1:
                ax.fill_between(x, low, high, color=colours[label], alpha=0.2, lw=0)
        clock = runs[0].clock
        ax.set_title(task)
        ax.set_xlabel("env steps" if clock == "env_steps" else "gradient updates")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{metric}: mean over seeds, 95% bootstrap CI", fontsize=10)
    paths = _save(fig, out)
    plt.close(fig)
    return paths


def aggregate_table(
    runs: Sequence[Run], threshold: float
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Algorithm -> {"IQM": (point, low, high), "Optimality gap": ...} of final scores."""
    per_algo: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        per_algo.setdefault(run.algorithm, {}).setdefault(run.task, []).append(run.y[-1])
    table = {}
    for algo, tasks in per_algo.items():
        scores = [np.asarray(v) for _, v in sorted(tasks.items())]
        table[algo] = {
            "IQM": stratified_bootstrap_ci(scores, iqm),
            "Optimality gap": stratified_bootstrap_ci(
                scores, lambda s: optimality_gap(s, threshold)
            ),
        }
    return table


def plot_aggregate(runs: Sequence[Run], metric: str, threshold: float, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = aggregate_table(runs, threshold)
    algos = sorted(table)
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.6 * len(algos) + 1.6), squeeze=False)
    for ax, stat in zip(axes[0], ("IQM", "Optimality gap"), strict=True):
        for i, algo in enumerate(algos):
            point, low, high = table[algo][stat]
            colour = PALETTE[i % len(PALETTE)]
            ax.barh(i, high - low, left=low, height=0.5, color=colour, alpha=0.6)
            ax.plot([point, point], [i - 0.25, i + 0.25], color="black", lw=2)
        ax.set_yticks(range(len(algos)), algos)
        ax.invert_yaxis()  # alphabetical from the top
        ax.set_title(stat + (" (lower is better)" if stat != "IQM" else ""))
        ax.set_xlabel(f"final {metric}")
        ax.grid(axis="x", alpha=0.3)
    tasks = len({run.task for run in runs})
    plural = "task" if tasks == 1 else "tasks"
    fig.suptitle(f"{len(runs)} runs over {tasks} {plural}; 95% stratified bootstrap CIs")
    paths = _save(fig, out)
    plt.close(fig)
    return paths


def plot_command(
    patterns: Sequence[str], metric: str, out: Path, aggregate: bool, threshold: float
) -> list[Path]:
    """`lit-rl plot`: the files written."""
    run_dirs = find_run_dirs(patterns)
    runs = [run for run in (read_run(d, metric) for d in run_dirs) if run is not None]
    if not runs:
        raise ConfigError(f"none of the {len(run_dirs)} runs logged '{metric}'")
    paths = plot_curves(group_runs(runs), metric, out)
    if aggregate:
        target = out.with_name(f"{out.stem}_aggregate{out.suffix}")
        paths += plot_aggregate(runs, metric, threshold, target)
    return paths
