"""Experiments that are not training runs: a recipe with `experiment: NAME` runs one of these.

    experiment: lookahead_pi
    run_dir: runs/${name}
    lookahead_pi: {gamma: 0.95, iterations: 60, settings: [[1, 1], [4, 1]]}

The section named after the experiment holds the arguments of its runner below (checked
against the runner's signature like `algo:` is against an algorithm's constructor).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lit_rl.errors import ConfigError

DIVERGED_ERROR = 1e3  # an error this far above the start counts as divergence in the summary


def run_lookahead_pi(
    run_dir: str,
    problem: str = "two_state_counterexample",
    gamma: float = 0.95,
    iterations: int = 60,
    fit: str = "least_squares",
    settings: Sequence[Sequence[int]] = ((1, 1), (2, 1), (3, 1), (4, 1), (1, 4), (6, 1)),
    gradient_steps: int = 5,
    gradient_lr: float = 0.05,
) -> dict[tuple[int, int], list[float]]:
    """Approximate PI on a known MDP for each (H, m) in `settings`; write CSV and plot.

    Writes `run_dir/errors.csv` (one column per setting) and `run_dir/lookahead_pi.png`
    (sup-norm error per iteration, log scale). Returns the error curves by (H, m).
    """
    from lit_rl.planning.lookahead_pi import FITS, PROBLEMS, approximate_policy_iteration

    if problem not in PROBLEMS:
        raise ConfigError(f"unknown lookahead_pi.problem '{problem}'; choose {', '.join(PROBLEMS)}")
    if fit not in FITS:
        raise ConfigError(f"unknown lookahead_pi.fit '{fit}'; choose one of {', '.join(FITS)}")
    for setting in settings:
        if len(setting) != 2 or min(setting) < 1:
            raise ConfigError(f"lookahead_pi.settings entries are [H, m] with H, m >= 1: {setting}")
    print(f"lit-rl: run folder {run_dir}", flush=True)
    lp = PROBLEMS[problem](gamma)
    curves = {
        (h, m): approximate_policy_iteration(
            lp, h, m, iterations, fit, gradient_steps, gradient_lr
        ).tolist()
        for h, m in settings
    }
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"H{h}_m{m}" for h, m in curves]
    with (out / "errors.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", *names])
        for k in range(iterations + 1):
            writer.writerow([k, *(curve[k] for curve in curves.values())])
    plot_errors(curves, out / "lookahead_pi.png", f"{problem}, gamma={gamma}, fit={fit}")
    print(f"{'H':>3} {'m':>3} {'error[0]':>10} {'error[end]':>12}  verdict")
    for (h, m), curve in curves.items():
        verdict = "diverges" if curve[-1] > curve[0] else "converges"
        print(f"{h:>3} {m:>3} {curve[0]:>10.3g} {curve[-1]:>12.4g}  {verdict}")
    print(f"lit-rl: wrote {out / 'errors.csv'} and {out / 'lookahead_pi.png'}")
    return curves


def plot_errors(curves: dict[tuple[int, int], list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (h, m), curve in curves.items():
        # dashed for m > 1: (H, m) and (H', m') with H + m = H' + m' draw the same curve here
        ax.semilogy(curve, "--" if m > 1 else "-", label=f"H={h}, m={m}")
    ax.set_xlabel("iteration k")
    ax.set_ylabel(r"$\|\Phi\theta_k - J^*\|_\infty$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


EXPERIMENTS: dict[str, Callable[..., Any]] = {"lookahead_pi": run_lookahead_pi}
EXPERIMENT_TOP_LEVEL = {"name", "seed", "run_dir", "experiment"}
