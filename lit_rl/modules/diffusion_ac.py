"""DPMD and SDAC on the off-policy engine. The math lives in `lit_rl.objectives.rsm`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from lit_rl.modules.off_policy import OffPolicyModule, summed_loss
from lit_rl.modules.policy import ActingPolicy, acting_deterministically
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.diffusion import DiffusionPolicy, DiffusionSchedule, EpsilonNetwork
from lit_rl.objectives.rsm import (
    DiffusionActorCriticLoss,
    DPMDLoss,
    ReleasedCodeDPMDLoss,
    SDACLoss,
    max_weight_is_finite,
)
from lit_rl.objectives.temperature import NoiseEntropyTemperature, hold_then_linear


class DiffusionActing(nn.Module):
    """Best-of-N acting with the EMA policy; Gaussian noise of std `noise_std_fn()` while
    exploring, none under a deterministic exploration type (evaluation)."""

    def __init__(self, loss: DiffusionActorCriticLoss, noise_std_fn: Callable[[], float]) -> None:
        super().__init__()
        self.loss = loss
        self.noise_std_fn = noise_std_fn

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        unbatched = observation.dim() == 1
        obs = observation.unsqueeze(0) if unbatched else observation
        noise = 0.0 if acting_deterministically() else self.noise_std_fn()
        action = self.loss.act(obs, noise, policy=self.loss.ema_policy).float()
        return action.squeeze(0) if unbatched else action


class DiffusionActorCritic(OffPolicyModule):
    """What DPMD and SDAC share: networks, temperature schedule, delayed updates.

    Args (besides the engine's, see `OffPolicyModule`):
        diffusion_steps: T (20 in the paper).
        noise_schedule: ``linear`` (released code) or ``cosine``.
        num_particles: N candidates of the best-of-N acting rule (32).
        policy_hidden, critic_hidden, activation: 3x256 Mish in the paper.
        gamma, reward_scale: critic target `reward_scale * r + gamma * ...` (0.99, 0.2).
        critic_lr: Adam learning rate of the critics (3e-4).
        policy_lr, policy_lr_end, policy_lr_hold_steps, policy_lr_decay_steps: the
            released policy schedule: `policy_lr` for the first 25k policy-optimizer
            steps, then linear to `policy_lr_end` over the next 50k, then constant.
        policy_delay: updates between policy (and EMA) updates (2).
        ema_tau: Polyak rate of the EMA policy used for acting (0.005).
        alpha_init: initial temperature (5).
        alpha_lr, alpha_update_every, target_entropy_per_dim: the released temperature,
            Adam (lr 7e-3) on `log alpha` every 250 updates toward acting-noise entropy
            -0.9 per action dimension; alpha settles near 0.98 (see
            `lit_rl.objectives.temperature`). `alpha_lr: 0` keeps alpha fixed.
        alpha_min: floor of the temperature (0.05; DPMD refuses a floor at which its
            largest weight `exp(3 / lambda)` overflows float32, lambda < 0.034).
        exploration_noise: acting noise std is `exploration_noise * alpha` (0.1).
        init_noise_scale: `a_T ~ init_noise_scale * N(0, I)` (0.5).
        cuda_graphs: on a GPU, replay the acting rule (T denoising steps, N candidates,
            best by Q) from CUDA graphs instead of launching ~500 kernels per call.
        compile: where the acting rule is not replayed from CUDA graphs (a CPU), run it
            through `torch.compile`, in collection, evaluation and the updates' targets
            (one graph per batch size, each compiled on first use: seconds to a minute).
    """

    lambda_scale: float = 1.0  # lambda = lambda_scale * alpha

    def __init__(
        self,
        *args,
        diffusion_steps: int = 20,
        noise_schedule: str = "linear",
        num_particles: int = 32,
        policy_hidden: Sequence[int] = (256, 256, 256),
        critic_hidden: Sequence[int] = (256, 256, 256),
        activation: str = "mish",
        gamma: float = 0.99,
        reward_scale: float = 0.2,
        critic_lr: float = 3e-4,
        policy_lr: float = 3e-4,
        policy_lr_end: float = 3e-5,
        policy_lr_hold_steps: int = 25_000,
        policy_lr_decay_steps: int = 50_000,
        policy_delay: int = 2,
        ema_tau: float = 0.005,
        alpha_init: float = 5.0,
        alpha_lr: float = 7e-3,
        alpha_update_every: int = 250,
        target_entropy_per_dim: float = -0.9,
        alpha_min: float = 0.05,
        exploration_noise: float = 0.1,
        init_noise_scale: float = 0.5,
        cuda_graphs: bool = True,
        compile: bool = False,  # noqa: A002  (the recipe key: algo.compile)
        **kwargs,
    ) -> None:
        kwargs.setdefault("target_update_every", 2)
        super().__init__(*args, **kwargs)
        hp = self.hparams
        self.temperature = NoiseEntropyTemperature(
            alpha_init=hp.alpha_init,
            lr=hp.alpha_lr,
            update_every=hp.alpha_update_every,
            exploration_noise=hp.exploration_noise,
            target_entropy_per_dim=hp.target_entropy_per_dim,
            alpha_min=hp.alpha_min,
        )

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "diffusion_steps": hp.diffusion_steps >= 1,
            "num_particles": hp.num_particles >= 1,
            "policy_delay": hp.policy_delay >= 1,
            "alpha_init": hp.alpha_init > 0,
            "alpha_min": hp.alpha_min > 0,
            "alpha_lr": hp.alpha_lr >= 0,
            "alpha_update_every": hp.alpha_update_every >= 1,
            "policy_lr": hp.policy_lr > 0,
            "policy_lr_end": hp.policy_lr_end > 0,
            "policy_lr_hold_steps": hp.policy_lr_hold_steps >= 0,
            "policy_lr_decay_steps": hp.policy_lr_decay_steps >= 0,
            "exploration_noise": hp.exploration_noise >= 0,
            "init_noise_scale": hp.init_noise_scale > 0,
            "ema_tau": 0 < hp.ema_tau <= 1,
            "gamma": 0 <= hp.gamma <= 1,
        }

    # ------------------------------------------------------------------ pieces
    def make_policy_net(self) -> DiffusionPolicy:
        hp = self.hparams
        eps_net = EpsilonNetwork(hp.obs_dim, hp.act_dim, hp.policy_hidden, hp.activation)
        schedule = DiffusionSchedule.make(hp.noise_schedule, hp.diffusion_steps)
        return DiffusionPolicy(eps_net, schedule, hp.init_noise_scale)

    def make_critic(self) -> EnsembleQCritic:
        hp = self.hparams
        return EnsembleQCritic(hp.obs_dim, hp.act_dim, hp.critic_hidden, 2, hp.activation)

    def shared_loss_kwargs(self) -> dict:
        hp = self.hparams
        return {
            "gamma": hp.gamma,
            "reward_scale": hp.reward_scale,
            "num_particles": hp.num_particles,
            "cuda_graphs": hp.cuda_graphs,
            "compile_acting": hp.compile,
        }

    def make_policy(self) -> TensorDictModuleBase:
        acting = DiffusionActing(self.loss_module, self.exploration_std)
        return ActingPolicy(acting)

    # ------------------------------------------------------------ temperature
    def alpha(self, updates: int | None = None) -> float:
        """The temperature at update `updates` (default: now)."""
        return self.temperature(self.updates if updates is None else updates)

    def exploration_std(self) -> float:
        return self.hparams.exploration_noise * self.alpha()

    def policy_lr_factor(self, updates: int) -> float:
        """Policy learning rate / `policy_lr` at update `updates` (counted in policy steps)."""
        hp = self.hparams
        policy_steps = updates // hp.policy_delay
        end_factor = hp.policy_lr_end / hp.policy_lr
        return hold_then_linear(
            policy_steps, hp.policy_lr_hold_steps, hp.policy_lr_decay_steps, end_factor
        )

    def schedules(self, updates: int) -> dict[str, float]:
        hp = self.hparams
        alpha = self.alpha(updates)
        return {
            "alpha": alpha,
            "lambda": self.lambda_scale * alpha,
            "exploration_std": hp.exploration_noise * alpha,
            "policy_lr": hp.policy_lr * self.policy_lr_factor(updates),
            "critic_lr": hp.critic_lr,
        }

    # ------------------------------------------------------------ optimization
    def configure_optimizers(self) -> dict:
        loss = self.loss_module
        groups = [
            {
                "params": list(loss.policy.parameters()),
                "lr": self.hparams.policy_lr,
                "name": "policy",
            },
            {
                "params": list(loss.critic.parameters()),
                "lr": self.hparams.critic_lr,
                "name": "critic",
            },
        ]
        optimizer = torch.optim.Adam(groups, fused=True)
        # Stepped once per update (see `update`), so the scheduler's count is `updates`
        # and Lightning checkpoints it with the optimizer.
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, [self.policy_lr_factor, lambda updates: 1.0]
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def is_policy_update(self) -> bool:
        return self.updates % self.hparams.policy_delay == 0

    def update(self, batch: TensorDictBase) -> TensorDictBase:
        now = self.schedules(self.updates)
        optimizer = self.optimizers()
        losses = self.loss_module(
            batch,
            lam=now["lambda"],
            noise_std=now["exploration_std"],
            update_policy=self.is_policy_update(),
        )
        total = summed_loss(losses)
        policy_params = list(self.loss_module.policy.parameters())
        delayed = not self.is_policy_update()
        if delayed and self.world_size > 1:
            # DDP's reducer expects a gradient for every parameter in every backward; a
            # zero-weighted term gives the policy one without computing its loss
            total = total + 0.0 * sum(p.sum() for p in policy_params)
        self.checked_backward(losses, total, [optimizer])
        if delayed:
            for param in policy_params:
                param.grad = None  # Adam skips the policy: a delayed update does not move it
        optimizer.step()
        self.lr_schedulers().step()
        losses.set("alpha", torch.tensor(now["alpha"]))
        return losses

    def after_update(self) -> None:
        super().after_update()
        if self.is_policy_update():
            self.loss_module.update_ema_policy(self.hparams.ema_tau)


class DPMD(DiffusionActorCritic):
    """Diffusion Policy Mirror Descent (Ma et al., ICML 2025). Extra arg: q_norm_rate
    (0.001), the update rate of the running Q statistics."""

    algo_name = "dpmd"
    loss_class: type[DPMDLoss] = DPMDLoss

    def __init__(self, *args, q_norm_rate: float = 0.001, **kwargs) -> None:
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        hp = self.hparams
        return {
            **super().range_checks(),
            "q_norm_rate": 0 < hp.q_norm_rate <= 1,
            # the largest weight exp(3 / lambda) must stay finite at the coolest alpha
            "alpha_min": hp.alpha_min > 0
            and max_weight_is_finite(self.lambda_scale * hp.alpha_min),
        }

    def make_loss(self) -> DPMDLoss:
        hp = self.hparams
        return self.loss_class(
            self.make_policy_net(),
            self.make_critic(),
            q_norm_rate=hp.q_norm_rate,
            **self.shared_loss_kwargs(),
        )


class DPMDReleasedCode(DPMD):
    """DPMD with the released code's `q - mu / sigma` (`ReleasedCodeDPMDLoss`), to
    reproduce its numbers: `algo.name: dpmd_released_code`."""

    algo_name = "dpmd_released_code"
    loss_class = ReleasedCodeDPMDLoss


class SDAC(DiffusionActorCritic):
    """Soft Diffusion Actor-Critic (Ma et al., ICML 2025). Extra arg: num_reverse_samples
    M (64). lambda = alpha / 5 as in the released code."""

    algo_name = "sdac"
    loss_class: type[SDACLoss] = SDACLoss
    lambda_scale = 0.2

    def __init__(self, *args, num_reverse_samples: int = 64, **kwargs) -> None:
        super().__init__(*args, **kwargs)

    def range_checks(self) -> dict[str, bool]:
        return {
            **super().range_checks(),
            "num_reverse_samples": self.hparams.num_reverse_samples >= 1,
        }

    def make_loss(self) -> SDACLoss:
        return self.loss_class(
            self.make_policy_net(),
            self.make_critic(),
            num_reverse_samples=self.hparams.num_reverse_samples,
            **self.shared_loss_kwargs(),
        )
