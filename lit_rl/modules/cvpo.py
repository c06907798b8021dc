"""CVPO on the off-policy engine. The math lives in `lit_rl.objectives.cvpo`."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModuleBase

from lit_rl.data.replay import sample_recent
from lit_rl.modules.off_policy import OffPolicyModule
from lit_rl.modules.policy import make_gaussian_policy
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.gaussian import CholeskyGaussianActor
from lit_rl.objectives.cvpo import CVPOLoss, per_step_threshold


def registered_episode_length(env_id: str) -> int | None:
    """The time limit Gymnasium registers for `env_id` (None without one)."""
    return gym.spec(env_id).max_episode_steps


class CVPO(OffPolicyModule):
    """Constrained Variational Policy Optimization (Liu et al., ICML 2022).

    Args (besides the engine's, see `OffPolicyModule`; defaults as `algorithms.md` §6
    and the released code: N 32 samples, eps_KL 0.1, decoupled trust regions 0.001,
    actor gradient-norm clip 0.01, Polyak 0.995 = tau 0.005):
        actor_hidden, critic_hidden, activation: network sizes.
        gamma: discount of both critics.
        actor_lr, critic_lr: Adam learning rates.
        num_samples: actions per state in the E-step.
        kl_epsilon: the E-step's KL bound.
        kl_mean_epsilon, kl_cov_epsilon: the M-step's trust regions.
        alpha_mean_scale, alpha_cov_scale, alpha_mean_max, alpha_cov_max: the
            trust-region multipliers' dual step sizes and bounds.
        actor_grad_clip: gradient-norm clip of the actor (None: no clip).
        init_std: the policy's initial standard deviation per action.
        episode_length: T of the per-step threshold; None = the env's time limit.
        num_cost_qs: cost critics; the max over them is the cost value (1, as the paper).
        cost_gamma: discount of the cost critic and of the threshold's conversion (None =
            gamma, as the paper). A shorter cost horizon makes the cost value a function
            of nearby hazards rather than of where later goals happen to be placed.
        cost_limit_start, cost_decay_updates: the released code's cost-limit decay
            (FSRL's `use_cost_decay`, `cost_start`): the episodic limit behind eps_c falls
            linearly from `cost_limit_start` to the recipe's `cost_limit` over the first
            `cost_decay_updates` updates (None / 0: the recipe's limit from the start).
            Early on a tight limit is infeasible over replay states, and the E-step's
            cost multiplier then only minimises cost (docs/safe.md).
        recent_states: draw the E- and M-step's states from the `recent_states` most
            recent transitions instead of the critics' uniform batch (None: the batch, as
            the released code). The cost constraint averages the cost value over those
            states; over the whole replay it also averages states that older, less safe
            policies visited (inside hazards no action avoids cost), which can make it
            infeasible for every policy and send the multiplier to its bound. A departure
            from the paper, off by default.
    """

    algo_name = "cvpo"
    uses_costs = True

    def __init__(
        self,
        *args,
        actor_hidden: Sequence[int] = (256, 256),
        critic_hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        gamma: float = 0.99,
        actor_lr: float = 1e-3,
        critic_lr: float = 1e-3,
        num_samples: int = 32,
        kl_epsilon: float = 0.1,
        kl_mean_epsilon: float = 0.001,
        kl_cov_epsilon: float = 0.001,
        alpha_mean_scale: float = 1.0,
        alpha_cov_scale: float = 100.0,
        alpha_mean_max: float = 0.1,
        alpha_cov_max: float = 10.0,
        actor_grad_clip: float | None = 0.01,
        init_std: float = 0.5,
        episode_length: int | None = None,
        num_cost_qs: int = 1,
        cost_gamma: float | None = None,
        cost_limit_start: float | None = None,
        cost_decay_updates: int = 0,
        recent_states: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "num_samples": hp.num_samples >= 2,
            "num_cost_qs": hp.num_cost_qs >= 1,
            "cost_gamma": hp.cost_gamma is None or 0 < hp.cost_gamma < 1,
            "kl_epsilon": hp.kl_epsilon > 0,
            "init_std": hp.init_std > 0,
            "episode_length": hp.episode_length is None or hp.episode_length >= 1,
            "cost_decay_updates": hp.cost_decay_updates >= 0,
            "cost_limit_start": hp.cost_limit_start is None or hp.cost_limit_start >= 0,
            "recent_states": hp.recent_states is None or hp.recent_states >= 1,
        }

    def episode_length(self) -> int:
        hp = self.hparams
        length = hp.episode_length or hp.max_episode_steps
        length = length or registered_episode_length(hp.env_id)
        return int(length or 1000)

    def episodic_cost_limit(self, updates: int) -> float:
        """The episodic limit at update `updates`: the recipe's `cost_limit`, reached
        linearly from `cost_limit_start` over `cost_decay_updates` updates."""
        hp = self.hparams
        if hp.cost_limit_start is None or hp.cost_decay_updates == 0:
            return float(hp.cost_limit)
        progress = min(1.0, updates / hp.cost_decay_updates)
        return float(hp.cost_limit_start + progress * (hp.cost_limit - hp.cost_limit_start))

    def cost_threshold(self, updates: int | None = None) -> float:
        """eps_c from the episodic cost limit at update `updates` (default: the run's
        current update)."""
        limit = self.episodic_cost_limit(self.updates if updates is None else updates)
        return per_step_threshold(limit, self.cost_discount(), self.episode_length())

    def schedules(self, updates: int) -> dict[str, float]:
        return {
            "cost_limit": self.episodic_cost_limit(updates),
            "cost_threshold": self.cost_threshold(updates),
        }

    def compute_losses(self, batch):
        self.loss_module.cost_threshold = self.cost_threshold()
        window = self.hparams.recent_states
        if window is not None:
            recent = sample_recent(self.replay_buffer, window, batch.shape[0])
            observation = recent.get("observation")
            if batch.device is not None:
                observation = observation.to(batch.device)
            batch.set("policy_observation", observation)
        return super().compute_losses(batch)

    def cost_discount(self) -> float:
        hp = self.hparams
        return hp.gamma if hp.cost_gamma is None else hp.cost_gamma

    def make_loss(self) -> CVPOLoss:
        hp = self.hparams
        actor = CholeskyGaussianActor(
            hp.obs_dim, hp.act_dim, hp.actor_hidden, hp.activation, hp.init_std
        )
        critic = EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, 2, hp.activation)
        cost_critic = EnsembleQCritic(
            hp.obs_dim, hp.act_dim, hp.critic_hidden, hp.num_cost_qs, hp.activation
        )
        return CVPOLoss(
            actor,
            critic,
            cost_critic,
            cost_threshold=self.cost_threshold(updates=0),
            gamma=hp.gamma,
            cost_gamma=self.cost_discount(),
            num_samples=hp.num_samples,
            kl_epsilon=hp.kl_epsilon,
            kl_mean_epsilon=hp.kl_mean_epsilon,
            kl_cov_epsilon=hp.kl_cov_epsilon,
            alpha_mean_scale=hp.alpha_mean_scale,
            alpha_cov_scale=hp.alpha_cov_scale,
            alpha_mean_max=hp.alpha_mean_max,
            alpha_cov_max=hp.alpha_cov_max,
        )

    def make_policy(self) -> TensorDictModuleBase:
        # exploring: a clipped Gaussian sample; deterministic: the mean
        return make_gaussian_policy(self.loss_module.actor)

    def before_optimizer_step(self) -> None:
        if self.hparams.actor_grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(
                self.loss_module.actor.parameters(), self.hparams.actor_grad_clip
            )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        loss, hp = self.loss_module, self.hparams
        groups = [
            {"params": list(loss.actor.parameters()), "lr": hp.actor_lr, "name": "actor"},
            {"params": list(loss.critic.parameters()), "lr": hp.critic_lr, "name": "critic"},
            {
                "params": list(loss.cost_critic.parameters()),
                "lr": hp.critic_lr,
                "name": "cost_critic",
            },
        ]
        return torch.optim.Adam(groups, fused=True)
