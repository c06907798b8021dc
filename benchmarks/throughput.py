"""Env steps/s of SAC at UTD 1: lit_rl (Lightning + TorchRL collector + replay buffer)
versus two plain PyTorch loops on the raw Gymnasium env with the same networks and batch
size, and versus Stable-Baselines3's SAC with the same network sizes. All in this one run.

The two plain loops answer two questions:
* "plain (textbook)" is the loop a practitioner writes by hand (as in CleanRL): two
  separate Q-networks, one Adam per role, one backward per loss. lit_rl / plain
  (textbook) is the issue's ratio: what a user gains or loses by using lit_rl.
* "plain (lit_rl loss)" drives lit_rl's own fused `SACLoss` (batched twin critics, one
  backward, one fused Adam). lit_rl / plain (lit_rl loss) isolates the engine's cost:
  Lightning's loop, the TorchRL collector and env transforms, the replay buffer.

    python benchmarks/throughput.py                      # Hopper-v5 and Humanoid-v5
    python benchmarks/throughput.py --envs Hopper-v5 --steps 1000

Targets (issue 17, at the recipes' defaults: 1 frame and 1 update per training step):
lit_rl >= 0.95x the same-loss loop and >= 1.3x SB3. The last lines are one summary per
env: `Hopper-v5 defaults: lit_rl 101.2 steps/s | vs same-loss loop 0.97x | vs SB3 1.41x`.
Timings exclude warm-up (random actions, no updates) and start at the first update. Each
contender runs once per round, in turn, and its best round is reported.
"""

from __future__ import annotations

import argparse
import copy
import time
from functools import partial

import gymnasium as gym
import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from lit_rl.config import load_recipe
from lit_rl.envs.make import make_gym_env
from lit_rl.nets import EnsembleQCritic, TanhGaussianActor
from lit_rl.nets.mlp import make_mlp
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
    """lit_rl's own SACLoss and networks driven by a hand-written loop on a raw Gymnasium env."""
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


