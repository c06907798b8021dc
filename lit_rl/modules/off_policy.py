"""The engine: one loop for every algorithm that learns from a replay buffer.

Each `training_step` performs `updates_per_step` (default 1) gradient updates, so
`trainer.global_step` (with one optimizer) equals the update count. Where the batches
come from is the data source's business (`lit_rl.sources`): online, a TorchRL
`Collector` steps the envs until the next update is "due" under the update-to-data
ratio, and the run ends once `max_env_steps` env steps (summed over ranks) are
collected and their updates done; offline (a recipe with `dataset`), the replay buffer
holds a fixed dataset and the run ends after `max_updates` updates. The run's clock
(`progress`) is env steps online and updates offline.

Subclasses provide (see docs/extending.md):
    make_loss()            -> nn.Module, TensorDict in, TensorDict of loss_* out
    make_policy()          -> TensorDict policy (TensorDictModuleBase) writing "action"
    configure_optimizers()
and may override:
    update(batch)          one gradient step; returns the loss TensorDict
    after_update()         target networks, schedules (default: Polyak every k updates)
    after_collect(rollout) work that follows new data (LOOP refits its model)
    schedules(updates)     every scheduled value at an update (tested at a run's end)

Counting (global = summed over DDP ranks; see docs/engine.md):
    env_steps      global env steps collected so far.
    updates        gradient updates done (identical on every rank).
    warmup_steps   global env steps of uniform random actions before learning.
    utd_ratio      updates per env step *per rank*: each rank collects the same number
                   of steps, so ranks stay in lock-step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from lit_rl.distributed import any_rank_true
from lit_rl.envs.costs import env_reports_costs
from lit_rl.envs.lean import VECTORIZATIONS
from lit_rl.envs.make import make_env
from lit_rl.errors import ConfigError, NonFiniteLossError
from lit_rl.modules import state as run_state
from lit_rl.modules.hook_overhead import CheapHookBookkeeping
from lit_rl.seeding import sampling_seed, train_env_seed
from lit_rl.sources.base import DataSource
from lit_rl.sources.dataset import DatasetSource
from lit_rl.sources.online import CollectorSource

BUFFER_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "terminated"),
    ("next", "done"),
)
COST = ("next", "cost")


class _Ticks(IterableDataset):
    """An endless stream of step indices: the engine, not the data, decides when to stop."""

    def __iter__(self) -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1


def summed_loss(losses: TensorDictBase) -> torch.Tensor:
    """The sum of a loss module's ``loss_*`` terms: the one tensor each update backpropagates."""
    return sum(value for key, value in losses.items() if key.startswith("loss_"))


def first_non_finite(losses: TensorDictBase) -> tuple[str, float] | None:
    """`(name, mean value)` of the first NaN/inf `loss_*` term, or None.

    One check over all terms (one host synchronisation per update); only a failing
    update looks for the culprit term by term.
    """
    terms = [value for key, value in losses.items() if key.startswith("loss_")]
    if not terms or bool(
        torch.isfinite(torch.stack([t.detach().float().sum() for t in terms])).all()
    ):
        return None
    return next(
        (
            (key, float(value.detach().float().mean()))
            for key, value in losses.items()
            if key.startswith("loss_") and not torch.isfinite(value).all()
        ),
        None,
    )


def gradients_finite(optimizers) -> bool:
    """Whether every gradient the optimizers would apply is finite."""
    grads = [
        param.grad
        for optimizer in optimizers
        for group in getattr(optimizer, "optimizer", optimizer).param_groups
        for param in group["params"]
        if param.grad is not None
    ]
    if not grads:
        return True
    total = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
    return bool(torch.isfinite(total))


