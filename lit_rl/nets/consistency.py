"""Consistency policies: one to a few network calls from noise to an action.

Ding and Jin, "Consistency Models as a Rich and Efficient Policy Class for Reinforcement
Learning" (arXiv 2309.16984), on the consistency models of Song et al. 2023 (arXiv
2303.01469). A consistency function maps any point `x` of the noising trajectory at noise
level `tau` straight to its origin:

    f(s, x, tau) = c_skip(tau) x + c_out(tau) F(x, tau, s)
    c_skip(tau) = sigma_data^2 / ((tau - eps)^2 + sigma_data^2)
    c_out(tau)  = sigma_data (tau - eps) / sqrt(sigma_data^2 + tau^2)

so `f(s, x, eps) = x` exactly (c_skip = 1, c_out = 0): the boundary condition holds by
construction, not by training. Noise levels live in [eps, sigma_max] = [0.002, 80] and
are discretised at Karras et al.'s boundaries (rho 7); consistency training (CT) draws
adjacent boundaries and matches the model at the upper one to a target at the lower one,
with the number of boundaries growing by a curriculum. Two CT variants: the original
(EMA target, uniform pairs, squared L2) and the improved one of Song and Dhariwal 2023
(arXiv 2310.14189), the default: see `ConsistencyPolicy.consistency_loss_terms`.

The network F is `lit_rl.nets.conditional.ConditionalMLP`, the diffusion policies' own,
fed the noise level as `250 * log(tau)` (EDM's `log(sigma) / 4` on the 1000-step scale of
the consistency-models code), so the same sinusoidal time embedding resolves it.
Actions live in [-1, 1]^d; sampled actions are clipped there at every step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lit_rl.nets.conditional import ConditionalMLP

SIGMA_DATA = 0.5
EPS = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
TIME_SCALE = 250.0  # network time input = TIME_SCALE * log(tau)
CT_VARIANTS = ("improved", "original")
PSEUDO_HUBER_C = 0.00054  # iCT's c = 0.00054 sqrt(d)
LOGNORMAL_MEAN, LOGNORMAL_STD = -1.1, 2.0  # iCT's noise-level distribution


def karras_boundaries(
    num_points: int, eps: float = EPS, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> torch.Tensor:
    """`num_points` noise levels from `eps` up to `sigma_max` (float64, ascending):
    `t_i = (eps^(1/rho) + i / (N - 1) * (sigma_max^(1/rho) - eps^(1/rho)))^rho`."""
    if num_points < 2:
        raise ValueError(f"karras_boundaries needs at least 2 points, got {num_points}")
    fraction = torch.arange(num_points, dtype=torch.float64) / (num_points - 1)
    low, high = eps ** (1 / rho), sigma_max ** (1 / rho)
    return (low + fraction * (high - low)) ** rho


def curriculum_points(update: int, total_updates: int, start: int = 2, end: int = 150) -> int:
    """Boundaries N(k) at update k of K (Song et al. 2023, CT's discretisation curriculum):
    `N(k) = ceil(sqrt(k / K * ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1`, from s0 = 2 at the
    start to s1 + 1 = 151 boundaries (150 intervals) at the last update."""
    fraction = min(max(update, 0), total_updates) / max(total_updates, 1)
    grown = math.sqrt(fraction * ((end + 1) ** 2 - start**2) + start**2)
    return math.ceil(grown - 1 - 1e-9) + 1


class ConsistencyPolicy(nn.Module):
    """A state-conditioned consistency model over actions.

    Args:
        net: F(x, tau, s), shapes as `ConditionalMLP`.
        sampling_steps: network calls per sample (1 = one-step generation).
        sigma_data, eps, sigma_max, rho: the parametrisation and noise range
            (0.5, 0.002, 80, 7 in the paper).
    """

    def __init__(
        self,
        net: ConditionalMLP,
        sampling_steps: int = 2,
        sigma_data: float = SIGMA_DATA,
        eps: float = EPS,
        sigma_max: float = SIGMA_MAX,
        rho: float = RHO,
    ) -> None:
        super().__init__()
        if sampling_steps < 1:
            raise ValueError(f"sampling_steps must be >= 1, got {sampling_steps}")
        self.net = net
        self.sampling_steps = sampling_steps
        self.sigma_data, self.eps, self.sigma_max, self.rho = sigma_data, eps, sigma_max, rho

    @property
    def act_dim(self) -> int:
        return self.net.act_dim

    def c_skip(self, tau: torch.Tensor | float) -> torch.Tensor | float:
        """The skip coefficient (tensor or float in, same out); 1 at `tau = eps`."""
        return self.sigma_data**2 / ((tau - self.eps) ** 2 + self.sigma_data**2)

    def c_out(self, tau: torch.Tensor | float) -> torch.Tensor | float:
        """The output coefficient; exactly 0 at `tau = eps`."""
        return self.sigma_data * (tau - self.eps) / (self.sigma_data**2 + tau**2) ** 0.5

    def forward(
        self, observation: torch.Tensor, noisy_action: torch.Tensor, tau: torch.Tensor
    ) -> torch.Tensor:
        """`f(s, x, tau)`: `observation [*B, obs]`, `noisy_action [*B, act]`, `tau [*B]`."""
        out = self.net(observation, noisy_action, TIME_SCALE * torch.log(tau))
        tau = tau.unsqueeze(-1).to(noisy_action.dtype)
        return self.c_skip(tau) * noisy_action + self.c_out(tau) * out

    def sampling_levels(self, steps: int | None = None) -> list[float]:
        """The noise levels of multi-step sampling, descending from `sigma_max`: the upper
        `steps` of `steps + 1` Karras boundaries (one step: `[sigma_max]`)."""
        steps = self.sampling_steps if steps is None else steps
        levels = karras_boundaries(steps + 1, self.eps, self.sigma_max, self.rho)
        return levels[1:].flip(0).tolist()

    def sampling_plan(self, steps: int | None = None) -> list[tuple[float, float, float, float]]:
        """Per sampling step `(time input, noise scale, c_skip, c_out)` as Python floats
        (scalar operands cost no kernel): the first step's noise is `sigma_max z`, later
        ones `sqrt(tau^2 - eps^2) z` added to the current action. Cached per step count."""
        steps = self.sampling_steps if steps is None else steps
        cache = self.__dict__.setdefault("_plans", {})
        if steps not in cache:
            levels = self.sampling_levels(steps)
            cache[steps] = [
                (
                    TIME_SCALE * math.log(tau),
                    tau if i == 0 else math.sqrt(tau**2 - self.eps**2),
                    self.c_skip(tau),
                    self.c_out(tau),
                )
                for i, tau in enumerate(levels)
            ]
        return cache[steps]

    def time_inputs(self, steps: int | None, device: torch.device) -> torch.Tensor:
        """The plan's time inputs as a tensor on `device`, made once: a host-to-device
        copy on every call would block CUDA-graph capture of the sampler."""
        cache = self.__dict__.setdefault("_time_inputs", {})
        key = (self.sampling_steps if steps is None else steps, device)
        if key not in cache:
            cache[key] = torch.tensor([t for t, *_ in self.sampling_plan(steps)], device=device)
        return cache[key]

    def sample(
        self, observation: torch.Tensor, num_samples: int = 1, steps: int | None = None
    ) -> torch.Tensor:
        """Multi-step consistency sampling (Song et al. 2023, Algorithm 1):
        `a = f(s, sigma_max z, sigma_max)`, then per lower level `tau`,
        `a = f(s, a + sqrt(tau^2 - eps^2) z, tau)`; clipped to [-1, 1] after each call.

        `observation [B, obs] -> actions [B, num_samples, act]`; differentiable (the
        actor-critic's Q term backpropagates through it). The state's share of the first
        layer is computed once for all candidates and steps (`ConditionalMLP.conditioned`).
        """
        batch = observation.shape[0]
        plan = self.sampling_plan(steps)
        times = self.time_inputs(steps, observation.device)
        network = self.net.conditioned(observation, num_samples, times=times)
        noise = torch.randn(len(plan), batch * num_samples, self.act_dim, device=observation.device)
        noise = noise.unbind(0)  # views, one operation
        action = None
        for index, (_, noise_scale, c_skip, c_out) in enumerate(plan):
            if action is None:
                noisy = noise[index].mul_(noise_scale)
            else:
                noisy = torch.add(action, noise[index], alpha=noise_scale)
            action = network.affine(noisy, index, noisy, c_skip, c_out).clamp(-1.0, 1.0)
        return action.reshape(batch, num_samples, self.act_dim)

    def consistency_loss_terms(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        target: ConsistencyPolicy,
        num_points: int,
        variant: str = "improved",
    ) -> torch.Tensor:
        """Per-sample consistency-training loss `[B]` with `num_points` boundaries,
        `d(f(s, a + t_{n+1} z, t_{n+1}), f_target(s, a + t_n z, t_n))`, one `z ~ N(0, I)`
        shared by both points.

        ``original`` (Song et al. 2023, Algorithm 3): `n ~ U{0..N-2}`, squared L2, unit
        weights; `target` is the EMA network. ``improved`` (Song and Dhariwal 2023, iCT):
        `n` drawn by a lognormal over noise levels (P_mean -1.1, P_std 2), pseudo-Huber
        distance `sqrt(||.||^2 + c^2) - c` with `c = 0.00054 sqrt(act_dim)`, weighted by
        `1 / (t_{n+1} - t_n)`; `target` is the online network itself (gradient
        stopped). Measured on a bimodal 1-D dataset (4000 updates): the original puts
        ~50% of its samples between the modes, the improved ~3%.
        """
        if variant not in CT_VARIANTS:
            raise ValueError(f"consistency training '{variant}'; choose one of {CT_VARIANTS}")
        bounds = karras_boundaries(num_points, self.eps, self.sigma_max, self.rho)
        batch = action.shape[0]
        if variant == "improved":
            index = torch.multinomial(lognormal_pair_weights(bounds), batch, replacement=True)
        else:
            index = torch.randint(0, num_points - 1, (batch,))
        bounds = bounds.to(device=action.device, dtype=action.dtype)
        index = index.to(action.device)
        low, high = bounds[index], bounds[index + 1]
        noise = torch.randn_like(action)
        online = self(observation, action + high.unsqueeze(-1) * noise, high)
        with torch.no_grad():
            aimed = target(observation, action + low.unsqueeze(-1) * noise, low)
        squared = (online - aimed).pow(2).sum(-1)
        if variant == "original":
            return squared
        c = PSEUDO_HUBER_C * math.sqrt(action.shape[-1])
        return (torch.sqrt(squared + c * c) - c) / (high - low)


def lognormal_pair_weights(
    bounds: torch.Tensor, mean: float = LOGNORMAL_MEAN, std: float = LOGNORMAL_STD
) -> torch.Tensor:
    """iCT's probability of each adjacent pair `(t_n, t_{n+1})`: the mass a lognormal
    noise level `log t ~ N(mean, std^2)` puts between them."""
    scaled = (torch.log(bounds) - mean) / (std * math.sqrt(2))
    return (torch.erf(scaled[1:]) - torch.erf(scaled[:-1])).clamp_min(1e-12)
