"""LOOP's planning cost: ARC latency per env step, and where a LOOP run's time goes.

    python benchmarks/planning.py                  # latency on Hopper shapes + a short run
    python benchmarks/planning.py --run-steps 0    # latency only

1. Latency of the default ARC (H = 3, 100 + 5 sequences, 4 particles, 7 members with 5
   elites of 4x200 Swish, 5 iterations, SAC critic 2x256) on Hopper-v5 shapes
   (obs 11, act 3), one env step = one plan. Target (issue #6): <= 10 ms on this CPU.
   Also reports CEM with the same budget and ARC's pieces (model steps vs critic).
2. A short LOOP run on Hopper-v5 (recipes/loop_hopper.yaml): the share of wall-clock
   spent planning, fitting the model and updating SAC.
"""

from __future__ import annotations

import argparse
import time

import torch

from lit_rl.envs.termination import hopper_terminated
from lit_rl.nets import EnsembleQCritic, TanhGaussianActor
from lit_rl.nets.dynamics import EnsembleDynamics
from lit_rl.planning.planners import ARCPlanner, CEMPlanner

OBS_DIM, ACT_DIM = 11, 3


def planners() -> dict[str, object]:
    torch.manual_seed(0)
    elites = EnsembleDynamics(OBS_DIM, ACT_DIM).elite_snapshot()
    critic = EnsembleQCritic(OBS_DIM, ACT_DIM)
    actor = TanhGaussianActor(OBS_DIM, ACT_DIM)
    q1_params = [p[:1] for p in critic.parameters()]

    def step(obs, action):
        next_obs, reward = elites.sample_step(obs, action)
        return next_obs, reward, hopper_terminated(next_obs)

    def value(obs, action):
        return critic.forward_with(q1_params, obs, action)[0]

    common = dict(horizon=3, num_samples=100, particles=4, iterations=5)
    return {
        "ARC (default)": ARCPlanner(step, value, ACT_DIM, prior=actor.mode, num_prior=5, **common),
        "CEM (same budget)": CEMPlanner(step, value, ACT_DIM, num_elites=10, **common),
        "ARC model only (no critic)": ARCPlanner(
            step, None, ACT_DIM, prior=actor.mode, num_prior=5, **common
        ),
    }


@torch.no_grad()
def latency_ms(planner, repeats: int) -> float:
    obs = torch.randn(OBS_DIM)
    for _ in range(10):
        planner(obs, explore=True)
    start = time.perf_counter()
    for _ in range(repeats):
        planner(obs, explore=True)
    return 1000 * (time.perf_counter() - start) / repeats


def run_shares(steps: int) -> None:
    from lit_rl.config import load_recipe
    from lit_rl.run import fit

    warmup = min(1000, steps // 2)
    cfg = load_recipe(
        "recipes/loop_hopper.yaml",
        [
            f"max_env_steps={steps}",
            f"algo.warmup_steps={warmup}",
            "algo.model_train_every=250",
            "run_dir=/tmp/lit_rl_bench_loop",
            "progress_bar=false",
            "logger=[]",
            f"eval.every_env_steps={10 * steps}",
            "eval.episodes=1",
            f"checkpoint.every_env_steps={10 * steps}",
        ],
    )
    start = time.perf_counter()
    _, module, _ = fit(cfg)
    total = time.perf_counter() - start
    parts = module.time_shares()
    print(f"\nLOOP on Hopper-v5, {steps} env steps ({warmup} random), {total:.1f} s wall-clock:")
    for name, seconds in parts.items():
        print(f"  {name:<18} {seconds:7.1f} s  {100 * seconds / total:5.1f}%")
    rest = total - sum(parts.values())
    print(f"  {'other':<18} {rest:7.1f} s  {100 * rest / total:5.1f}% (env, buffer, eval, setup)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--run-steps", type=int, default=2000)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print("Planning latency per env step, Hopper-v5 shapes (target <= 10 ms):")
    for name, planner in planners().items():
        print(f"  {name:<28} {latency_ms(planner, args.repeats):7.2f} ms")
    if args.run_steps:
        run_shares(args.run_steps)


if __name__ == "__main__":
    main()
