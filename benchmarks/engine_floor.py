"""The best ratio to a plain loop that a Lightning + TorchRL engine can reach, measured.

Issue 17 asks lit_rl SAC for >= 0.95x the env steps/s of a plain loop driving the same
fused loss, at the recipes' defaults (one collector call of one frame, one buffer write,
one sample and one update per Lightning `training_step`), while keeping the design: a
TorchRL env under a TorchRL `Collector`, a TorchRL `ReplayBuffer`, Lightning's loop. This
script times what those three libraries cost per env step when there is nothing else to
do (no physics, no policy, a one-parameter model), in the same run as the plain loop:

- collector: one `Collector` call (the engine's options) over an env with no physics,
  as TorchRL's own `EnvBase` path and as lit_rl's lean env around a Gymnasium env whose
  step returns stored arrays; the cheaper of the two is the floor. The plain loop's
  counterpart (that Gymnasium step, no policy) is subtracted.
- replay buffer: `ReplayBuffer.extend` of one transition and `ReplayBuffer.sample` of a
  batch, minus the plain loop's tensor writes and index gather.
- Lightning: one `training_step` with a backward and an optimizer step through
  `manual_backward` and Lightning's optimizer wrapper, minus the same two calls made
  directly.
- the engine's NaN-loss check (one host sync per update; the guide asks for clear
  errors on NaN losses), which the plain loop does not do.

With T the plain loop's time per env step and F the sum of the floors, no engine built
on these libraries at these settings can beat T / (T + F) of the plain loop's speed:

    python benchmarks/engine_floor.py                 # Hopper-v5 and Humanoid-v5
    python benchmarks/engine_floor.py --envs Hopper-v5

The last lines are one summary per env:
`Hopper-v5: plain 10.23 ms/step, floor 0.86 ms -> at best 0.92x the same-loss loop`
(2026-11-28, this 2-core CPU; docs/engine.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import lightning.pytorch as pl
import numpy as np
import torch
from tensordict import TensorDict
from throughput import BATCH, plain_steps_per_s
from torchrl.collectors import Collector
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lit_rl.data.replay import make_replay_buffer
from lit_rl.envs.lean import GymnasiumEnv
from lit_rl.modules.hook_overhead import CheapHookBookkeeping
from lit_rl.modules.off_policy import BUFFER_KEYS, _Ticks, first_non_finite
from lit_rl.sources.torchrl_state import keep_private_keys


def per_call_ms(fn: Callable[[], object], reps: int, rounds: int) -> float:
    """Best over `rounds` of the mean wall time of `reps` calls (the floor: least noise)."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - start) / reps * 1e3)
    return min(times)


class StoredArraysEnv(gym.Env):
    """A Gymnasium env with no physics: every step returns the same stored arrays."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
        self._obs = np.zeros(obs_dim)

    def step(self, action):
        return self._obs, 0.0, False, False, {}

    def reset(self, *, seed=None, options=None):
        return self._obs, {}


class BareEnv(EnvBase):
    """TorchRL's own env path with nothing to compute: each step builds its output
    TensorDict from stored tensors."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__(device="cpu", batch_size=torch.Size([]))
        self.observation_spec = Composite(observation=Unbounded((obs_dim,)), shape=())
        self.action_spec = Bounded(-1.0, 1.0, (act_dim,))
        self.reward_spec = Unbounded((1,))
        self.done_spec = Composite(
            {k: Categorical(2, (1,), dtype=torch.bool) for k in ("done", "terminated", "truncated")}
        )
        self._obs = torch.zeros(obs_dim)
        self._reward = torch.zeros(1)
        self._false = torch.zeros(1, dtype=torch.bool)

    def _step(self, tensordict):
        f = self._false
        return TensorDict(
            {"observation": self._obs, "reward": self._reward, "done": f, "terminated": f,
             "truncated": f},
            batch_size=[],
        )  # fmt: skip

    def _reset(self, tensordict=None, **kwargs):
        f = self._false
        return TensorDict(
            {"observation": self._obs, "done": f, "terminated": f, "truncated": f}, batch_size=[]
        )

    def _set_seed(self, seed):
        return seed


def engine_collector(env: EnvBase, act_dim: int) -> Collector:
    """A `Collector` with the engine's options (`lit_rl.sources.online`) and a policy that
    writes a stored action (no network)."""
    action = torch.zeros(act_dim)

    def policy(td):
        return td.set("action", action)

    collector = Collector(
        env,
        policy,
        frames_per_batch=1,
        total_frames=-1,
        policy_device=torch.device("cpu"),
        storing_device=torch.device("cpu"),
        return_same_td=True,
        track_traj_ids=False,
        trust_policy=True,
    )
    keep_private_keys(collector)
    return collector


def collector_ms(env: EnvBase, act_dim: int, reps: int, rounds: int) -> float:
    collector = engine_collector(env, act_dim)
    iterator = iter(collector)

    def call():
        with torch.no_grad():
            next(iterator).reshape(-1)

    try:
        return per_call_ms(call, reps, rounds)
    finally:
        collector.shutdown()


