"""One TorchRL env class around a Gymnasium env or a Gymnasium vector env: the lean path.

lit_rl used to build each env as `GymWrapper` + four transforms (`DoubleToFloat`,
`StepCounter`, `RewardSum`, `InitTracker`, plus a cost reader and `EpisodeCost` on
safety envs) and stacked several in a `SerialEnv`. Each transform walks its specs and
copies tensordicts on every step; on the 2-core CPU that machinery cost ~1.1 ms per
frame against 0.19 ms for `gymnasium` stepping Hopper itself. `GymnasiumEnv` writes
the same keys with the same specs in one place:

    observation (float32), action in [-1, 1], reward, done / terminated / truncated,
    step_count, episode_reward, is_init, and on envs that report costs
    (`lit_rl.envs.costs`) cost and episode_cost,

so collectors, replay buffers, losses and evaluation see exactly what they saw before.
`num_envs > 1` steps a Gymnasium vector env (`SyncVectorEnv` in this process, or
`AsyncVectorEnv` in worker processes for many-core machines) with autoreset disabled:
TorchRL's partial resets (`"_reset"`) become Gymnasium's `reset_mask`.

A checkpoint saves each sub-env's inside through `env_states()` / `load_env_states()`
(`lit_rl.envs.snapshot`); async workers answer through `SnapshotAccess`, a wrapper
whose attribute Gymnasium's `get_attr`/`set_attr` reach across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lit_rl.envs.costs import COST_KEY, EPISODE_COST_KEY
from lit_rl.envs.snapshot import restore_env_state, snapshot_env_state

VECTORIZATIONS = ("sync", "async")


class SnapshotAccess(gym.Wrapper):
    """Exposes `snapshot_env_state` / `restore_env_state` of the env it wraps as one
    attribute, `lit_rl_state`, which a vector env reads and writes in its workers."""

    @property
    def lit_rl_state(self) -> dict[str, Any]:
        return snapshot_env_state(self.env)

    @lit_rl_state.setter
    def lit_rl_state(self, state: dict[str, Any]) -> None:
        restore_env_state(self.env, state)


class GymnasiumEnv(EnvBase):
    """A Gymnasium env (batch size ``[]``) or `num_envs` of them (``[num_envs]``).

    Args:
        env_fns: one callable per env, each making a Gymnasium env with a flat Box
            observation and a Box action space already rescaled to [-1, 1]
            (`lit_rl.envs.make.make_gym_env`).
        seeds: each env's seed, applied at the first reset (`set_seed(s)` later seeds
            the next reset with s, s + 1, ...).
        vectorization: ``sync`` or ``async`` for several envs (ignored for one).
        reports_costs: write ``cost`` / ``episode_cost`` from ``info["cost"]``.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        seeds: Sequence[int],
        vectorization: str = "sync",
        reports_costs: bool = False,
    ) -> None:
        if vectorization not in VECTORIZATIONS:
            raise ValueError(
                f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}"
            )
        num_envs = len(env_fns)
        self.num_envs = num_envs
        self.vectorized = num_envs > 1
        batch = torch.Size([num_envs]) if self.vectorized else torch.Size([])
        super().__init__(device="cpu", batch_size=batch)
        if self.vectorized:
            wrapped = [lambda fn=fn: SnapshotAccess(fn()) for fn in env_fns]
            vector_cls = (
                gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
            )
            self.gym_env = vector_cls(wrapped, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
            obs_space = self.gym_env.single_observation_space
            act_space = self.gym_env.single_action_space
        else:
            self.gym_env = env_fns[0]()
            obs_space, act_space = self.gym_env.observation_space, self.gym_env.action_space
        self.reports_costs = reports_costs
        self._seeds: list[int] | None = list(seeds)
        self._make_specs(obs_space, act_space)
        # one [*batch, 1] column shape for every per-env scalar
        self._column = (*batch, 1)

    # ------------------------------------------------------------------ specs
    def _make_specs(self, obs_space: gym.spaces.Box, act_space: gym.spaces.Box) -> None:
        batch = tuple(self.batch_size)
        column = (*batch, 1)
        observation = Bounded(
            low=torch.as_tensor(obs_space.low, dtype=torch.float32).expand(
                *batch, *obs_space.shape
            ),
            high=torch.as_tensor(obs_space.high, dtype=torch.float32).expand(
                *batch, *obs_space.shape
            ),
            shape=(*batch, *obs_space.shape),
            dtype=torch.float32,
        )
        observations = {
            "observation": observation,
            "step_count": Bounded(
                low=0, high=torch.iinfo(torch.int64).max, shape=column, dtype=torch.int64
            ),
            "episode_reward": Unbounded(shape=column, dtype=torch.float32),
            "is_init": Categorical(2, shape=column, dtype=torch.bool),
        }
        if self.reports_costs:
            observations[COST_KEY] = Unbounded(shape=column, dtype=torch.float32)
            observations[EPISODE_COST_KEY] = Unbounded(shape=column, dtype=torch.float32)
        self.observation_spec = Composite(observations, shape=batch)
        self.action_spec = Bounded(
            low=torch.as_tensor(act_space.low, dtype=torch.float32).expand(
                *batch, *act_space.shape
            ),
            high=torch.as_tensor(act_space.high, dtype=torch.float32).expand(
                *batch, *act_space.shape
            ),
            shape=(*batch, *act_space.shape),
            dtype=torch.float32,
        )
        self.reward_spec = Unbounded(shape=column, dtype=torch.float32)
        self.done_spec = Composite(
            {
                key: Categorical(2, shape=column, dtype=torch.bool)
                for key in ("done", "terminated", "truncated")
            },
            shape=batch,
        )

    # ------------------------------------------------------------- stepping
    def _column_of(self, value, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value), dtype=dtype).reshape(self._column)

    def _observation(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(obs, dtype=np.float32))

    def _costs(self, info: dict[str, Any]) -> torch.Tensor:
        cost = info.get(COST_KEY, 0.0)
        if self.vectorized and COST_KEY in info:
            # vector infos carry a mask "_cost" of the envs that reported one this step
            cost = np.where(info.get("_" + COST_KEY, True), cost, 0.0)
        return self._column_of(cost, torch.float32)

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """`EnvBase.step` without its generic post-processing: `_step` already writes
        every done key and a `[*batch, 1]` reward, which is all that post-processing
        would check or complete. Partial steps (``"_step"``) and preset ``"next"``
        entries take TorchRL's own path."""
        keys = tensordict.keys()  # (a TensorDict has no `in` of its own)
        if "_step" in keys or "next" in keys:
            return super().step(tensordict)
        return tensordict.set("next", self._step(tensordict))

    def _step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        """What a collector calls each step: step, carry the next state over with
        TorchRL's own `step_mdp`, reset the envs that finished. `EnvBase`'s version
        also handles device casts and native autoreset, neither of which this env
        has (its data lives on its own device; autoreset is off)."""
        if tensordict.device != self.device or self._post_step_mdp_hooks is not None:
            return super()._step_and_maybe_reset(tensordict)
        tensordict = self.step(tensordict)
        return tensordict, self.maybe_reset(self._step_mdp(tensordict))

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").detach().cpu().numpy()
        obs, reward, terminated, truncated, info = self.gym_env.step(action)
        if self.vectorized:
            reward = self._column_of(reward, torch.float32)
            terminated = self._column_of(terminated, torch.bool)
            truncated = self._column_of(truncated, torch.bool)
            done = terminated | truncated
        else:  # Python scalars: three small tensors, no NumPy round trips
            done = torch.tensor([bool(terminated or truncated)])
            reward = torch.tensor([float(reward)], dtype=torch.float32)
            terminated = torch.tensor([bool(terminated)])
            truncated = torch.tensor([bool(truncated)])
        out = {
            "observation": self._observation(obs),
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "done": done,
            "step_count": tensordict.get("step_count") + 1,
            "episode_reward": tensordict.get("episode_reward") + reward,
            "is_init": torch.zeros(self._column, dtype=torch.bool),
        }
        if self.reports_costs:
            cost = self._costs(info)
            out[COST_KEY] = cost
            out[EPISODE_COST_KEY] = tensordict.get(EPISODE_COST_KEY) + cost
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        seed, self._seeds = self._seeds, None
        if self.vectorized:
            options = None
            mask = None if tensordict is None else tensordict.get("_reset", None)
            if mask is not None and seed is None:
                mask_np = mask.reshape(self.num_envs).cpu().numpy().astype(bool)
                if not mask_np.all():
                    options = {"reset_mask": mask_np}
            obs, info = self.gym_env.reset(seed=seed, options=options)
        else:
            obs, info = self.gym_env.reset(seed=None if seed is None else seed[0])
        zeros = torch.zeros(self._column, dtype=torch.bool)
        out = {
            "observation": self._observation(obs),
            "step_count": torch.zeros(self._column, dtype=torch.int64),
            "episode_reward": torch.zeros(self._column, dtype=torch.float32),
            "is_init": torch.ones(self._column, dtype=torch.bool),
            "done": zeros,
            "terminated": zeros.clone(),
            "truncated": zeros.clone(),
        }
        if self.reports_costs:
            out[COST_KEY] = torch.zeros(self._column, dtype=torch.float32)
            out[EPISODE_COST_KEY] = torch.zeros(self._column, dtype=torch.float32)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        """Seeds the next reset: env i gets `seed + i` (one env: `seed`)."""
        if seed is not None:
            self._seeds = [seed + i for i in range(self.num_envs)]

    # ------------------------------------------------------------ snapshots
    def env_states(self) -> list[dict[str, Any]]:
        """Each Gymnasium env's inside (`lit_rl.envs.snapshot`), in order."""
        if self.vectorized:
            return list(self.gym_env.get_attr("lit_rl_state"))
        return [snapshot_env_state(self.gym_env)]

    def load_env_states(self, states: Sequence[dict[str, Any]]) -> None:
        if len(states) != self.num_envs:
            raise ValueError(f"{len(states)} env states for {self.num_envs} envs")
        if self.vectorized:
            self.gym_env.set_attr("lit_rl_state", list(states))
        else:
            restore_env_state(self.gym_env, states[0])

    def close(self, *, raise_if_closed: bool = True) -> None:
        self.gym_env.close()
        super().close(raise_if_closed=raise_if_closed)
