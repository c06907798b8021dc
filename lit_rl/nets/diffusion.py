"""Diffusion policies: noise schedules, the epsilon network and batched DDPM sampling.

Shared by the algorithms that act with a denoising diffusion model (DPMD and SDAC). The
network and candidate selection are `lit_rl.nets.conditional`'s, shared with consistency
policies. Notation follows Ho et al. 2020 (DDPM): `beta_t`,
`alpha_t = 1 - beta_t`, `alpha_bar_t = prod_{s<=t} alpha_s`, with `t = 0..T-1`.
Actions live in [-1, 1]^d.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lit_rl.nets.conditional import ConditionalMLP

MAX_BETA = 0.999  # keeps alpha_t > 0 (Nichol & Dhariwal 2021, section 3.2)


def linear_beta_schedule(
    num_steps: int, beta_start: float = 1e-4, beta_end: float = MAX_BETA, scale: float = 0.8
) -> torch.Tensor:
    """`scale * linspace(beta_start, beta_end, T)`: the schedule of the released DPMD/SDAC code."""
    return scale * torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_beta_schedule(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: `alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2)`."""
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=MAX_BETA)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_beta_schedule,
    "cosine": cosine_beta_schedule,
}


class DiffusionSchedule(nn.Module):
    """Constants of a discrete diffusion process, as buffers (they follow `.to(device)`)."""

    def __init__(self, betas: torch.Tensor) -> None:
        super().__init__()
        betas = betas.to(torch.float64)
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        self.num_steps = len(betas)
        for name, value in {
            "betas": betas,
            "alpha_bars": alpha_bars,
            "sqrt_alpha_bars": alpha_bars.sqrt(),
            "sqrt_one_minus_alpha_bars": (1 - alpha_bars).sqrt(),
            # posterior q(a_{t-1} | a_t, a_0) = N(c0 * a_0 + ct * a_t, var)  (DDPM eq. 6-7)
            "posterior_coef_x0": betas * alpha_bars_prev.sqrt() / (1 - alpha_bars),
            "posterior_coef_xt": (1 - alpha_bars_prev) * alphas.sqrt() / (1 - alpha_bars),
            "posterior_std": (betas * (1 - alpha_bars_prev) / (1 - alpha_bars)).sqrt(),
        }.items():
            self.register_buffer(name, value.float(), persistent=False)
        # Per step `(sqrt(1 - ab_t), sqrt(ab_t), posterior x0 coef, x_t coef, std)` as
        # Python floats (the float32 buffers' values): scalar operands in the sampling loop
        # cost no indexing kernel and no device sync.
        self.sampling_coefficients: list[tuple[float, ...]] = list(
            zip(
                self.sqrt_one_minus_alpha_bars.tolist(),
                self.sqrt_alpha_bars.tolist(),
                self.posterior_coef_x0.tolist(),
                self.posterior_coef_xt.tolist(),
                self.posterior_std.tolist(),
                strict=True,
            )
        )

    @classmethod
    def make(cls, name: str, num_steps: int) -> DiffusionSchedule:
        if name not in SCHEDULES:
            raise ValueError(f"unknown noise schedule '{name}'; choose one of {sorted(SCHEDULES)}")
        return cls(SCHEDULES[name](num_steps))

    def q_sample(self, a0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """`a_t = sqrt(alpha_bar_t) a_0 + sqrt(1 - alpha_bar_t) noise`; `t` is `[*B]` of ints."""
        return (
            self.sqrt_alpha_bars[t].unsqueeze(-1) * a0
            + self.sqrt_one_minus_alpha_bars[t].unsqueeze(-1) * noise
        )


class EpsilonNetwork(ConditionalMLP):
    """`eps_theta(a_t, s, t)`: the noise predictor of a diffusion policy, a `ConditionalMLP`
    whose time input is the integer denoising step `t`."""


class DiffusionPolicy(nn.Module):
    """A DDPM over actions conditioned on the state.

    Args:
        eps_net: the noise predictor.
        schedule: the diffusion constants (T steps).
        init_noise_scale: `a_T ~ init_noise_scale * N(0, I)` (0.5 in the released code).
    """

    def __init__(
        self, eps_net: EpsilonNetwork, schedule: DiffusionSchedule, init_noise_scale: float = 0.5
    ) -> None:
        super().__init__()
        self.eps_net = eps_net
        self.schedule = schedule
        self.init_noise_scale = init_noise_scale

    @property
    def act_dim(self) -> int:
        return self.eps_net.act_dim

    def sampling_noise(self, rows: int, device: torch.device | str) -> torch.Tensor:
        """The standard normal noise `sample` draws for `rows` chains: `[T, rows, act_dim]`
        (the start of each chain, then one draw per step but the last)."""
        return torch.randn(self.schedule.num_steps, rows, self.act_dim, device=device)

    def sample(
        self, observation: torch.Tensor, num_samples: int = 1, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Ancestral DDPM sampling with the x0-prediction clipped to [-1, 1] at every step.

        `observation [B, obs_dim] -> actions [B, num_samples, act_dim]`. All candidates of
        all states go through the network together: one forward per denoising step. The
        noise of every step is drawn in one call (`sampling_noise`), or given as `noise`
        (a compiled acting rule draws it outside its graph, so that eager and compiled
        sampling consume the generator alike).
        """
        batch = observation.shape[0]
        rows, sched = batch * num_samples, self.schedule
        if noise is None:
            noise = self.sampling_noise(rows, observation.device)
            action_start = noise[0].mul_(self.init_noise_scale)
        else:
            action_start = noise[0] * self.init_noise_scale  # the caller's tensor stays as is
        noise = noise.unbind(0)  # views, one operation
        action = action_start
        if isinstance(self.eps_net, ConditionalMLP):
            network = self.eps_net.conditioned(observation, num_samples, sched.num_steps)
        else:  # any other noise predictor with the forward(obs, a_t, t) signature
            network = _Unconditioned(self.eps_net, observation, num_samples)
        for step in reversed(range(sched.num_steps)):
            sqrt_one_minus, sqrt_ab, coef_x0, coef_xt, std = sched.sampling_coefficients[step]
            # coef_x0 * clip(a0, -1, 1) with a0 = (a_t - sqrt(1 - ab_t) eps) / sqrt(ab_t),
            # as clip(coef_x0 * a0, -coef_x0, coef_x0) (coef_x0 > 0): one fused update.
            scaled_a0 = network.affine(
                action, step, action, coef_x0 / sqrt_ab, -coef_x0 * sqrt_one_minus / sqrt_ab
            )
            mean = scaled_a0.clamp_(-coef_x0, coef_x0).add_(action, alpha=coef_xt)
            # noise[0] started the chain; step t > 0 adds noise[t] (each slice used once)
            action = mean.add_(noise[step], alpha=std) if step > 0 else mean
        return action.clamp(-1, 1).reshape(batch, num_samples, self.act_dim)

    def denoising_loss_terms(
        self, observation: torch.Tensor, a0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample `||eps_theta(a_t, s, t) - noise||^2` with `a_t = q_sample(a0, t, noise)`."""
        noisy = self.schedule.q_sample(a0, t, noise)
        return (self.eps_net(observation, noisy, t) - noise).pow(2).sum(-1)


class _Unconditioned:
    """A noise predictor without `conditioned` (any `forward(obs, a_t, t)`) behind the
    interface the sampler calls."""

    def __init__(self, eps_net: nn.Module, observation: torch.Tensor, repeats: int) -> None:
        self.eps_net = eps_net
        self.observation = observation.repeat_interleave(repeats, dim=0)

    def affine(
        self, noisy: torch.Tensor, step: int, base: torch.Tensor, beta: float, alpha: float
    ) -> torch.Tensor:
        t = torch.full((noisy.shape[0],), step, device=noisy.device, dtype=torch.long)
        eps = self.eps_net(self.observation, noisy, t).to(base.dtype)
        return torch.add(base.mul(beta), eps, alpha=alpha)
