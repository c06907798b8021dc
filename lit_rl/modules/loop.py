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

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from lit_rl.errors import ConfigError
from lit_rl.modules.model_fitting import PeriodicModelFit, ddp_ignored
from lit_rl.modules.planner_acting import PlannerActing
from lit_rl.modules.policy import ActingPolicy, make_gaussian_policy
from lit_rl.modules.sac import SAC
from lit_rl.nets.dynamics import EnsembleDynamics
from lit_rl.planning.models import planning_model
from lit_rl.planning.planners import PLANNERS, SequencePlanner

PLANNER_CHOICES = ("arc", "cem", "policy")  # policy: the SAC actor acts alone
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
    planner_choices: tuple[str, ...] = PLANNER_CHOICES

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
        for key, value, choices in (
            ("planner", planner, self.planner_choices),
            ("model", model, MODEL_CHOICES),
        ):
            if value not in choices:
                raise ConfigError(f"algo.{key}='{value}'; choose one of {', '.join(choices)}")
        if hp.num_envs != 1 and planner != "policy":
            raise ConfigError(
                f"algo.num_envs={hp.num_envs}: LOOP's planner acts on one state at a time; "
                "use algo.num_envs=1"
            )
        self.dynamics = EnsembleDynamics(
            hp.obs_dim, hp.act_dim, model_hidden, model_members, model_elites
        )
        # Under DDP each rank fits its own model on its own replay buffer, outside the SAC
        # update: DDP must neither expect gradients for it nor broadcast its buffers.
        self._ddp_params_and_buffers_to_ignore = ddp_ignored("dynamics", self.dynamics)
        self.planning_model = planning_model(model, self.dynamics, hp.env_id)
        if self.planning_model is None:
            raise ConfigError(f"algo.model=known: lit_rl has no known dynamics for {hp.env_id}")
        self.model_fit = PeriodicModelFit(
            hp.model_train_every,
            hp.warmup_steps,
            holdout=model_holdout,
            batch_size=model_batch_size,
            max_epochs=model_max_epochs,
            patience=model_patience,
        )

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "model_elites": 1 <= hp.model_elites <= hp.model_members,
            "cem_elites": hp.planner != "cem" or 1 <= hp.cem_elites <= hp.num_samples,
        }

    # ------------------------------------------------------------- planning
    def terminal_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q1 of SAC's critic, the planner's value beyond the horizon (as in LOOP)."""
        critic = self.loss_module.critic
        first_member = [p[:1] for p in critic.parameters()]  # Q1 only, not every critic
        return critic.forward_with(first_member, observation, action)[0]

    def make_planner(self) -> SequencePlanner:
        """The planner class the recipe names, with SAC's critic and actor plugged in."""
        hp = self.hparams
        planner_cls = PLANNERS[hp.planner]
        return planner_cls(
            **self.planning_model.planner_kwargs(),
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
            **{arg: hp[key] for arg, key in planner_cls.recipe_options.items()},
            **self.planner_extras(),
        )

    def planner_extras(self) -> dict[str, Any]:
        """Planner arguments that are not recipe keys (safe LOOP's cost function)."""
        return {}

    def make_policy(self) -> TensorDictModuleBase:
        if self.hparams.planner == "policy":
            return make_gaussian_policy(self.loss_module.actor)
        return ActingPolicy(
            PlannerActing(self.make_planner(), computes_on=self.loss_module),
            in_keys=("observation", "is_init"),
        )

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        policies = {"": self.make_policy()}
        if self.hparams.planner != "policy":
            policies["actor"] = make_gaussian_policy(self.loss_module.actor)
        return policies

    def model_optimizer(self) -> torch.optim.Optimizer:
        # the raw optimizer: model steps must not advance Lightning's global_step
        return self.optimizers()[1].optimizer

    def after_collect(self, rollout: TensorDictBase) -> None:
        """Refit the model when `model_train_every` env steps have passed (after warm-up)."""
        if self.hparams.model != "learned" or not self.model_fit.due(self.env_steps):
            return
        rows = self.replay_buffer.storage[: len(self.replay_buffer)]
        metrics = self.model_fit.fit(self.dynamics, self.model_optimizer(), rows, self.env_steps)
        self.planning_model.refreshed()
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

    # ----------------------------------------------------------- bookkeeping
    def on_fit_start(self) -> None:
        super().on_fit_start()
        # kept after the fit (benchmarks read its timings), out of the module tree
        self._collector_acting = {"acting": self.collector_acting()}

    @property
    def acting(self) -> PlannerActing | None:
        """The planner acting in the training env (None with `planner: policy`)."""
        return getattr(self, "_collector_acting", {}).get("acting")

    def log_training(self, losses: TensorDictBase) -> None:
        super().log_training(losses)
        if self.acting is not None and self.acting.plans:
            self.log_metrics(
                {
                    "time/plan_ms": 1000 * self.acting.plan_seconds / self.acting.plans,
                    "time/model_fit_s_total": self.model_fit.seconds,
                }
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lit_rl"]["model_fit"] = self.model_fit.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.planning_model.refreshed()
        saved = checkpoint.get("lit_rl", {})
        if "model_fit" in saved:
            self.model_fit.load_state_dict(saved["model_fit"])
