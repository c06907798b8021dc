"""Offline algorithms on the engine's dataset source: behaviour cloning and CFPI.

Both learn from `dataset` for `max_updates` updates (see `lit_rl.sources.dataset`);
the math lives in `lit_rl.objectives.behavior_cloning`, `.sarsa` and `.cfpi`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModuleBase
from torch import nn

from lit_rl.errors import ConfigError
from lit_rl.modules.off_policy import BUFFER_KEYS, OffPolicyModule
from lit_rl.modules.policy import ActingPolicy, acting_deterministically
from lit_rl.nets.behavior import MixtureBehavior
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.behavior_cloning import BCLoss
from lit_rl.objectives.cfpi import OPERATORS
from lit_rl.objectives.sarsa import NEXT_ACTIONS, CFPILoss


class BehaviorActing(nn.Module):
    """The BC policy: the heaviest component's mean, or a sample when exploring."""

    def __init__(self, behavior: MixtureBehavior) -> None:
        super().__init__()
        self.behavior = behavior

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if acting_deterministically():
            return self.behavior.mode(observation).float()
        return self.behavior.sample(observation).float()


class BC(OffPolicyModule):
    """Behaviour cloning with a tanh-Gaussian (`num_components: 1`) or a Gaussian-mixture
    policy, the baseline of every offline table and the behaviour policy CFPI improves.

    Args (besides the engine's):
        behavior_hidden, activation: the policy network (2x256 ReLU).
        num_components: Gaussians in the mixture (1: tanh-Gaussian).
        behavior_lr: Adam learning rate.
    """

    algo_name = "bc"
    requires_dataset = True

    def __init__(
        self,
        *args,
        behavior_hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        num_components: int = 1,
        behavior_lr: float = 3e-4,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {**super().range_checks(), "num_components": hp.num_components >= 1}

    def make_behavior(self) -> MixtureBehavior:
        hp = self.hparams
        return MixtureBehavior(
            hp.obs_dim, hp.act_dim, hp.behavior_hidden, hp.num_components, hp.activation
        )

    def make_loss(self) -> nn.Module:
        return BCLoss(self.make_behavior())

    def make_policy(self) -> TensorDictModuleBase:
        return ActingPolicy(BehaviorActing(self.loss_module.behavior))

    def param_groups(self) -> list[dict]:
        behavior = self.loss_module.behavior
        return [{"params": list(behavior.parameters()), "lr": self.hparams.behavior_lr}]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # one Adam, a group per network: one step per update keeps global_step equal to
        # the update count; fused Adam runs every group in one kernel (as SAC's)
        return torch.optim.Adam(self.param_groups(), fused=True)


class CFPIActing(nn.Module):
    """CFPI's improved action; exploring adds Gaussian noise of std `noise` (online)."""

    def __init__(self, loss: CFPILoss, noise: float) -> None:
        super().__init__()
        self.loss, self.noise = loss, noise

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        batched = observation.dim() > 1
        obs = observation if batched else observation.unsqueeze(0)
        action = self.loss.policy_action(obs)
        if not acting_deterministically() and self.noise > 0:
            action = (action + self.noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return (action if batched else action.squeeze(0)).float()


class CFPI(BC):
    """CFPI (Li et al., ICML 2023): BC of the behaviour policy, a critic of it learned
    SARSA-style from the dataset, and the closed-form improved policy on top.

    Args (besides BC's and the engine's):
        critic_hidden, num_qs: the Q ensemble (twin 2x256; lower bound mean - std).
        critic_lr, gamma, reward_scale: its Adam rate and target.
        log_tau: the constraint's size (0.5 in the paper; 0 returns the behaviour mean).
        operator: ``best`` (LogSumExp and Jensen candidates by Q), ``lse`` or ``jensen``;
            with one component all are the single-Gaussian operator.
        min_weight: mixture components below it are ignored (0.05).
        next_action: ``dataset`` (one-step CFPI, SARSA critic) or ``policy`` (iterative:
            the critic evaluates the improved policy).
        explore_noise: Gaussian noise added to actions when collecting (online).
    """

    algo_name = "cfpi"

    def __init__(
        self,
        *args,
        critic_hidden: Sequence[int] = (256, 256),
        num_qs: int = 2,
        critic_lr: float = 3e-4,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        log_tau: float = 0.5,
        operator: str = "best",
        min_weight: float = 0.05,
        next_action: str = "dataset",
        explore_noise: float = 0.1,
        **kwargs,
    ) -> None:
        if operator not in OPERATORS:
            raise ConfigError(f"algo.operator='{operator}'; choose one of {', '.join(OPERATORS)}")
        if next_action not in NEXT_ACTIONS:
            raise ConfigError(
                f"algo.next_action='{next_action}'; choose one of {', '.join(NEXT_ACTIONS)}"
            )
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "log_tau": hp.log_tau >= 0,
            "num_qs": hp.num_qs >= 1,
            "min_weight": 0 <= hp.min_weight < 1,
        }

    def dataset_keys(self) -> tuple:
        return (*BUFFER_KEYS, ("next", "action"), ("next", "has_action"))

    def make_loss(self) -> CFPILoss:
        hp = self.hparams
        critic = EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, hp.num_qs, hp.activation)
        return CFPILoss(
            self.make_behavior(),
            critic,
            gamma=hp.gamma,
            reward_scale=hp.reward_scale,
            log_tau=hp.log_tau,
            operator=hp.operator,
            min_weight=hp.min_weight,
            next_action=hp.next_action,
        )

    def make_policy(self) -> TensorDictModuleBase:
        return ActingPolicy(CFPIActing(self.loss_module, self.hparams.explore_noise))

    def eval_policies(self) -> dict[str, TensorDictModuleBase]:
        """CFPI's policy, and the behaviour policy it improves (`eval/bc_return_mean`)."""
        return {
            "": self.make_policy(),
            "bc": ActingPolicy(BehaviorActing(self.loss_module.behavior)),
        }

    def param_groups(self) -> list[dict]:
        critic = self.loss_module.critic
        return [
            *super().param_groups(),
            {"params": list(critic.parameters()), "lr": self.hparams.critic_lr},
        ]
