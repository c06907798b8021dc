"""Periodic deterministic evaluation on a separate env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torchrl.envs.utils import ExplorationType, set_exploration_type

from lit_rl.seeding import eval_env_seed


@torch.no_grad()
def evaluate_episodes(
    env, policy, episodes: int, max_steps: int = 100_000
) -> dict[str, torch.Tensor]:
    """`{"return": [episodes]}` of deterministic episodes of `policy` on `env`, and
    `"cost"` (each episode's summed cost) when the env reports costs."""
    returns, costs = [], []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(episodes):
            rollout = env.rollout(max_steps, policy, break_when_any_done=True)
            returns.append(rollout.get(("next", "reward")).sum())
            if ("next", "cost") in rollout.keys(include_nested=True):
                costs.append(rollout.get(("next", "cost")).sum())
    result = {"return": torch.stack(returns).float()}
    if costs:
        result["cost"] = torch.stack(costs).float()
    return result


def evaluate_policy(env, policy, episodes: int, max_steps: int = 100_000) -> torch.Tensor:
    """Returns of `episodes` deterministic episodes of `policy` on `env`, shape `[episodes]`."""
    return evaluate_episodes(env, policy, episodes, max_steps)["return"]


class EvalCallback(pl.Callback):
    """Every `every` ticks of the run's clock (env steps online, updates offline; see
    `OffPolicyModule.progress`) and at the end, run `episodes` deterministic episodes on
    a separate env and log ``eval/return_mean`` and ``eval/return_std``, and
    ``eval/normalized_score`` when the run's data carries reference returns; on an env
    that reports costs also ``eval/cost_mean`` and ``eval/cost_std`` (summed episode
    costs, to compare with the recipe's `cost_limit`).

    Every policy (the acting one and any other `eval_policies` name, e.g. a planner's
    prior) starts from the same initial states at every evaluation: the eval env is
    reseeded before each, so two policies' returns (and two points of a curve) differ by
    what the policies do, not by which states they drew (Pendulum's returns vary by
    hundreds across initial states).

    Runs on global rank 0 only: parameters are identical across ranks after each update.
    Removing this callback does not change learning.
    """

    def __init__(self, every: int = 5000, episodes: int = 5, video: bool = False) -> None:
        self.every = every
        self.episodes = episodes
        self.video = video
        self.next_eval_at = every
        self.evaluated_at = -1  # the clock at the last evaluation (the end skips a repeat)
        self.last: dict[str, float] = {}
        self._env = None

    @property
    def state_key(self) -> str:
        return "EvalCallback"

    def state_dict(self) -> dict[str, Any]:
        return {"next_eval_at": self.next_eval_at, "last": self.last, "at": self.evaluated_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_eval_at = state_dict["next_eval_at"]
        self.last = state_dict["last"]
        self.evaluated_at = state_dict.get("at", -1)

    def run(self, trainer: pl.Trainer, module) -> dict[str, float]:
        seed = eval_env_seed(module.hparams.seed)
        if self._env is None:
            self._env = module.make_env(seed)
        # the acting policy logs as eval/return_*, others (LOOP's bare actor) by their name
        policies = module.eval_policies()
        was_training = module.training
        module.eval()
        self.last = {}
        try:
            for name, policy in policies.items():
                # fork_rng: evaluation must not shift the training run's random stream.
                with torch.random.fork_rng():
                    self._env.set_seed(seed)  # the same initial states for every policy
                    episodes = evaluate_episodes(self._env, policy, self.episodes)
                prefix = f"eval/{name}_" if name else "eval/"
                for kind, values in episodes.items():
                    self.last[f"{prefix}{kind}_mean"] = float(values.mean())
                    self.last[f"{prefix}{kind}_std"] = float(values.std(unbiased=False))
        finally:
            module.train(was_training)
        if self.video:
            self.record_video(trainer, module, seed)
        score = module.normalized_score(self.last.get("eval/return_mean"))
        if score is not None:
            self.last["eval/normalized_score"] = score
        self.last["env_steps"] = float(module.env_steps)
        self.last["updates"] = float(module.updates)
        self.evaluated_at = module.progress
        module.log_metrics(self.last)
        return self.last

    def record_video(self, trainer: pl.Trainer, module, seed: int) -> None:
        """The first evaluation episode as `videos/eval-<clock>.mp4` in the run folder (clock:
        env steps, or updates offline)."""
        from lit_rl.video import record_episode, send_video

        path = Path(module.hparams.run_dir) / "videos" / f"eval-{module.progress}.mp4"
        was_training = module.training
        module.eval()
        try:
            with torch.random.fork_rng():
                frames = record_episode(module, seed, path)
        finally:
            module.train(was_training)
        send_video(trainer.loggers, "eval/video", path, frames, module.updates)

    def evaluate_and_publish(self, trainer: pl.Trainer, module) -> None:
        """Evaluate on rank 0, share the result with every rank as Lightning's
        `callback_metrics`, then let the callbacks that watch eval metrics act: this is
        lit_rl's "validation end" (a checkpoint watching `eval/return_mean` keeps the
        best, an `EarlyStopping` on it may stop the run). Every rank reaches this at the
        same update (the clock is global), so the broadcast and any save are collective."""
        last = self.run(trainer, module) if trainer.is_global_zero else None
        if trainer.world_size > 1:
            last = trainer.strategy.broadcast(last, src=0)
        self.last, self.evaluated_at = last, module.progress
        for key, value in last.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        for callback in trainer.callbacks:
            watches = getattr(callback, "monitor", None)
            if not (isinstance(watches, str) and watches in last):
                continue
            if isinstance(callback, ModelCheckpoint):
                callback._save_topk_checkpoint(trainer, callback._monitor_candidates(trainer))
            elif isinstance(callback, EarlyStopping):
                callback._run_early_stopping_check(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.progress < self.next_eval_at:
            return
        while self.next_eval_at <= pl_module.progress:
            self.next_eval_at += self.every
        self.evaluate_and_publish(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        fresh = pl_module.progress != self.evaluated_at
        if pl_module.progress > 0 and fresh:
            self.evaluate_and_publish(trainer, pl_module)
        if self._env is not None:
            self._env.close()
            self._env = None
