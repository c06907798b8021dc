"""LOOP's planning cost: ARC latency per env step, and where a LOOP run's time goes.

    python benchmarks/planning.py                  # latency on Hopper shapes + a short run
    python benchmarks/planning.py --run-steps 0    # latency only

1. Latency of the default ARC as released (H = 3, 100 + 5 sequences, each scored by
   5 elites x 4 particles = 20 rollouts that stay on their elite, 7 members with 5
   elites of 4x200 Swish, 5 iterations, SAC critic 2x256) on Hopper-v5 shapes
   (obs 11, act 3), one env step = one plan. Target (issue #6): <= 10 ms on this CPU.
   Also reports CEM with the same budget, ARC's pieces (model steps vs critic) and ARC
   with 1 particle per elite (5 rollouts per sequence).
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


def planners(device: torch.device) -> dict[str, object]:
    torch.manual_seed(0)
    elites = EnsembleDynamics(OBS_DIM, ACT_DIM).to(device).elite_snapshot()
    critic = EnsembleQCritic(OBS_DIM, ACT_DIM).to(device)
    actor = TanhGaussianActor(OBS_DIM, ACT_DIM).to(device)
    q1_params = [p[:1] for p in critic.parameters()]

    def step(obs, action):  # actor rollouts: a random elite per row and step
        next_obs, reward = elites.sample_step(obs, action)
        return next_obs, reward, hopper_terminated(next_obs)

    def members_step(obs, action):  # scored rollouts: each stays on its elite
        next_obs, reward = elites.members_step(obs, action)
        terminated = hopper_terminated(next_obs.reshape(-1, OBS_DIM)).view(reward.shape)
        return next_obs, reward, terminated

    def value(obs, action):
        return critic.forward_with(q1_params, obs, action)[0]

    common = dict(
        horizon=3,
        num_samples=100,
        particles=4,
        iterations=5,
        members_step=members_step,
        num_members=elites.num_members,
        prior=actor.mode,
        num_prior=5,
    )
    one_particle = {**common, "particles": 1}
    return {
        "ARC (default)": ARCPlanner(step, value, ACT_DIM, **common),
        "CEM (same budget)": CEMPlanner(step, value, ACT_DIM, num_elites=20, **common),
        "ARC model only (no critic)": ARCPlanner(step, None, ACT_DIM, **common),
        "ARC, 1 particle per elite": ARCPlanner(step, value, ACT_DIM, **one_particle),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def matmul_floor_ms(repeats: int, device: torch.device) -> tuple[float, float]:
    """The default ARC's matrix products alone, back to back, with nothing else: a lower
    bound on its latency on this machine. Per env step: 5 iterations x 2 model steps of
    420 rows (105 sequences x 4 particles) through each of 5 elites of 4x200, plus 5
    critic evaluations of 2100 rows (2x256, Q1 only). Returns (ms, GFLOP/s achieved)."""
    torch.manual_seed(0)
    sizes = [OBS_DIM + ACT_DIM, 200, 200, 200, 200, 2 * (OBS_DIM + 1)]
    model = [
        (torch.randn(5, i, o, device=device), torch.randn(5, 1, o, device=device))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    critic = [
        (torch.randn(1, i, o, device=device), torch.randn(1, 1, o, device=device))
        for i, o in [(14, 256), (256, 256), (256, 1)]
    ]
    model_x = torch.randn(5, 420, sizes[0], device=device)
    critic_x = torch.randn(1, 2100, 14, device=device)

    def forward(layers, x):
        for weight, bias in layers:
            x = torch.baddbmm(bias, x, weight)
        return x

    def plan() -> None:
        for _ in range(5):
            for _ in range(2):
                forward(model, model_x)
            forward(critic, critic_x)

    flops = 2 * sum(
        layers_x.shape[0] * layers_x.shape[1] * w.shape[1] * w.shape[2]
        for layers, layers_x, calls in ((model, model_x, 10), (critic, critic_x, 5))
        for w, _ in layers
        for _ in range(calls)
    )
    for _ in range(10):
        plan()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        plan()
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return 1000 * seconds, flops / seconds / 1e9


@torch.no_grad()
def latency_ms(planner, repeats: int, device: torch.device) -> float:
    """Per env step, as an agent sees it: the chosen action is read back to the host."""
    obs = torch.randn(OBS_DIM, device=device)
    for _ in range(10):
        planner(obs, explore=True).cpu()
    start = time.perf_counter()
    for _ in range(repeats):
        planner(obs, explore=True).cpu()
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
    from lit_rl.modules import LOOP

    update_seconds = [0.0]
    plain_update = LOOP.update

    def timed_update(module, batch):  # SAC's share, measured around the engine's update
        start = time.perf_counter()
        losses = plain_update(module, batch)
        update_seconds[0] += time.perf_counter() - start
        return losses

    LOOP.update = timed_update
    start = time.perf_counter()
    _, module, _ = fit(cfg)
    total = time.perf_counter() - start
    LOOP.update = plain_update
    parts = {
        "planning": module.acting.plan_seconds if module.acting is not None else 0.0,
        "model fitting": module.model_fit.seconds,
        "SAC updates": update_seconds[0],
    }
    print(f"\nLOOP on Hopper-v5, {steps} env steps ({warmup} random), {total:.1f} s wall-clock:")
    for name, seconds in parts.items():
        print(f"  {name:<18} {seconds:7.1f} s  {100 * seconds / total:5.1f}%")
    rest = total - sum(parts.values())
    print(f"  {'other':<18} {rest:7.1f} s  {100 * rest / total:5.1f}% (env, buffer, eval, setup)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--run-steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (latency only)")
    args = parser.parse_args()
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch threads: {torch.get_num_threads()}, device: {card}")
    print("Planning latency per env step, Hopper-v5 shapes (target <= 10 ms):")
    latencies = {}
    for name, planner in planners(device).items():
        latencies[name] = latency_ms(planner, args.repeats, device)
        print(f"  {name:<28} {latencies[name]:7.2f} ms")
    floor_ms, gflops = matmul_floor_ms(args.repeats, device)
    print(
        f"  {'its matrix products alone':<28} {floor_ms:7.2f} ms"
        f" ({gflops:.0f} GFLOP/s: the floor for this configuration here)"
    )
    ratio = latencies["ARC (default)"] / floor_ms
    print(f"  default ARC / its floor      {ratio:7.2f}x (target <= 1.3x; issue 17)")
    if args.run_steps:
        run_shares(args.run_steps)


if __name__ == "__main__":
    main()
