"""Return vs cost of safe-RL runs: one figure with each run's learning curves (return and
episode cost against env steps, the cost limit dashed) and its final evaluation as a
point in the return-cost plane.

    python benchmarks/safe_results.py RUN_DIR [RUN_DIR ...] --out docs/img/safe_pointgoal.png

Each RUN_DIR is a finished `lit-rl run` folder (metrics.csv and config.yaml); its label
is the recipe's algo.name. Prints one line per run: final eval return and cost, and
whether the cost is under the recipe's cost_limit.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402


def eval_rows(run_dir: Path) -> list[dict[str, float]]:
    """The run's evaluation rows (env_steps, eval/return_mean, eval/cost_mean)."""
    rows = []
    with (run_dir / "metrics.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            if row.get("eval/return_mean") and row.get("eval/cost_mean"):
                rows.append({k: float(v) for k, v in row.items() if v})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/safe_pointgoal.png"))
    args = parser.parse_args()
    fig, (ax_return, ax_cost, ax_plane) = plt.subplots(1, 3, figsize=(15, 4.2))
    limit = None
    for run_dir in args.runs:
        cfg = OmegaConf.load(run_dir / "config.yaml")
        label = cfg.algo.name
        limit = cfg.get("cost_limit", limit)
        rows = eval_rows(run_dir)
        steps = [r["env_steps"] for r in rows]
        (line,) = ax_return.plot(steps, [r["eval/return_mean"] for r in rows], label=label)
        ax_cost.plot(steps, [r["eval/cost_mean"] for r in rows], color=line.get_color())
        last = rows[-1]
        ax_plane.errorbar(
            last["eval/cost_mean"],
            last["eval/return_mean"],
            xerr=last.get("eval/cost_std"),
            yerr=last.get("eval/return_std"),
            fmt="o",
            color=line.get_color(),
            label=label,
        )
        verdict = "" if limit is None else ("under" if last["eval/cost_mean"] <= limit else "OVER")
        print(
            f"{label:>16}: return {last['eval/return_mean']:7.2f}  cost "
            f"{last['eval/cost_mean']:6.2f}  {verdict} the limit {limit}  ({run_dir})"
        )
    if limit is not None:
        ax_cost.axhline(limit, ls="--", color="k", label="cost limit")
        ax_plane.axvline(limit, ls="--", color="k", label="cost limit")
    env_id = cfg.env.id
    ax_return.set(xlabel="env steps", ylabel="eval return", title=f"{env_id}: return")
    ax_cost.set(xlabel="env steps", ylabel="eval episode cost", title="cost")
    ax_plane.set(
        xlabel="final eval episode cost", ylabel="final eval return", title="return vs cost"
    )
    ax_return.legend()
    ax_plane.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
