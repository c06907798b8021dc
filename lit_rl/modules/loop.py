"""LOOP: SAC learns off-policy from the transitions an H-step planner executes.

Sikchi, Zhou, Held, "Learning Off-Policy with Online Planning" (CoRL 2021, arXiv
2008.10066). A probabilistic dynamics ensemble is refitted from the replay buffer every
`model_train_every` env steps; SAC's critic is the planner's terminal value and SAC's
actor its prior (ARC). The planner chooses every executed action, in training and in
evaluation; the bare actor is evaluated too (`eval/actor_return_mean`).
The planning math lives in `lit_rl.planning.planners`, the model fit in
`lit_rl.objectives.dynamics`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from lit_rl.envs.termination import termination_fn
from lit_rl.errors import ConfigError
from lit_rl.modules.model_fitting import PeriodicModelFit
from lit_rl.modules.planner_acting import PlannerActing
from lit_rl.modules.policy import ActingPolicy, make_gaussian_policy
from lit_rl.modules.sac import SAC
from lit_rl.nets.dynamics import EliteDynamics, EnsembleDynamics
from lit_rl.planning.known_models import known_model
from lit_rl.planning.planners import PLANNERS, SequencePlanner

PLANNER_CHOICES = ("arc", "cem", "policy")
MODEL_CHOICES = ("learned", "known")


class LOOP(SAC):
    """LOOP with ARC (online). SAC's arguments apply to the value learner.

    Args (besides SAC's and the engine's):
        planner: ``arc`` (default), ``cem``, or ``policy`` (act with the SAC actor alone).
        model: ``learned`` (the ensemble) or ``known`` (exact equations, where lit_rl has
            them: Pendulum), which makes the planner a known-model H-step lookahead.
        horizon: H; H - 1 model rewards plus the terminal Q.
        num_samples, num_prior, plan_iterations: sequences sampled per iteration, actor
            rollouts added to them (ARC and CEM), iterations.
        kappa: ARC's inverse temperature on returns; scale it with the task's returns.
        init_var, plan_momentum: sampling variance at each step's start, and the weight
            of the old variance (CEM: also mean) in each refinement (0.25, 0.1).
        plan_mean_momentum: ARC's weight of the old mean (0: replaced by the weighted
            mean, as released).
        particles: rollouts per sequence and elite: a sequence's score is the mean of
            `model_elites x particles` rollouts, each on one elite (5 x 4 = 20).
        cem_elites: sequences CEM refits to (20, as the released baseline; CEM also
            gets the `num_prior` actor rollouts).
        pessimism: score = mean - pessimism * std over rollouts (0 online).
        model_hidden, model_members, model_elites: ensemble shape (4x200, 7, 5).
        model_lr, model_weight_decay, model_batch_size: its Adam and minibatches.
        model_train_every: env steps between model fits (250).
        model_max_epochs, model_patience, model_holdout: early stopping on a hold-out split.
    """

    algo_name = "loop"

    def __init__(
        self,
        *args,
        planner: str = "arc",
        model: str = "learned",
        horizon: int = 3,
        num_samples: int = 100,
        num_prior: int = 5,
        particles: int = 4,
        plan_iterations: int = 5,
        kappa: float = 1.0,
        init_var: float = 0.25,
        plan_momentum: float = 0.1,
        plan_mean_momentum: float = 0.0,
        cem_elites: int = 20,
        pessimism: float = 0.0,
        model_hidden: Sequence[int] = (200, 200, 200, 200),
        model_members: int = 7,
        model_elites: int = 5,
        model_lr: float = 1e-3,
        model_weight_decay: float = 1e-5,
        model_batch_size: int = 256,
        model_train_every: int = 250,
        model_max_epochs: int = 100,
        model_patience: int = 5,
        model_holdout: float = 0.2,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        hp = self.hparams
        if planner not in PLANNER_CHOICES:
            raise ConfigError(
                f"algo.planner='{planner}'; choose one of {', '.join(PLANNER_CHOICES)}"
            )
        if model not in MODEL_CHOICES:
            raise ConfigError(f"algo.model='{model}'; choose one of {', '.join(MODEL_CHOICES)}")
        self.known_step = known_model(hp.env_id) if model == "known" else None
        if model == "known" and self.known_step is None:
            raise ConfigError(f"algo.model=known: lit_rl has no known dynamics for {hp.env_id}")
        if hp.num_envs != 1 and planner != "policy":
            raise ConfigError(
                f"algo.num_envs={hp.num_envs}: LOOP's planner acts on one state at a time; "
                "use algo.num_envs=1"
            )
        if model_elites > model_members:
            raise ConfigError("algo.model_elites must not exceed algo.model_members")
        if planner == "cem" and not 1 <= cem_elites <= num_samples:
            raise ConfigError(f"algo.cem_elites={cem_elites} must be in [1, algo.num_samples]")
        self.dynamics = EnsembleDynamics(
            hp.obs_dim, hp.act_dim, model_hidden, model_members, model_elites
        )
        # Under DDP each rank fits its own model on its own replay buffer, outside the SAC
        # update: DDP must neither expect gradients for it nor broadcast its buffers.
        self._ddp_params_and_buffers_to_ignore = [
            f"dynamics.{name}"
            for name, _ in [*self.dynamics.named_parameters(), *self.dynamics.named_buffers()]
        ]
        self.terminated_fn = termination_fn(hp.env_id)
        self.model_fit = PeriodicModelFit(
            hp.model_train_every,
            hp.warmup_steps,
            holdout=model_holdout,
            batch_size=model_batch_size,
            max_epochs=model_max_epochs,
            patience=model_patience,
        )
        # the collector's planner, kept out of the module tree (it holds no weights)
        self._collector_acting: dict[str, PlannerActing] = {}
        self._update_seconds = 0.0
        self._elites: EliteDynamics | None = None  # rebuilt after each model fit

    # ------------------------------------------------------------- the model
    def model_step(self, observation: torch.Tensor, action: torch.Tensor):
        """One step of the model the planner uses: `(next_obs, reward, terminated)`."""
        if self.known_step is not None:
            return self.known_step(observation, action)
        if self._elites is None:
            self._elites = self.dynamics.elite_snapshot()
        next_obs, reward = self._elites.sample_step(observation, action)
        return next_obs, reward, self.terminated_fn(next_obs)

    def model_members_step(self, observation: torch.Tensor, action: torch.Tensor):
        """`[elites, N, ...]` rows, block `m` through elite `m` for the whole rollout."""
        if self._elites is None:
            self._elites = self.dynamics.elite_snapshot()
        next_obs, reward = self._elites.members_step(observation, action)
        terminated = self.terminated_fn(next_obs.reshape(-1, next_obs.shape[-1]))
        return next_obs, reward, terminated.view(reward.shape)

    def terminal_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q1 of SAC's critic, the planner's value beyond the horizon (as in LOOP)."""
        critic = self.loss_module.critic
        params = list(critic.parameters())
        first_member = [p[:1] for p in params]  # evaluate Q1 only, not every critic
        return critic.forward_with(first_member, observation, action)[0]

    def make_planner(self) -> SequencePlanner:
        hp = self.hparams
        common = dict(
            step=self.model_step,
            value=self.terminal_value,
            act_dim=hp.act_dim,
            horizon=hp.horizon,
            num_samples=hp.num_samples,
            particles=hp.particles,
            iterations=hp.plan_iterations,
            init_var=hp.init_var,
            momentum=hp.plan_momentum,
            gamma=hp.gamma,
            pessimism=hp.pessimism,
            prior=self.loss_module.actor.mode,
            num_prior=hp.num_prior,
        )
        if self.known_step is None:  # learned: each rollout follows one elite
            common.update(members_step=self.model_members_step, num_members=hp.model_elites)
        if hp.planner == "cem":
            return PLANNERS["cem"](**common, num_elites=hp.cem_elites)
        return PLANNERS["arc"](**common, kappa=hp.kappa, mean_momentum=hp.plan_mean_momentum)

    def make_policy(self) -> TensorDictModuleBase:
        if self.hparams.planner == "policy":
            return make_gaussian_policy(self.loss_module.actor)
        return ActingPolicy(PlannerActing(self.make_planner()), in_keys=("observation", "is_init"))

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        policies = {"": self.make_policy()}
        if self.hparams.planner != "policy":
            policies["actor"] = make_gaussian_policy(self.loss_module.actor)
        return policies

    @property
    def model_fits(self) -> int:
        return self.model_fit.fits

    @property
    def model_fitted_at(self) -> int:
        return self.model_fit.fitted_at

    def model_optimizer(self) -> torch.optim.Optimizer:
        # the raw optimizer: model steps must not advance Lightning's global_step
        return self.optimizers()[1].optimizer

    def after_collect(self, rollout: TensorDictBase) -> None:
        """Refit the model when `model_train_every` env steps have passed (after warm-up)."""
        if self.hparams.model != "learned" or not self.model_fit.due(self.env_steps):
            return
        rows = self.replay_buffer.storage[: len(self.replay_buffer)]
        metrics = self.model_fit.fit(self.dynamics, self.model_optimizer(), rows, self.env_steps)
        self._elites = None
        self.log_metrics({**metrics, "env_steps": float(self.env_steps)})

    # ------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        model_opt = torch.optim.Adam(
            self.dynamics.parameters(),
            lr=self.hparams.model_lr,
            weight_decay=self.hparams.model_weight_decay,
        )
        return [super().configure_optimizers(), model_opt]

    def update_optimizers(self) -> list:
        return [self.optimizers()[0]]

    def update(self, batch: TensorDictBase) -> TensorDictBase:
        start = time.perf_counter()
        losses = super().update(batch)
        self._update_seconds += time.perf_counter() - start
        return losses

    def time_shares(self) -> dict[str, float]:
        """Seconds this process spent planning (collection only), fitting the model and
        updating SAC (benchmarks/planning.py reports them as shares of a run)."""
        planning = self.acting.plan_seconds if self.acting is not None else 0.0
        return {
            "planning": planning,
            "model fitting": self.model_fit.seconds,
            "SAC updates": self._update_seconds,
        }

    # ----------------------------------------------------------- bookkeeping
    def on_fit_start(self) -> None:
        super().on_fit_start()
        policy = self.collector.policy
        module = getattr(policy, "acting", None)
        self._collector_acting.clear()
        if isinstance(module, PlannerActing):
            self._collector_acting["acting"] = module

    @property
    def acting(self) -> PlannerActing | None:
        """The planner acting in the training env (None with `planner: policy`)."""
        return self._collector_acting.get("acting")

    def log_training(self, losses: TensorDictBase) -> None:
        super().log_training(losses)
        if self.acting is not None and self.acting.plans:
            self.log_metrics(
                {
                    "time/plan_ms": 1000 * self.acting.plan_seconds / self.acting.plans,
                    "time/model_fit_s_total": self.model_fit.seconds,
                }
            )

    def _rank_state(self) -> dict[str, Any]:
        state = super()._rank_state()
        if self.acting is not None:
            state["planner"] = self.acting.planner.state_dict()
        return state

    def _restore_rank_state(self, saved: dict[str, Any]) -> None:
        super()._restore_rank_state(saved)
        if self.acting is not None and "planner" in saved:
            self.acting.planner.load_state_dict(saved["planner"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lit_rl"]["model_fit"] = self.model_fit.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._elites = None
        saved = checkpoint.get("lit_rl", {})
        if "model_fit" in saved:
            self.model_fit.load_state_dict(saved["model_fit"])
