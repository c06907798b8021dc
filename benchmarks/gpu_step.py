"""Where one SAC env step goes on a GPU, piece by piece, and what each piece could cost.

    python benchmarks/gpu_step.py --device cuda          # HalfCheetah-v5 shapes, batch 256
    python benchmarks/gpu_step.py --device cpu --reps 50 # a smoke run (no CUDA graphs)

A `sac_halfcheetah` run at UTD 1 makes, per env step, one collector call (env step +
acting), one replay-buffer write, one sample and one update. Each is timed alone here
(milliseconds per call, median of `--rounds` rounds of `--reps` calls, synchronised), as
the engine does it today and in the variants that could replace it:

- collector: TorchRL `Collector` over lit_rl's lean env with the actor on the GPU (the
  engine's way) and with a CPU copy of the actor (no transfers; weights would have to be
  copied back after updates); `gymnasium.step` alone is the floor.
- write: `ReplayBuffer.extend` of the step into storage on the GPU (today: one
  host-to-device copy per key) and into storage on the CPU.
- sample: from GPU storage, and from CPU storage followed by a move to the GPU.
- update: eager (loss, backward, fused Adam, Polyak, the NaN check's sync), the engine's
  whole update (loss, backward, capturable fused Adam) replayed from one CUDA graph
  (`algo.compile` on one GPU), and the loss alone through torch.compile "reduce-overhead"
  (`algo.compile` under DDP or mixed precision).

The last lines add the pieces up into env steps/s as the engine is and with the fastest
variant of each piece (Lightning's loop, logging and the UTD bookkeeping are left out).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import torch
from torchrl.collectors import Collector

from lit_rl.data.replay import make_replay_buffer
from lit_rl.envs.make import make_env
from lit_rl.modules.off_policy import BUFFER_KEYS, first_non_finite, summed_loss
from lit_rl.modules.policy import make_gaussian_policy
from lit_rl.nets import EnsembleQCritic, TanhGaussianActor
from lit_rl.nets.cuda_graphs import GraphedStep
from lit_rl.objectives.sac import SACLoss

ENV_ID = "HalfCheetah-v5"


def per_call_ms(fn: Callable[[], object], reps: int, rounds: int, device: torch.device) -> float:
    """Median over `rounds` of the mean wall time of `reps` calls, GPU work included."""
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / reps * 1e3)
    return statistics.median(times)


def make_loss(obs_dim: int, act_dim: int, device: torch.device) -> SACLoss:
    torch.manual_seed(0)
    actor = TanhGaussianActor(obs_dim, act_dim, (256, 256))
    critic = EnsembleQCritic(obs_dim, act_dim, (256, 256), 2)
    return SACLoss(actor, critic).to(device)


def adam(loss: SACLoss, capturable: bool = False) -> torch.optim.Adam:
    return torch.optim.Adam(loss.parameters(), lr=3e-4, fused=True, capturable=capturable)


def eager_update(loss: SACLoss, optimizer: torch.optim.Optimizer, compute=None):
    compute = loss if compute is None else compute

    def update(batch):
        losses = compute(batch)
        total = summed_loss(losses)
        if first_non_finite(losses) is not None:  # the engine's check: one host sync
            raise FloatingPointError("non-finite loss")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        loss.update_targets(0.005)
        optimizer.zero_grad(set_to_none=True)

    return update


def graphed_update(loss: SACLoss, batch):
    """The whole update replayed from one CUDA graph (the engine's `algo.compile` on one
    GPU): copy the batch in, replay, Polyak, read the losses (the NaN check's sync)."""
    optimizer = adam(loss, capturable=True)

    def step(static_batch):
        losses = loss(static_batch)
        total = summed_loss(losses)
        total.backward()
        optimizer.step()
        return losses.detach()

    trained = [p for p in loss.parameters() if p.requires_grad]
    graphed = GraphedStep(step, trained, optimizer)

    def update(new_batch):
        losses = graphed(new_batch)
        loss.update_targets(0.005)
        if first_non_finite(losses) is not None:
            raise FloatingPointError("non-finite loss")

    return update


def collector(env_seed: int, actor: TanhGaussianActor, device: torch.device) -> Collector:
    on_cpu = torch.device("cpu") if device.type == "cpu" else None
    return Collector(
        make_env(ENV_ID, env_seed),
        make_gaussian_policy(actor),
        frames_per_batch=1,
        total_frames=-1,
        policy_device=on_cpu,
        storing_device=on_cpu,
        return_same_td=True,
        track_traj_ids=False,
        trust_policy=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    reps, rounds = args.reps, args.rounds
    timings: dict[str, float] = {}

    def record(name: str, fn: Callable[[], object], n: int = reps) -> None:
        try:
            timings[name] = per_call_ms(fn, n, rounds, device)
            print(f"{name:<34} {timings[name]:8.3f} ms", flush=True)
        except Exception as error:  # one broken variant must not cost the others
            print(f"{name:<34} failed: {type(error).__name__}: {error}", flush=True)

    print(f"{ENV_ID}, batch {args.batch}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""))  # fmt: skip

    gym_env = gym.make(ENV_ID)
    gym_env.reset(seed=0)

    def gym_step():
        _, _, terminated, truncated, _ = gym_env.step(gym_env.action_space.sample())
        if terminated or truncated:
            gym_env.reset()

    record("env: gymnasium.step (floor)", gym_step)

    obs_dim = gym_env.observation_space.shape[0]
    act_dim = gym_env.action_space.shape[0]
    loss = make_loss(obs_dim, act_dim, device)
    cpu_actor = make_loss(obs_dim, act_dim, torch.device("cpu")).actor
    collectors = {"collector: actor on device": collector(0, loss.actor, device)}
    if cuda:
        collectors["collector: CPU copy of the actor"] = collector(0, cpu_actor, device)
    rollout = None
    for name, made in collectors.items():
        iterator = iter(made)

        def collect(iterator=iterator):
            nonlocal rollout
            with torch.no_grad():
                rollout = next(iterator).reshape(-1)

        record(name, collect)
    transition = rollout.select(*BUFFER_KEYS).clone()

    buffers = {"device": make_replay_buffer(100_000, args.batch, device=device)}
    if cuda:
        buffers["cpu"] = make_replay_buffer(100_000, args.batch, device="cpu")
    for where, buffer in buffers.items():
        record(f"write: extend into {where} storage", lambda b=buffer: b.extend(transition))
        while len(buffer) < 10_000:
            buffer.extend(transition.expand(1000).clone())
    record("sample: from device storage", lambda: buffers["device"].sample())
    if cuda:
        record("sample: CPU storage, then to GPU", lambda: buffers["cpu"].sample().to(device))

    batch = buffers["device"].sample()
    # made one after another, the graph before the compiled loss: a capture after the
    # compiled loss's backward failed (its autograd nodes stay alive on another stream)
    updates = {"update: eager": lambda: eager_update(loss, adam(loss))}
    if cuda:
        updates["update: one CUDA graph"] = lambda: graphed_update(loss, batch)
        updates["update: loss compiled"] = lambda: eager_update(
            loss, adam(loss), torch.compile(loss, mode="reduce-overhead")
        )
    for name, make_update in updates.items():
        try:
            update = make_update()
            for _ in range(5):  # compilation and graph recording happen in the first calls
                update(batch)
        except Exception as error:
            print(f"{name:<34} failed: {type(error).__name__}: {error}", flush=True)
            continue
        record(name, lambda u=update: u(batch), max(reps // 3, 10))

    def total(names: list[str]) -> float | None:
        missing = [name for name in names if name not in timings]
        return None if missing else sum(timings[name] for name in names)

    engine = [
        "collector: actor on device",
        "write: extend into device storage",
        "sample: from device storage",
        "update: one CUDA graph" if cuda else "update: eager",
    ]
    best = [
        min((n for n in timings if n.startswith(piece)), key=timings.get, default=piece)
        for piece in ("collector:", "write:", "sample:", "update:")
    ]
    for label, names in (("engine today", engine), ("fastest of each", best)):
        ms = total(names)
        if ms is not None:
            print(f"{label}: {ms:.2f} ms per env step = {1e3 / ms:.0f} env steps/s "
                  f"({' + '.join(f'{timings[n]:.2f}' for n in names)})")  # fmt: skip
    for made in collectors.values():
        made.shutdown()


if __name__ == "__main__":
    main()
