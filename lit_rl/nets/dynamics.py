"""A probabilistic dynamics ensemble: every member in one batched forward.

PETS/MBPO/LOOP style (Chua et al. 2018; Sikchi et al. 2021): each member maps a
standardised `(s, a)` to a Gaussian over `[reward, s' - s]`. The log-variance is
soft-bounded between learned limits so it can neither explode nor collapse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_rl.nets.mlp import EnsembleLinear, activation


class EnsembleDynamics(nn.Module):
    """`num_members` MLPs predicting mean and log-variance of `[reward, delta_obs]`.

    Shapes: `observation [M, B, obs_dim]`, `action [M, B, act_dim]` (one slice per member,
    or `[B, ...]` to feed every member the same batch) -> `mean, log_var [M, B, 1 + obs_dim]`.
    `elites` (a buffer) lists the members with the lowest hold-out error; `sample_step`
    uses only those.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (200, 200, 200, 200),
        num_members: int = 7,
        num_elites: int = 5,
        act: str = "silu",
    ) -> None:
        super().__init__()
        if not 1 <= num_elites <= num_members:
            raise ValueError(f"num_elites={num_elites} must be in [1, num_members={num_members}]")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.num_members, self.num_elites = num_members, num_elites
        self.out_dim = 1 + obs_dim
        sizes = [obs_dim + act_dim, *hidden_sizes, 2 * self.out_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(num_members, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.act = activation(act)()
        self.max_log_var = nn.Parameter(torch.full((self.out_dim,), 0.5))
        self.min_log_var = nn.Parameter(torch.full((self.out_dim,), -10.0))
        self.register_buffer("input_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("input_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("target_mean", torch.zeros(self.out_dim))
        self.register_buffer("target_std", torch.ones(self.out_dim))
        self.register_buffer("elites", torch.arange(num_elites))

    def set_normalizer(self, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> None:
        """Standardise inputs `[N, obs_dim + act_dim]` and, when given, targets
        `[N, 1 + obs_dim]`: the network then predicts standardised targets, so a reward
        of scale 10 does not drown state changes of scale 0.01 in the loss."""
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(inputs.std(0).clamp_min(1e-6))
        if targets is not None:
            self.target_mean.copy_(targets.mean(0))
            self.target_std.copy_(targets.std(0).clamp_min(1e-6))

    def normalize_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def forward(
        self, observation: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the *standardised* targets per member; `members`
        restricts the forward to those."""
        x = (torch.cat([observation, action], dim=-1) - self.input_mean) / self.input_std
        count = self.num_members if members is None else len(members)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(count, *x.shape)
        if x.shape[0] != count:
            raise ValueError(f"input has {x.shape[0]} member slices, expected {count}")
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if members is None:
                x = layer(x)
            else:
                x = torch.baddbmm(layer.bias[members], x, layer.weight[members])
            if i < last:
                x = self.act(x)
        mean, raw_log_var = x.chunk(2, dim=-1)
        return mean, bound_log_var(raw_log_var, self.min_log_var, self.max_log_var)

    @torch.no_grad()
    def elite_snapshot(self) -> EliteDynamics:
        """A frozen copy of the elites for planning: their weights gathered once, not at
        every model step (planning calls the model thousands of times per fit)."""
        members = self.elites
        weights = [layer.weight[members].clone() for layer in self.layers]
        biases = [layer.bias[members].clone() for layer in self.layers]
        return EliteDynamics(
            weights,
            biases,
            self.act,
            self.input_mean.clone(),
            self.input_std.clone(),
            self.min_log_var.detach().clone(),
            self.max_log_var.detach().clone(),
            self.target_mean.clone(),
            self.target_std.clone(),
        )

    def sample_step(
        self, observation: torch.Tensor, action: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model step through a random elite per row (see `EliteDynamics.sample_step`)."""
        return self.elite_snapshot().sample_step(observation, action, deterministic)


def bound_log_var(raw: torch.Tensor, min_log_var: torch.Tensor, max_log_var: torch.Tensor):
    """Soft-clamp a log-variance between learned limits (PETS, appendix A.1)."""
    log_var = max_log_var - F.softplus(max_log_var - raw)
    return min_log_var + F.softplus(log_var - min_log_var)


class EliteDynamics:
    """The elite members of an `EnsembleDynamics`, frozen, for model rollouts."""

    def __init__(
        self,
        weights,
        biases,
        act,
        input_mean,
        input_std,
        min_log_var,
        max_log_var,
        target_mean,
        target_std,
    ):
        self.weights, self.biases, self.act = weights, biases, act
        self.input_mean, self.input_std = input_mean, input_std
        self.min_log_var, self.max_log_var = min_log_var, max_log_var
        self.target_mean, self.target_std = target_mean, target_std
        self.num_members = weights[0].shape[0]

    def __call__(self, observation: torch.Tensor, action: torch.Tensor):
        """`[num_elites, B, ...]` -> mean, log-variance `[num_elites, B, 1 + obs_dim]`
        of the standardised targets."""
        x = (torch.cat([observation, action], dim=-1) - self.input_mean) / self.input_std
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = self.act(x)
        mean, raw_log_var = x.chunk(2, dim=-1)
        return mean, bound_log_var(raw_log_var, self.min_log_var, self.max_log_var)

    def members_step(
        self, observation: torch.Tensor, action: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model step with row block `m` through elite `m`: `observation
        [num_elites, N, obs_dim]`, `action [num_elites, N, act_dim]` -> `next_observation
        [num_elites, N, obs_dim]`, `reward [num_elites, N]` (sampled unless
        `deterministic`). Planner rollouts stay on one member this way (released ARC)."""
        if observation.shape[0] != self.num_members:
            raise ValueError(
                f"members_step needs [{self.num_members}, N, obs_dim] rows, "
                f"got {tuple(observation.shape)}"
            )
        mean, log_var = self(observation, action)
        if not deterministic:
            mean = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
        mean = mean * self.target_std + self.target_mean
        return observation + mean[..., 1:], mean[..., 0]

    def sample_step(
        self, observation: torch.Tensor, action: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model step for a batch `[B, ...]`, each row through a random elite.

        Rows are shuffled and split evenly across the elites, so the step is one batched
        forward of `B` rows, not `num_elites x B`. Returns `next_observation [B, obs_dim]`
        and `reward [B]`, sampled from the Gaussian unless `deterministic`.
        """
        batch = observation.shape[0]
        members = self.num_members
        per_member = -(-batch // members)  # ceil
        padded = per_member * members
        order = torch.randperm(padded, device=observation.device) % batch
        obs = observation[order].view(members, per_member, -1)
        act = action[order].view(members, per_member, -1)
        mean, log_var = self(obs, act)
        if not deterministic:
            mean = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
        mean = mean * self.target_std + self.target_mean
        out = torch.empty(batch, mean.shape[-1], dtype=mean.dtype, device=mean.device)
        # padded rows repeat real rows; each row keeps one of its predictions
        out[order] = mean.reshape(padded, -1)
        return observation + out[:, 1:], out[:, 0]