class _TextbookQ(nn.Module):
    """One Q-network as a practitioner writes it: an MLP over concat(s, a)."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.net = make_mlp(obs_dim + act_dim, 1, HIDDEN, "relu")

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([observation, action], -1)).squeeze(-1)


def textbook_steps_per_s(env_id: str, warmup: int, steps: int) -> float:
    """A hand-written SAC loop (CleanRL's layout): separate critics and target critics,
    Adam per role, three backward passes per update, Polyak over each parameter."""
    torch.manual_seed(0)
    env = make_gym_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = TanhGaussianActor(obs_dim, act_dim, HIDDEN)
    q1, q2 = _TextbookQ(obs_dim, act_dim), _TextbookQ(obs_dim, act_dim)
    q1_target, q2_target = copy.deepcopy(q1), copy.deepcopy(q2)
    log_alpha = torch.zeros(1, requires_grad=True)
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=3e-4)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=3e-4)
    alpha_opt = torch.optim.Adam([log_alpha], lr=3e-4)
    target_entropy = -float(act_dim)
    capacity = warmup + steps
    obs_buf = np.zeros((capacity, obs_dim), np.float32)
    next_obs_buf = np.zeros((capacity, obs_dim), np.float32)
    act_buf = np.zeros((capacity, act_dim), np.float32)
    rew_buf = np.zeros(capacity, np.float32)
    term_buf = np.zeros(capacity, np.float32)
    obs, _ = env.reset(seed=0)
    start = None
    for t in range(capacity):
        if t < warmup:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = actor.sample(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        obs_buf[t], act_buf[t], next_obs_buf[t] = obs, action, next_obs
        rew_buf[t], term_buf[t] = reward, terminated
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
        if t < warmup:
            continue
        if start is None:
            start = time.perf_counter()
        idx = np.random.randint(0, t + 1, BATCH)
        o, a = torch.from_numpy(obs_buf[idx]), torch.from_numpy(act_buf[idx])
        o2, r = torch.from_numpy(next_obs_buf[idx]), torch.from_numpy(rew_buf[idx])
        done = torch.from_numpy(term_buf[idx])
        alpha = log_alpha.exp().item()
        with torch.no_grad():
            a2, logp2 = actor.sample(o2)
            q_next = torch.min(q1_target(o2, a2), q2_target(o2, a2)) - alpha * logp2
            y = r + 0.99 * (1 - done) * q_next
        q_loss = F.mse_loss(q1(o, a), y) + F.mse_loss(q2(o, a), y)
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        pi, logp = actor.sample(o)
        actor_loss = (alpha * logp - torch.min(q1(o, pi), q2(o, pi))).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        alpha_loss = -(log_alpha.exp() * (logp.detach() + target_entropy)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            for net, target in ((q1, q1_target), (q2, q2_target)):
                for param, target_param in zip(net.parameters(), target.parameters(), strict=True):
                    target_param.data.copy_(0.005 * param.data + 0.995 * target_param.data)
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


def print_paired_ratios(env_id: str, rounds: dict[str, list[float | None]]) -> None:
    """Ratios within each round (contenders ran back to back), beside the best-of summary:
    on a shared machine whose speed drifts between minutes they show the spread. The SB3
    ratio cannot exceed the engine's floor ratio (`benchmarks/engine_floor.py`) times the
    same-loss loop's own lead over SB3, printed last."""

    def ratios(top: str, bottom: str) -> str:
        pairs = zip(rounds[top], rounds[bottom], strict=True)
        return " ".join(f"{a / b:.2f}" if a and b else "n/a" for a, b in pairs)

    line = f"{env_id:14s} per round: lit_rl/same-loss {ratios('lit_rl 1', 'plain (lit_rl loss)')}"
    if any(rounds["SB3"]):
        line += (
            f" | lit_rl/SB3 {ratios('lit_rl 1', 'SB3')}"
            f" | same-loss/SB3 {ratios('plain (lit_rl loss)', 'SB3')}"
        )
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Humanoid-v5"])
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="each contender is measured once per round, in turn; its best round counts "
        "(a shared 2-core machine drifts by 20%% between minutes)",
    )
    parser.add_argument(
        "--per-step",
        type=int,
        nargs="+",
        default=[1, 8],
        help="lit_rl frames_per_batch = updates_per_step settings to measure",
    )
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, batch {BATCH}, networks {HIDDEN}, UTD 1")
    summaries = []
    for env_id in args.envs:
        budget = (env_id, args.warmup, args.steps)
        contenders = {
            "plain (textbook)": partial(textbook_steps_per_s, *budget),
            "plain (lit_rl loss)": partial(plain_steps_per_s, *budget),
            "SB3": partial(sb3_steps_per_s, *budget),
        }
        for per_step in args.per_step:
            contenders[f"lit_rl {per_step}"] = partial(lit_rl_steps_per_s, *budget, per_step)
        best: dict[str, float | None] = {}
        rounds: dict[str, list[float | None]] = {name: [] for name in contenders}
        for round_index in range(args.rounds):
            for name, measure in contenders.items():
                rate = measure()
                print(f"  round {round_index + 1} {env_id} {name}: {rate} steps/s", flush=True)
                rounds[name].append(rate)
                if rate is not None:
                    best[name] = max(rate, best.get(name) or 0.0)
        if "lit_rl 1" in rounds:
            print_paired_ratios(env_id, rounds)
        textbook, plain, sb3 = (
            best["plain (textbook)"],
            best["plain (lit_rl loss)"],
            best.get("SB3"),
        )
        print(
            f"{env_id:14s} plain (textbook) {textbook:6.1f} steps/s"
            f" | plain (lit_rl loss) {plain:6.1f} steps/s"
            + (f" | SB3 {sb3:6.1f} steps/s" if sb3 is not None else ""),
            flush=True,
        )
        for per_step in args.per_step:
            ours = best[f"lit_rl {per_step}"]
            line = (
                f"{env_id:14s} lit_rl (frames_per_batch = updates_per_step = {per_step}) "
                f"{ours:6.1f} steps/s | lit_rl/plain (textbook) {ours / textbook:.3f}"
                f" | lit_rl/plain (lit_rl loss) {ours / plain:.3f}"
            )
            if sb3 is not None:
                line += f" | lit_rl/SB3 {ours / sb3:.2f}x"
            print(line, flush=True)
        if 1 in args.per_step:
            ours = best["lit_rl 1"]
            vs_sb3 = f"{ours / sb3:.2f}x" if sb3 is not None else "n/a (no stable-baselines3)"
            summaries.append(
                f"{env_id} defaults: lit_rl {ours:.1f} steps/s | vs same-loss loop "
                f"{ours / plain:.2f}x | vs SB3 {vs_sb3}"
            )
    for summary in summaries:
        print(summary, flush=True)


if __name__ == "__main__":
    main()
