"""Env steps/s of SAC at UTD 1: lit_rl (Lightning + TorchRL collector + replay buffer)
versus a plain PyTorch loop with the same networks, loss, batch size and env, and versus
Stable-Baselines3's SAC with the same network sizes. All measured in this one run.

    python benchmarks/throughput.py                      # Hopper-v5 and Humanoid-v5
    python benchmarks/throughput.py --envs Hopper-v5 --steps 1000

Targets (issue #4): lit_rl / plain >= 0.95 and lit_rl / SB3 >= 1.3.
Timings exclude warm-up (random actions, no updates) and start at the first update.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import lightning.pytorch as pl
import numpy as np
import torch
from tensordict import TensorDict

from lit_rl.config import load_recipe
from lit_rl.envs.make import make_gym_env
from lit_rl.nets import EnsembleQCritic, TanhGaussianActor
from lit_rl.objectives import SACLoss
from lit_rl.run import build_module

BATCH = 256
HIDDEN = (256, 256)


class _Clock(pl.Callback):
    """Times the updates after warm-up."""

    def __init__(self) -> None:
        self.start = None
        self.start_steps = 0

    def on_train_batch_end(self, trainer, module, *args) -> None:
        if self.start is None and module.updates > 0:
            self.start, self.start_steps = time.perf_counter(), module.env_steps

    def on_train_end(self, trainer, module) -> None:
        self.elapsed = time.perf_counter() - self.start
        self.steps = module.env_steps - self.start_steps


def lit_rl_steps_per_s(env_id: str, warmup: int, steps: int, per_step: int = 1) -> float:
    """`per_step` env steps are collected per collector call and as many updates run per
    Lightning training_step (UTD stays 1)."""
    cfg = load_recipe(
        "recipes/sac_hopper.yaml",
        [
            f"env.id={env_id}",
            f"algo.warmup_steps={warmup}",
            f"max_env_steps={warmup + steps}",
            "run_dir=/tmp/lit_rl_bench",
            "progress_bar=false",
            "logger=[]",
            "trainer.accelerator=cpu",
            f"algo.frames_per_batch={per_step}",
            f"algo.updates_per_step={per_step}",
        ],
    )
    pl.seed_everything(0, verbose=False)
    module = build_module(cfg, "/tmp/lit_rl_bench")
    clock = _Clock()
    trainer = pl.Trainer(
        max_epochs=-1,
        logger=False,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module)
    return clock.steps / clock.elapsed


def plain_steps_per_s(env_id: str, warmup: int, steps: int) -> float:
    """The same SACLoss and networks driven by a hand-written loop on a raw Gymnasium env."""
    torch.manual_seed(0)
    env = make_gym_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    loss = SACLoss(
        TanhGaussianActor(obs_dim, act_dim, HIDDEN), EnsembleQCritic(obs_dim, act_dim, HIDDEN)
    )
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-4, fused=True)
    capacity = warmup + steps
    buf = {
        "observation": torch.zeros(capacity, obs_dim),
        "action": torch.zeros(capacity, act_dim),
        "next_observation": torch.zeros(capacity, obs_dim),
        "reward": torch.zeros(capacity, 1),
        "terminated": torch.zeros(capacity, 1, dtype=torch.bool),
    }
    obs, _ = env.reset(seed=0)
    start = None
    for t in range(warmup + steps):
        if t < warmup:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = loss.actor.sample(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in (
            ("observation", obs),
            ("action", action),
            ("next_observation", next_obs),
            ("reward", reward),
            ("terminated", terminated),
        ):
            buf[key][t] = torch.as_tensor(
                np.asarray(value, dtype=np.float32) if key != "terminated" else value
            )
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
        if t >= warmup:
            if start is None:
                start = time.perf_counter()
            idx = torch.randint(0, t + 1, (BATCH,))
            batch = TensorDict(
                {
                    "observation": buf["observation"][idx],
                    "action": buf["action"][idx],
                    "next": {
                        "observation": buf["next_observation"][idx],
                        "reward": buf["reward"][idx],
                        "terminated": buf["terminated"][idx],
                    },
                },
                [BATCH],
            )
            out = loss(batch)
            total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            loss.update_targets(0.005)
    return steps / (time.perf_counter() - start)


def sb3_steps_per_s(env_id: str, warmup: int, steps: int) -> float | None:
    try:
        from stable_baselines3 import SAC as SB3SAC
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        return None

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == warmup + 1:
                self.start = time.perf_counter()
            return True

    clock = Clock()
    model = SB3SAC(
        "MlpPolicy",
        gym.make(env_id),
        learning_starts=warmup,
        batch_size=BATCH,
        policy_kwargs={"net_arch": list(HIDDEN)},
        seed=0,
        device="cpu",
    )
    model.learn(warmup + steps, callback=clock)
    return (steps - 1) / (time.perf_counter() - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Humanoid-v5"])
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument(
        "--per-step",
        type=int,
        nargs="+",
        default=[1, 8],
        help="lit_rl frames_per_batch = updates_per_step settings to measure",
    )
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, batch {BATCH}, networks {HIDDEN}, UTD 1")
    for env_id in args.envs:
        plain = plain_steps_per_s(env_id, args.warmup, args.steps)
        sb3 = sb3_steps_per_s(env_id, args.warmup, args.steps)
        print(
            f"{env_id:14s} plain loop {plain:6.1f} steps/s"
            + (f" | SB3 {sb3:6.1f} steps/s" if sb3 is not None else ""),
            flush=True,
        )
        for per_step in args.per_step:
            ours = lit_rl_steps_per_s(env_id, args.warmup, args.steps, per_step)
            line = (
                f"{env_id:14s} lit_rl (frames_per_batch = updates_per_step = {per_step}) "
                f"{ours:6.1f} steps/s | lit_rl/plain {ours / plain:.3f}"
            )
            if sb3 is not None:
                line += f" | lit_rl/SB3 {ours / sb3:.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
