"""SAC-Lagrangian with a PID multiplier. The math lives in `lit_rl.objectives.sac_lagrangian`."""

from __future__ import annotations

import torch

from lit_rl.modules.sac import SAC
from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.lagrange import PIDLagrangian
from lit_rl.objectives.sac_lagrangian import SACLagrangianLoss


class SACLagrangian(SAC):
    """SAC whose actor trades return against cost with a PID-controlled multiplier.

    The multiplier keeps the mean training episode cost near the recipe's `cost_limit`:
    it is updated after every finished training episode (`after_episodes`). Under DDP
    each rank updates its own multiplier from its own episodes; parameters stay
    identical because gradients are averaged, and a checkpoint keeps rank 0's.

    Args (besides SAC's):
        num_cost_qs: cost critics (their max is the pessimistic cost value).
        cost_gamma: discount of the cost critic; None = gamma.
        pid_kp, pid_ki, pid_kd, pid_delay, pid_ema_p, pid_ema_d, lagrange_init,
        lagrange_max: the PID multiplier's settings (`PIDLagrangian`).
    """

    algo_name = "sac_lagrangian"
    uses_costs = True
    loss_class = SACLagrangianLoss

    def __init__(
        self,
        *args,
        num_cost_qs: int = 2,
        cost_gamma: float | None = None,
        pid_kp: float = 0.1,
        pid_ki: float = 0.01,
        pid_kd: float = 0.01,
        pid_delay: int = 10,
        pid_ema_p: float = 0.95,
        pid_ema_d: float = 0.95,
        lagrange_init: float = 0.001,
        lagrange_max: float = 100.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "num_cost_qs": hp.num_cost_qs >= 1,
            "pid_delay": hp.pid_delay >= 1,
            "lagrange_init": hp.lagrange_init >= 0,
        }

    def make_loss(self) -> SACLagrangianLoss:
        hp = self.hparams
        actor = TanhGaussianActor(hp.obs_dim, hp.act_dim, hp.actor_hidden, hp.activation)
        critic = EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, hp.num_qs, hp.activation)
        cost_critic = EnsembleQCritic(
            hp.obs_dim, hp.act_dim, hp.critic_hidden, hp.num_cost_qs, hp.activation
        )
        multiplier = PIDLagrangian(
            hp.cost_limit,
            kp=hp.pid_kp,
            ki=hp.pid_ki,
            kd=hp.pid_kd,
            delay=hp.pid_delay,
            ema_p=hp.pid_ema_p,
            ema_d=hp.pid_ema_d,
            init=hp.lagrange_init,
            max_value=hp.lagrange_max,
        )
        return self.loss_class(
            actor,
            critic,
            cost_critic,
            multiplier,
            cost_gamma=hp.cost_gamma,
            gamma=hp.gamma,
            init_alpha=hp.init_alpha,
            target_entropy=hp.target_entropy,
            reward_scale=hp.reward_scale,
        )

    def after_episodes(self, episode_costs: torch.Tensor) -> None:
        for cost in episode_costs.tolist():
            self.loss_module.multiplier.update(cost)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = super().configure_optimizers()
        optimizer.add_param_group(
            {
                "params": list(self.loss_module.cost_critic.parameters()),
                "lr": self.hparams.critic_lr,
                "name": "cost_critic",
            }
        )
        return optimizer
