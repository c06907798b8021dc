"""The online source: a TorchRL `Collector` steps the envs under the update-to-data ratio.

Before each update the source collects until the update is "due": with `utd_ratio`
updates per env step (per rank) after `warmup_steps` global env steps of uniform random
actions. The run ends once `max_env_steps` global env steps are collected and their
updates done. Each rank owns its envs and replay buffer; at a checkpoint it writes the
new replay rows, the collector's counters, the observation it acts on next, the
Gymnasium envs' state and the RNG (`lit_rl.modules.state`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector

from lit_rl.data.replay import make_replay_buffer, tensordict_from_state, tensordict_state
from lit_rl.data.replay_segments import ReplaySegments
from lit_rl.errors import ConfigError
from lit_rl.modules import state as run_state
from lit_rl.sources.base import DataSource
from lit_rl.sources.torchrl_state import (
    keep_private_keys,
    next_observation,
    set_next_observation,
)


class CollectorSource(DataSource):
    """Collect -> extend the replay buffer, as often as the UTD ratio asks."""

    clock = "env_steps"

    def __init__(self, module) -> None:
        super().__init__(module)
        self.collector: Collector | None = None
        self.dataset = None  # an offline run's dataset this run started from (init_from)
        self._iterator = None
        self.segments: ReplaySegments | None = None

    # ----------------------------------------------------------------- counting
    def updates_after(self, local_env_steps: int, world_size: int) -> int:
        """Updates the recipe asks for once a rank has collected `local_env_steps`."""
        hp = self.module.hparams
        learning_steps = max(0, local_env_steps - hp.warmup_steps // world_size)
        return math.floor(learning_steps * hp.utd_ratio + 1e-9)

    def updates_due(self) -> int:
        module = self.module
        return self.updates_after(module.local_env_steps, module.world_size)

    def total_updates(self, world_size: int = 1) -> int:
        return self.updates_after(self.module.hparams.max_env_steps // world_size, world_size)

    def budget_spent(self) -> bool:
        return self.module.env_steps >= self.module.hparams.max_env_steps

    def progress(self) -> int:
        return self.module.env_steps

    def total(self) -> int:
        return self.module.hparams.max_env_steps

    def updates_per_clock_tick(self) -> float:
        return self.module.hparams.utd_ratio

    # -------------------------------------------------------------------- loop
    def start(self) -> None:
        module, hp = self.module, self.module.hparams
        rank = module.global_rank
        module.replay_buffer = make_replay_buffer(
            hp.buffer_capacity, hp.batch_size, device=module.device
        )
        self.segments = ReplaySegments(module.state_dir() / run_state.STATE_DIR, rank)
        on_cpu = torch.device("cpu") if module.device.type == "cpu" else None
        self.collector = Collector(
            module.make_training_env(rank),
            module.make_policy(),
            frames_per_batch=hp.frames_per_batch * hp.num_envs,
            total_frames=-1,
            init_random_frames=hp.warmup_steps // module.world_size,
            # Everything the collector holds stays where the envs step (the CPU): the
            # policy moves observations to its own device and actions back
            # (ActingPolicy), and the replay buffer copies each batch into its storage on
            # the module's device. On a CPU run the policy and storage are named as on
            # the CPU too, so the collector's data carries the CPU device and no step
            # pays for a cast (a device-less batch is cast on every buffer write).
            # (Collector-side casting put trajectory ids on the GPU, which broke partial
            # resets of parallel envs.)
            policy_device=on_cpu,
            storing_device=on_cpu,
            # The batch is copied into the replay buffer at once, so the collector may
            # hand out its own buffer instead of a fresh clone every step.
            return_same_td=True,
            track_traj_ids=False,  # nothing reads trajectory ids; they cost a copy a step
            trust_policy=True,  # planner policies hold no parameters; devices match by design
        )
        keep_private_keys(self.collector)
        self._iterator = None
        if hp.init_from is not None:
            fresh = module.updates == 0 and module.env_steps == 0
            self.start_from_offline_run(hp.init_from, seed_buffer=fresh)

    def start_from_offline_run(self, checkpoint_path: str, seed_buffer: bool) -> None:
        """Offline-to-online: the offline run's dataset goes into the replay buffer first
        (its transitions are not counted as env steps; a resumed run has them in its own
        replay state), and its reference returns keep `eval/normalized_score` going."""
        from lit_rl.data.datasets import load_dataset
        from lit_rl.modules.state import load_plain

        hparams = load_plain(checkpoint_path, "lit_rl checkpoint").get("hyper_parameters", {})
        if not hparams.get("dataset"):
            return  # an online checkpoint: weights only
        module = self.module
        self.dataset = load_dataset(hparams["dataset"], module.hparams.env_id)
        if not seed_buffer:
            return
        transitions = self.dataset.transitions
        if len(transitions) > module.hparams.buffer_capacity:
            raise ConfigError(
                f"algo.buffer_capacity={module.hparams.buffer_capacity} cannot hold the "
                f"{len(transitions)} transitions of {hparams['dataset']}"
            )
        module.replay_buffer.extend(transitions.select(*module.buffer_keys).to(module.device))

    def stop(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()
            self.collector = None

    def collect(self) -> TensorDictBase:
        """One collector call: extend the buffer, count env steps and finished episodes."""
        module = self.module
        if self._iterator is None:
            self._iterator = iter(self.collector)
        with torch.no_grad():
            rollout = next(self._iterator).reshape(-1)
        module.replay_buffer.extend(rollout.select(*module.buffer_keys))
        module.env_steps += rollout.numel() * module.world_size
        done = rollout.get(("next", "done")).reshape(-1)
        if done.any():
            returns = rollout.get(("next", "episode_reward")).reshape(-1)[done]
            module.episodes += int(done.sum())
            module.last_episode_return = float(returns[-1])
            if ("next", "episode_cost") in rollout.keys(include_nested=True):
                costs = rollout.get(("next", "episode_cost")).reshape(-1)[done]
                module.last_episode_cost = float(costs[-1])
                module.after_episodes(costs)
        module.after_collect(rollout)
        return rollout

    def ready_for_update(self) -> bool:
        """Collect until the UTD ratio asks for another update; False once the budget is spent."""
        while self.module.updates >= self.updates_due():
            if self.budget_spent():
                return False
            self.collect()
        return True

    def finished(self) -> bool:
        return self.budget_spent() and self.module.updates >= self.updates_due()

    # ------------------------------------------------------------- checkpoints
    def collector_state(self) -> dict[str, Any]:
        """The collector's counters and trajectory ids, as plain dicts of tensors
        (its policy weights come from the checkpoint)."""
        state = dict(self.collector.state_dict())
        state.pop("policy_state_dict", None)
        return {
            key: dict(value) if isinstance(value, dict) else value for key, value in state.items()
        }

    def rank_state(self) -> dict[str, Any]:
        module = self.module
        return {
            "replay": self.segments.save(module.replay_buffer),
            "collector": self.collector_state(),
            "carrier": tensordict_state(next_observation(self.collector).clone()),
            "env": self.collector.env.env_states(),
            "acting": module.acting_state(),
            "episodes": module.episodes,
            "last_episode_return": module.last_episode_return,
            "last_episode_cost": module.last_episode_cost,
        }

    def load_rank_state(self, saved: dict[str, Any]) -> None:
        module = self.module
        self.segments.load(
            module.replay_buffer, saved["replay"], run_state.load_plain, saved["state_dir"]
        )
        self.collector.load_state_dict(saved["collector"], strict=False)
        set_next_observation(self.collector, tensordict_from_state(saved["carrier"]))
        env_states = saved["env"] if isinstance(saved["env"], list) else [saved["env"]]
        self.collector.env.load_env_states(env_states)
        module.episodes = saved["episodes"]
        module.last_episode_return = saved["last_episode_return"]
        module.last_episode_cost = saved.get("last_episode_cost")
        acting = module.collector_acting()
        if acting is not None and saved.get("acting") is not None:
            acting.load_acting_state(saved["acting"])
