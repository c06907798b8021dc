"""Offline LOOP: plan with ARC over a dynamics ensemble fitted to the dataset, around an
offline policy (the prior) and with its critic as the terminal value.

Sikchi, Zhou, Held, CoRL 2021 (arXiv 2008.10066), section "offline": the prior comes from
an offline method, one planning iteration with sampling noise 0.01 around the prior's
plan, H = 5, kappa 0.3, and a pessimistic score mean - 1.0 * std over the rollouts of
the ensemble's elites. The prior and its critic are trained in the same run by the
offline algorithm this planning is mixed into:

* `loop_offline`: CFPI's family (`lit_rl.modules.offline.CFPI`): with `log_tau: 0` the
  prior is the behaviour-cloned policy (BC) and the terminal value its SARSA critic's
  lower bound; with `log_tau > 0` the prior is CFPI's improved policy.
* `loop_offline_consistency`: Consistency-AC's policy and twin critic (min over heads).

The ensemble is fitted once on the whole dataset when training starts (early stopping on
a hold-out split) and saved in checkpoints, so a resumed run does not refit. The planner
acts in evaluation; the prior alone is evaluated beside it (`eval/prior_return_mean`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModuleBase

from lit_rl.modules.consistency import ConsistencyAC
from lit_rl.modules.model_fitting import PeriodicModelFit, ddp_ignored
from lit_rl.modules.offline import CFPI
from lit_rl.modules.planner_acting import PlannerActing
from lit_rl.modules.policy import ActingPolicy
from lit_rl.nets.dynamics import EnsembleDynamics
from lit_rl.objectives.sarsa import lower_bound
from lit_rl.planning.models import planning_model
from lit_rl.planning.planners import ARCPlanner


class OfflinePlanning:
    """Mixed in before an offline algorithm that provides `prior_action(obs)` and
    `terminal_value(obs, action)`; adds the model, its fit, and the planner.

    Args:
        horizon, num_samples, num_prior, particles, plan_iterations, kappa: ARC (5, 100,
            5, 4, 1, 0.3 offline).
        plan_noise: std of the sampling noise around the prior's plan (0.01).
        pessimism: score = mean - pessimism * std over rollouts (1.0).
        model_hidden, model_members, model_elites: ensemble shape (4x200, 7, 5).
        model_lr, model_weight_decay, model_batch_size, model_max_epochs,
            model_patience, model_holdout: the fit (as LOOP's online fit).
    """

    def __init__(
        self,
        *args,
        horizon: int = 5,
        num_samples: int = 100,
        num_prior: int = 5,
        particles: int = 4,
        plan_iterations: int = 1,
        kappa: float = 0.3,
        plan_noise: float = 0.01,
        pessimism: float = 1.0,
        model_hidden: Sequence[int] = (200, 200, 200, 200),
        model_members: int = 7,
        model_elites: int = 5,
        model_lr: float = 1e-3,
        model_weight_decay: float = 1e-5,
        model_batch_size: int = 256,
        model_max_epochs: int = 100,
        model_patience: int = 5,
        model_holdout: float = 0.2,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        hp = self.hparams
        self.dynamics = EnsembleDynamics(
            hp.obs_dim, hp.act_dim, model_hidden, model_members, model_elites
        )
        self.register_buffer("model_fitted", torch.zeros((), dtype=torch.bool))
        # each rank fits its own model outside the update: DDP must not reduce it
        self._ddp_params_and_buffers_to_ignore = [
            *ddp_ignored("dynamics", self.dynamics),
            "model_fitted",
        ]
        self.model_fit = PeriodicModelFit(
            every=1,
            warmup_steps=0,
            holdout=model_holdout,
            batch_size=model_batch_size,
            max_epochs=model_max_epochs,
            patience=model_patience,
        )
        self.planning_model = planning_model("learned", self.dynamics, hp.env_id)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "horizon": hp.horizon >= 1,
            "num_samples": hp.num_samples >= 1,
            "particles": hp.particles >= 1,
            "plan_iterations": hp.plan_iterations >= 1,
            "plan_noise": hp.plan_noise >= 0,
            "pessimism": hp.pessimism >= 0,
            "model_elites": 1 <= hp.model_elites <= hp.model_members,
        }

    # ---------------------------------------------------------------- model
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if not bool(self.model_fitted):
            self.fit_model()

    def fit_model(self) -> None:
        """Fit the ensemble to every transition of the dataset, once."""
        hp = self.hparams
        rows = self.replay_buffer.storage[: len(self.replay_buffer)]
        optimizer = torch.optim.Adam(
            self.dynamics.parameters(), lr=hp.model_lr, weight_decay=hp.model_weight_decay
        )
        metrics = self.model_fit.fit(self.dynamics, optimizer, rows, env_steps=0)
        self.model_fitted.fill_(True)
        self.planning_model.refreshed()
        self.log_metrics(
            {**metrics, "model/fit_s": self.model_fit.seconds, "updates": float(self.updates)}
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.planning_model.refreshed()

    # -------------------------------------------------------------- planning
    def make_planner(self) -> ARCPlanner:
        hp = self.hparams
        return ARCPlanner(
            **self.planning_model.planner_kwargs(),
            value=self.terminal_value,
            act_dim=hp.act_dim,
            horizon=hp.horizon,
            num_samples=hp.num_samples,
            particles=hp.particles,
            iterations=hp.plan_iterations,
            init_var=hp.plan_noise**2,
            gamma=hp.gamma,
            pessimism=hp.pessimism,
            prior=self.prior_action,
            num_prior=hp.num_prior,
            kappa=hp.kappa,
            mean_from_prior=True,
        )

    def make_policy(self) -> TensorDictModuleBase:
        return ActingPolicy(
            PlannerActing(self.make_planner(), computes_on=self.loss_module),
            in_keys=("observation", "is_init"),
        )

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        """The planner (`eval/return_mean`) and its prior alone (`eval/prior_return_mean`)."""
        return {"": self.make_policy(), "prior": super().make_policy()}


class LOOPOffline(OfflinePlanning, CFPI):
    """Offline LOOP over CFPI's family: `log_tau: 0` plans around behaviour cloning (the
    recipe default), `log_tau > 0` around CFPI; the terminal value is the SARSA critic's
    lower bound (mean - std over heads). Args: `OfflinePlanning`'s and CFPI's."""

    algo_name = "loop_offline"

    def prior_action(self, observation: torch.Tensor) -> torch.Tensor:
        return self.loss_module.policy_action(observation)

    def terminal_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return lower_bound(self.loss_module.critic(observation, action))


class LOOPOfflineConsistency(OfflinePlanning, ConsistencyAC):
    """Offline LOOP around Consistency-AC's policy (one sample per rollout step) with its
    twin critic's minimum as the terminal value. Args: `OfflinePlanning`'s and
    Consistency-AC's."""

    algo_name = "loop_offline_consistency"

    def prior_action(self, observation: torch.Tensor) -> torch.Tensor:
        return self.loss_module.ema_policy.sample(observation, 1)[:, 0]

    def terminal_value(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.loss_module.critic(observation, action).min(0).values