def buffer_ms(obs_dim: int, act_dim: int, reps: int, rounds: int) -> tuple[float, float]:
    """(`extend` + `sample` of the engine's replay buffer, the plain loop's writes + gather)."""
    transition = TensorDict(
        {
            "observation": torch.zeros(1, obs_dim),
            "action": torch.zeros(1, act_dim),
            "next": {
                "observation": torch.zeros(1, obs_dim),
                "reward": torch.zeros(1, 1),
                "terminated": torch.zeros(1, 1, dtype=torch.bool),
                "done": torch.zeros(1, 1, dtype=torch.bool),
            },
        },
        [1],
    )
    assert set(transition.keys(True, True)) == set(BUFFER_KEYS)
    buffer = make_replay_buffer(100_000, BATCH)
    buffer.extend(transition.expand(10_000).clone())

    def engine():
        buffer.extend(transition)
        buffer.sample()

    capacity = 100_000
    plain = {
        "observation": torch.zeros(capacity, obs_dim),
        "action": torch.zeros(capacity, act_dim),
        "next_observation": torch.zeros(capacity, obs_dim),
        "reward": torch.zeros(capacity, 1),
        "terminated": torch.zeros(capacity, 1, dtype=torch.bool),
    }
    obs, action = np.zeros(obs_dim), np.zeros(act_dim, dtype=np.float32)
    row = [10_000]

    def plain_loop():  # what `plain_steps_per_s` does per step
        t = row[0] = (row[0] + 1) % capacity
        for key, value in (("observation", obs), ("action", action), ("next_observation", obs),
                           ("reward", 0.0), ("terminated", False)):  # fmt: skip
            plain[key][t] = torch.as_tensor(
                np.asarray(value, dtype=np.float32) if key != "terminated" else value
            )
        idx = torch.randint(0, 10_000, (BATCH,))
        TensorDict(
            {
                "observation": plain["observation"][idx],
                "action": plain["action"][idx],
                "next": {
                    "observation": plain["next_observation"][idx],
                    "reward": plain["reward"][idx],
                    "terminated": plain["terminated"][idx],
                },
            },
            [BATCH],
        )

    return per_call_ms(engine, reps, rounds), per_call_ms(plain_loop, reps, rounds)


class _OneParameter(CheapHookBookkeeping, pl.LightningModule):
    """Manual optimization of one parameter: what the engine's `training_step` does
    around an update, with no update to speak of (with the engine's cheaper hook
    bookkeeping, `lit_rl.modules.hook_overhead`)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.automatic_optimization = False
        self.steps = steps
        self.start: float | None = None
        self.elapsed = 0.0

    def training_step(self, batch, batch_idx):
        if batch_idx == 10:
            self.start = time.perf_counter()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(self.weight.sum())
        optimizer.step()
        if batch_idx + 1 == self.steps + 10:
            self.elapsed = time.perf_counter() - self.start
            self.trainer.should_stop = True

    def configure_optimizers(self):
        return torch.optim.SGD([self.weight], lr=1e-3)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Ticks(), batch_size=None)


def lightning_ms(reps: int, rounds: int) -> tuple[float, float]:
    """(one Lightning `training_step` as above, the same two calls made directly)."""
    best = float("inf")
    for _ in range(rounds):
        module = _OneParameter(reps)
        trainer = pl.Trainer(
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(module)
        best = min(best, module.elapsed / reps * 1e3)
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=1e-3)

    def direct():
        optimizer.zero_grad(set_to_none=True)
        weight.sum().backward()
        optimizer.step()

    return best, per_call_ms(direct, reps, rounds)


def nan_check_ms(reps: int, rounds: int) -> float:
    losses = TensorDict(
        {key: torch.zeros(()) for key in ("loss_actor", "loss_qvalue", "loss_alpha")}
    )
    return per_call_ms(lambda: first_non_finite(losses), reps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Humanoid-v5"])
    parser.add_argument("--steps", type=int, default=1500, help="timed steps of the plain loop")
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reps, rounds = args.reps, args.rounds
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    summaries = []
    for env_id in args.envs:
        probe = gym.make(env_id)
        obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        stored = StoredArraysEnv(obs_dim, act_dim)
        bare = collector_ms(BareEnv(obs_dim, act_dim), act_dim, reps, rounds)
        lean = collector_ms(GymnasiumEnv([lambda env=stored: env], [0]), act_dim, reps, rounds)
        gym_step = per_call_ms(partial(stored.step, None), reps, rounds)
        collector = min(bare, lean) - gym_step
        rb, plain_rb = buffer_ms(obs_dim, act_dim, reps, rounds)
        lit, direct = lightning_ms(reps, rounds)
        nan = nan_check_ms(reps, rounds)
        pieces = {
            f"collector call (TorchRL EnvBase {bare:.3f}, lean env {lean:.3f}) - gym step "
            f"{gym_step:.3f}": collector,
            f"replay buffer extend + sample {rb:.3f} - plain writes + gather {plain_rb:.3f}": (
                rb - plain_rb
            ),
            f"Lightning training_step {lit:.3f} - direct backward + step {direct:.3f}": (
                lit - direct
            ),
            "NaN-loss check": nan,
        }
        floor = sum(pieces.values())
        plain = 1e3 / plain_steps_per_s(env_id, 1000, args.steps)
        print(f"{env_id}, obs {obs_dim}, act {act_dim} (ms per env step):")
        for name, ms in pieces.items():
            print(f"  {name}: {ms:.3f}")
        print(f"  floor {floor:.3f}; same-loss plain loop {plain:.2f}")
        summaries.append(
            f"{env_id}: plain {plain:.2f} ms/step, floor {floor:.2f} ms -> at best "
            f"{plain / (plain + floor):.2f}x the same-loss loop"
        )
    for line in summaries:
        print(line)


if __name__ == "__main__":
    main()