class OffPolicyModule(CheapHookBookkeeping, pl.LightningModule):
    """Collect -> extend buffer -> sample -> update -> target update, once for all algorithms.

    Args:
        env_id: Gymnasium id of the training env.
        obs_dim, act_dim: env dimensions (the CLI reads them from the env).
        max_env_steps: global env-step budget; the run stops when it is spent.
        warmup_steps: global env steps of uniform random actions before learning.
        utd_ratio: gradient updates per env step (per rank).
        frames_per_batch: vector steps per collector call (1 = update after every step);
            each vector step steps all `num_envs` envs.
        num_envs: envs per rank, stepped together as one Gymnasium vector env
            (`lit_rl.envs.lean.GymnasiumEnv`); DPMD/SDAC's released code collects with 5.
            Env `i` of rank `r` is seeded `lit_rl.seeding.train_env_seed(seed, r, i)`, a
            stream no other (seed, rank, env) shares; budgets and the UTD ratio count
            every env's steps.
        vectorization: ``sync`` (the rank's envs step in its own process) or ``async``
            (a worker process per env, for machines with cores to spare).
        batch_size: transitions per update (per rank).
        buffer_capacity: replay capacity in transitions (per rank).
        tau: Polyak rate of target networks.
        target_update_every: updates between target updates.
        seed: the run's seed: it seeds network initialisation, and every env and
            sampling stream is derived from it (`lit_rl.seeding`).
        max_episode_steps: overrides the env's time limit.
        env_kwargs: keyword arguments of `gymnasium.make` (the recipe's `env.kwargs`).
        log_every_updates: updates between logged training metrics.
        updates_per_step: updates per Lightning `training_step`; >1 amortises the
            Lightning loop's fixed cost (about 0.5 ms a step). Use it with
            `frames_per_batch` equal to it to also amortise the collector's cost.
        run_dir: where per-rank replay/env state is written beside checkpoints.
        dataset, max_updates: learn offline from this dataset (a D4RL-layout HDF5 file
            or `minari:NAME`) for `max_updates` updates instead of collecting
            (`lit_rl.sources.dataset`); the recipe's top-level keys of the same names.
        init_from: an offline run's checkpoint this online run starts from: its weights
            are loaded and the replay buffer is seeded with its dataset before
            collection starts (offline-to-online; the recipe's `init_from` key).
        cost_limit: the episodic cost limit of a safe run (the recipe's top-level
            `cost_limit`); safe algorithms (`uses_costs`) need it and an env that reports
            costs. Any run on such an env logs `train/episode_cost` and `eval/cost_mean`.
    """

    buffer_keys: tuple = BUFFER_KEYS
    algo_name: str | None = None  # the recipe's algo.name; set by registered algorithms
    # Offline-only algorithms (behaviour cloning): a dataset, or an offline checkpoint to
    # continue online (init_from), is required.
    requires_dataset: bool = False
    # Safe algorithms learn from per-step costs: the replay buffer then holds
    # ("next", "cost"), and the run needs cost_limit and an env that reports costs.
    uses_costs: bool = False

    def __init__(
        self,
        env_id: str,
        obs_dim: int,
        act_dim: int,
        max_env_steps: int,
        warmup_steps: int = 1000,
        utd_ratio: float = 1.0,
        frames_per_batch: int = 1,
        num_envs: int = 1,
        vectorization: str = "sync",
        batch_size: int = 256,
        buffer_capacity: int = 1_000_000,
        tau: float = 0.005,
        target_update_every: int = 1,
        seed: int = 0,
        max_episode_steps: int | None = None,
        env_kwargs: dict | None = None,
        log_every_updates: int = 100,
        updates_per_step: int = 1,
        run_dir: str | None = None,
        dataset: str | None = None,
        max_updates: int | None = None,
        init_from: str | None = None,
        cost_limit: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.check_hyperparameters()
        self.check_costs()
        if self.uses_costs:
            self.buffer_keys = (*type(self).buffer_keys, COST)
        self.automatic_optimization = False
        self.loss_module = self.make_loss()
        self.source = self.make_source()
        self.env_steps = 0
        self.updates = 0
        self.episodes = 0
        self.last_episode_return: float | None = None
        self.last_episode_cost: float | None = None
        self.replay_buffer = None  # filled by the source at fit start
        self._pending_rank_state: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._rate_mark = (time.perf_counter(), 0, 0)
        self.env_fps = 0.0
        self.updates_per_s = 0.0

    def check_hyperparameters(self) -> None:
        """Refuse values that cannot run, naming the recipe key (a one-line CLI error)."""
        hp = self.hparams
        for key, ok in self.range_checks().items():
            if not ok:
                hint = " (at least algo.batch_size)" if key == "buffer_capacity" else ""
                raise ConfigError(f"algo.{key}={hp[key]} is out of range{hint}")
        if hp.vectorization not in VECTORIZATIONS:
            raise ConfigError(
                f"algo.vectorization='{hp.vectorization}'; choose one of "
                f"{', '.join(VECTORIZATIONS)}"
            )

    def check_costs(self) -> None:
        """A safe algorithm needs an env with costs and a cost limit (one-line errors)."""
        hp = self.hparams
        if not self.uses_costs:
            return
        if not env_reports_costs(hp.env_id, hp.env_kwargs):
            raise ConfigError(
                f"{self.algo_name} learns from costs, but env '{hp.env_id}' reports no "
                "info['cost'] (lit_rl's safety envs: lit_rl/SafePointGoal-v0, ...)"
            )
        if hp.cost_limit is None:
            raise ConfigError(f"{self.algo_name} needs the recipe's top-level cost_limit")

    def range_checks(self) -> dict[str, bool]:
        """`{hyperparameter: value is usable}`; algorithms extend it with their own keys."""
        hp = self.hparams
        return {
            "utd_ratio": hp.utd_ratio > 0,
            "batch_size": hp.batch_size >= 1,
            "frames_per_batch": hp.frames_per_batch >= 1,
            "num_envs": hp.num_envs >= 1,
            "updates_per_step": hp.updates_per_step >= 1,
            "warmup_steps": hp.warmup_steps >= 0,
            "target_update_every": hp.target_update_every >= 1,
            "log_every_updates": hp.log_every_updates >= 1,
            "tau": 0 < hp.tau <= 1,
            "buffer_capacity": hp.buffer_capacity >= hp.batch_size,
            "max_updates": hp.max_updates is None or hp.max_updates >= 1,
        }

    # ----------------------------------------------------------------- to override
    def make_loss(self) -> nn.Module:
        """Build the loss module (owns the networks and targets)."""
        raise NotImplementedError

    def make_policy(self) -> TensorDictModuleBase:
        """The acting policy used by the collector and by evaluation."""
        raise NotImplementedError

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        """Policies the evaluation callback runs: "" (the acting policy) logs as
        `eval/return_mean`, any other name as `eval/<name>_return_mean`."""
        return {"": self.make_policy()}

    def update_optimizers(self) -> list:
        """The optimizers `update` steps (all of them unless a subclass trains some
        networks elsewhere, like LOOP's dynamics model)."""
        optimizers = self.optimizers()
        return optimizers if isinstance(optimizers, list) else [optimizers]

    def compute_losses(self, batch: TensorDictBase) -> TensorDictBase:
        """The loss module's terms on `batch` (algorithms with scheduled loss arguments
        pass them here)."""
        return self.loss_module(batch)

    def update(self, batch: TensorDictBase) -> TensorDictBase:
        """One gradient step on `batch`: sum the `loss_*` terms, one backward, step.

        One backward of the summed losses gives DDP a single gradient reduction per
        step; the loss module guarantees that each term reaches only its own params.
        """
        losses = self.compute_losses(batch)
        total = summed_loss(losses)
        optimizers = self.update_optimizers()
        self.checked_backward(losses, total, optimizers)
        self.before_optimizer_step()
        for optimizer in optimizers:
            optimizer.step()
        return losses

    def before_optimizer_step(self) -> None:
        """Called between the backward and the optimizer steps (gradient clipping:
        Lightning's `gradient_clip_val` does not apply under manual optimization)."""

    def after_update(self) -> None:
        """Soft target update every `target_update_every` updates."""
        if self.updates % self.hparams.target_update_every == 0:
            self.loss_module.update_targets(self.hparams.tau)

    # ---------------------------------------------------------------- counting
    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    @property
    def local_env_steps(self) -> int:
        return self.env_steps // self.world_size

    def total_updates(self, world_size: int = 1) -> int:
        """Updates a whole run does (per rank): what its schedules must survive."""
        return self.source.total_updates(world_size)

    def schedules(self, updates: int) -> dict[str, float]:
        """Every scheduled quantity (temperature, learning rates, noise) at update
        `updates`, computed without training; tests check each recipe's last update."""
        return {}

    # ------------------------------------------------------------------ data
    def make_source(self) -> DataSource:
        """Where batches come from: the dataset when the recipe names one, else a collector."""
        hp = self.hparams
        if self.requires_dataset and hp.dataset is None and hp.init_from is None:
            raise ConfigError(
                f"{self.algo_name} learns from a dataset (dataset=FILE.hdf5) or continues an "
                "offline checkpoint online (init_from=CKPT)"
            )
        if self.hparams.dataset is not None:
            if self.hparams.max_updates is None:
                raise ConfigError("an offline run (dataset=...) needs max_updates")
            return DatasetSource(self)
        return CollectorSource(self)

    def dataset_keys(self) -> tuple:
        """Transition keys this algorithm reads from a dataset (SARSA critics add
        `("next", "action")`)."""
        return self.buffer_keys

    @property
    def collector(self):
        """The online source's TorchRL collector (None offline or outside a fit)."""
        return getattr(self.source, "collector", None)

    def normalized_score(self, episode_return: float | None) -> float | None:
        """`100 * (R - R_random) / (R_expert - R_random)` with the reference returns of
        the run's dataset; None without them."""
        dataset = getattr(self.source, "dataset", None)
        if episode_return is None or dataset is None:
            return None
        return dataset.normalized_score(episode_return)

    @property
    def progress(self) -> int:
        """The run's clock: global env steps online, updates offline."""
        return self.source.progress()

    # ----------------------------------------------------------------- setup
    def make_env(self, seed: int):
        """One env (a rank's training envs and the evaluation env are made by this)."""
        hp = self.hparams
        return make_env(hp.env_id, seed, hp.max_episode_steps, env_kwargs=hp.env_kwargs)

    def make_training_env(self, rank: int):
        """Rank `rank`'s training env: one env, or `num_envs` of them as a vector env."""
        hp = self.hparams
        seeds = [train_env_seed(hp.seed, rank, i) for i in range(hp.num_envs)]
        return make_env(
            hp.env_id,
            seeds[0] if hp.num_envs == 1 else seeds,
            hp.max_episode_steps,
            vectorization=hp.vectorization,
            env_kwargs=hp.env_kwargs,
        )

    def on_fit_start(self) -> None:
        # Sampling noise differs per rank; network init (before fit) is identical.
        torch.manual_seed(sampling_seed(self.hparams.seed, self.global_rank))
        self.source.start()
        if self._pending_rank_state is not None:
            self._restore_rank_state(self._pending_rank_state)
            self._pending_rank_state = None
        self._rate_mark = (time.perf_counter(), self.env_steps, self.updates)

    def on_fit_end(self) -> None:
        self.source.stop()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Ticks(), batch_size=None)

    # ------------------------------------------------------------------ loop
    def after_episodes(self, episode_costs: torch.Tensor) -> None:
        """Called with the costs `[n]` of training episodes that just ended (envs that
        report costs; SAC-Lagrangian's multiplier learns here). Default: nothing."""

    def after_collect(self, rollout: TensorDictBase) -> None:
        """Called after each collector call, once the rollout is in the replay buffer and
        counted (LOOP refits its dynamics model here). Default: nothing."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng is not None:
            # Restored here, after Lightning built the dataloader iterator (which draws
            # from the torch RNG), so a resumed run draws exactly what the original did.
            run_state.set_rng_state(self._pending_rng)
            self._pending_rng = None
        for _ in range(self.hparams.updates_per_step):
            if not self.source.ready_for_update():
                self.trainer.should_stop = True
                return None
            losses = self.update(self.replay_buffer.sample())
            self.updates += 1
            self.after_update()
            if self.updates % self.hparams.log_every_updates == 0:
                self.log_training(losses)
        if self.source.finished():
            self.trainer.should_stop = True
        return None

    def check_finite(self, losses: TensorDictBase) -> None:
        """Raise `NonFiniteLossError` naming the first NaN/inf loss (call it before the
        backward). Under DDP every rank learns whether any rank saw one (one small
        all-reduce), so all ranks stop at the same update. `checked_backward` does the
        same check without the extra all-reduce; this stays for updates written around
        their own backward."""
        bad = first_non_finite(losses)
        # every rank takes part in the all-reduce, healthy or not
        elsewhere = self.world_size > 1 and any_rank_true(bad is not None, self.device)
        if bad is not None:
            raise NonFiniteLossError(bad[0], bad[1], self.updates)
        if elsewhere:
            raise NonFiniteLossError("on another rank", float("nan"), self.updates)

    def checked_backward(self, losses: TensorDictBase, total: torch.Tensor, optimizers) -> None:
        """`zero_grad` and one backward of `total`, raising `NonFiniteLossError` (naming
        the first NaN/inf loss) before any optimizer step.

        Under DDP every rank must stop at the same update, or the healthy ones wait
        forever in the next all-reduce of a rank that left. The news travels in the
        gradient all-reduce itself: a rank with a bad loss backpropagates `total * nan`,
        so every rank's averaged gradients come out non-finite, and each rank checks
        its own. No extra collective per update (each one waits for the slowest rank:
        ~1 ms of a ~20 ms update on 2 CPU ranks). Under fp16 with a gradient scaler,
        inf gradients are routine (the scaler skips those steps), so there the ranks
        all-reduce a flag before the backward instead.
        """
        bad = first_non_finite(losses)
        distributed = self.world_size > 1
        scaled = distributed and getattr(self.trainer.precision_plugin, "scaler", None)
        if not distributed:
            if bad is not None:
                raise NonFiniteLossError(bad[0], bad[1], self.updates)
        elif scaled:
            self.check_finite(losses)
        elif bad is not None:
            total = total * float("nan")  # poisons every rank's averaged gradients
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if distributed and not scaled:
            if bad is not None:
                raise NonFiniteLossError(bad[0], bad[1], self.updates)
            if not gradients_finite(optimizers):
                raise NonFiniteLossError("on another rank", float("nan"), self.updates)

    def log_training(self, losses: TensorDictBase) -> None:
        """Write training metrics to every logger (global rank 0), stepped by update count.

        Loggers are called directly rather than through `self.log`: metrics are produced
        every `log_every_updates` updates only, and need no cross-rank reduction.
        """
        now = time.perf_counter()
        mark_time, mark_steps, mark_updates = self._rate_mark
        elapsed = max(now - mark_time, 1e-9)
        self.env_fps = (self.env_steps - mark_steps) / elapsed
        self.updates_per_s = (self.updates - mark_updates) / elapsed
        self._rate_mark = (now, self.env_steps, self.updates)
        metrics = {
            (k if k.startswith("loss_") else f"train/{k}"): float(v.detach().float().mean())
            for k, v in losses.items()
        }
        metrics.update(
            {
                "env_steps": float(self.env_steps),
                "updates": float(self.updates),
                "time/updates_per_s": self.updates_per_s,
            }
        )
        if self.source.clock == "env_steps":
            metrics["time/env_fps"] = self.env_fps
        if self.last_episode_return is not None:
            metrics["train/episode_return"] = self.last_episode_return
        if self.last_episode_cost is not None:
            metrics["train/episode_cost"] = self.last_episode_cost
        self.log_metrics(metrics)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Send `metrics` to the trainer's loggers at the current update (rank 0 only)."""
        if self._trainer is None or not self.trainer.is_global_zero:
            return
        for logger in self.trainer.loggers:
            logger.log_metrics(metrics, step=self.updates)
            # flush now: metrics are already thinned out, and curves must be readable
            # while the run goes (CSVLogger would otherwise wait for a step count ending
            # in 99, which update counts that are multiples of 100 never reach)
            logger.save()

    # ------------------------------------------------------------ checkpoints
    def _rank_state(self) -> dict[str, Any]:
        return {**self.source.rank_state(), "rng": run_state.rng_state()}

    def collector_acting(self) -> Any:
        """The collector's acting module when it carries state between env steps that a
        resume must restore (a planner's warm start), as `acting_state()` /
        `load_acting_state(state)` of tensors and plain values; None otherwise."""
        acting = (
            getattr(self.collector.policy, "acting", None) if self.collector is not None else None
        )
        stateful = hasattr(acting, "acting_state") and hasattr(acting, "load_acting_state")
        return acting if stateful else None

    def acting_state(self) -> dict[str, Any] | None:
        acting = self.collector_acting()
        return None if acting is None else acting.acting_state()

    def _restore_rank_state(self, saved: dict[str, Any]) -> None:
        self.source.load_rank_state(saved)
        self._pending_rng = saved["rng"]

    def state_dir(self) -> Path:
        run_dir = self.hparams.run_dir or self.trainer.default_root_dir
        return Path(run_dir)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        relative = None
        if self.replay_buffer is not None:  # fitting (not a module loaded for evaluation)
            relative = run_state.write_rank_state(
                self.state_dir(), self.global_rank, self.updates, self._rank_state()
            )
        from lit_rl.modules import algorithm_name

        checkpoint["lit_rl_algo"] = algorithm_name(type(self))
        checkpoint["lit_rl"] = {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "world_size": self.world_size,
            "rank_state": relative,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("lit_rl")
        if saved is None:
            return
        self.env_steps = saved["env_steps"]
        self.updates = saved["updates"]
        ckpt_path = self._trainer.ckpt_path if self._trainer is not None else None
        if saved["rank_state"] is None or ckpt_path is None:
            return
        if saved["world_size"] != self.world_size:
            raise ConfigError(
                f"checkpoint was written by {saved['world_size']} ranks; resume it with "
                f"trainer.devices x trainer.num_nodes = {saved['world_size']}"
            )
        base_dir = Path(ckpt_path).parent
        self._pending_rank_state = run_state.read_rank_state(
            base_dir, self.global_rank, self.updates
        )
        self._pending_rank_state["state_dir"] = str(base_dir / run_state.STATE_DIR)
