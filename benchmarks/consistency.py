"""Consistency-AC against DPMD at the same network size, measured in one run.

    python benchmarks/consistency.py
    python benchmarks/consistency.py --env Hopper-v5 --device cuda

Both with 3x256 Mish policy and twin critic, batch 256, the recipes' default step
counts: DPMD samples N = 32 candidates x T = 20 denoising steps per action; Consistency-AC
50 candidates x 2 steps (offline recipes) or 5 steps (online recipes).

1. Acting latency per env step (one observation in, an action back on the host).
   Target (issue 14): Consistency-AC at least 5x cheaper than DPMD. Also the sampling
   alone (one action, no candidates, no critic): T = 20 network calls against 2 or 5.
2. One gradient update (losses, one backward, optimizer step), per update: DPMD's policy
   step comes every `policy_delay` (2) updates; Consistency-AC's every update.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusion import BATCH, acting_ms, build, random_batch, update_ms


@torch.no_grad()
def sampling_ms(policy, obs_dim: int, repeats: int, device: torch.device) -> float:
    """One action from the policy's own sampler (no candidates, no critic)."""
    observation = torch.randn(1, obs_dim, device=device)
    for _ in range(3):
        policy.sample(observation, 1)
    start = time.perf_counter()
    for _ in range(repeats):
        policy.sample(observation, 1).cpu()
    return 1000 * (time.perf_counter() - start) / repeats


def chain_macs(dims: list[int]) -> int:
    """Multiply-adds of one row through linear layers of widths `dims`."""
    return sum(a * b for a, b in zip(dims, dims[1:], strict=False))


def acting_macs(hp, candidates: int, steps: int) -> int:
    """Multiply-adds of one acting decision: `candidates x steps` calls of the policy
    network (the state's and time's shares of its first layer are made once per call, so
    per candidate and step only the action's columns count) and the twin critic on every
    candidate. On a CPU, where these products take most of the time, their ratio bounds
    how much cheaper one acting rule can be than the other."""
    policy = chain_macs([hp.act_dim, *hp.policy_hidden, hp.act_dim])
    critic = 2 * chain_macs([hp.obs_dim + hp.act_dim, *hp.critic_hidden, 1])
    return candidates * (steps * policy + critic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    dpmd = build("recipes/dpmd_halfcheetah.yaml", args.env, device)
    obs_dim, act_dim = dpmd.hparams.obs_dim, dpmd.hparams.act_dim
    batch = random_batch(obs_dim, act_dim, device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.env}: obs {obs_dim}, act {act_dim}, batch {BATCH}, device {card}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    hp = dpmd.hparams
    dpmd_act = acting_ms(dpmd, obs_dim, args.repeats, device)
    kwargs = {"lam": dpmd.lambda_scale * dpmd.alpha(), "noise_std": 0.1}
    policy_ms = update_ms(dpmd, batch, args.repeats, update_policy=True, **kwargs)
    critic_ms = update_ms(dpmd, batch, args.repeats, update_policy=False, **kwargs)
    dpmd_update = (policy_ms + (hp.policy_delay - 1) * critic_ms) / hp.policy_delay
    dpmd_sampling = sampling_ms(dpmd.loss_module.ema_policy, obs_dim, args.repeats, device)
    print(
        f"  DPMD {hp.num_particles} candidates x {hp.diffusion_steps} steps: acting "
        f"{dpmd_act:7.2f} ms/env step, update {dpmd_update:7.2f} ms; "
        f"one sample alone {dpmd_sampling:.2f} ms"
    )
    dpmd_macs = acting_macs(hp, hp.num_particles, hp.diffusion_steps)
    for label, recipe in (
        ("offline", "recipes/consistency_ac_offline_halfcheetah.yaml"),
        ("online", "recipes/consistency_ac_halfcheetah.yaml"),
    ):
        module = build(recipe, args.env, device)
        steps, candidates = module.hparams.sampling_steps, module.hparams.num_candidates
        act = acting_ms(module, obs_dim, args.repeats, device)
        update = update_ms(module, batch, args.repeats, num_points=151)
        sampling = sampling_ms(module.loss_module.ema_policy, obs_dim, args.repeats, device)
        print(
            f"  Consistency-AC ({label}) {candidates} candidates x {steps} steps: acting "
            f"{act:7.2f} ms/env step = {dpmd_act / act:5.1f}x cheaper than DPMD "
            f"(target >= 5x); update {update:7.2f} ms = {update / dpmd_update:4.2f}x DPMD's; "
            f"one sample alone {sampling:.2f} ms = {dpmd_sampling / sampling:4.1f}x cheaper"
        )
        macs = acting_macs(module.hparams, candidates, steps)
        print(
            f"    its acting arithmetic: {macs / 1e6:.1f}M multiply-adds against DPMD's "
            f"{dpmd_macs / 1e6:.1f}M ({dpmd_macs / macs:.1f}x fewer): the ratio a CPU, where "
            "the products take most of the time, approaches; a GPU's launches can exceed it"
        )


if __name__ == "__main__":
    main()
