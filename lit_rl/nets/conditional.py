"""What generative action policies share: the time embedding, the state-conditioned MLP
over (state, noisy action, time), and choosing among candidate actions by a critic.

Diffusion policies (`lit_rl.nets.diffusion`) and consistency policies
(`lit_rl.nets.consistency`) are both built from these pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lit_rl.nets.mlp import make_mlp


class SinusoidalTimeEmbedding(nn.Module):
    """`t [*B] -> [*B, out_dim]`: sinusoidal features (`dim`) then a 2-layer Mish MLP."""

    def __init__(self, dim: int = 16, hidden: int = 32, out_dim: int = 16) -> None:
        super().__init__()
        half = dim // 2
        frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Mish(), nn.Linear(hidden, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float().unsqueeze(-1) * self.frequencies
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class ConditionalMLP(nn.Module):
    """`F(a, s, t)`: an MLP over `concat(s, a, time embedding)`, the network of diffusion
    policies (`t`: the denoising step) and consistency policies (`t`: the scaled log noise level).

    Shapes: `observation [*B, obs_dim]`, `noisy_action [*B, act_dim]`, `t [*B]`
    -> `[*B, act_dim]`. Defaults follow the DPMD/SDAC paper: 3x256 Mish, time embedding
    sinusoidal 16 -> 32 -> 16.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (256, 256, 256),
        act: str = "mish",
        time_dim: int = 16,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.time_embedding = SinusoidalTimeEmbedding(time_dim, 2 * time_dim, time_dim)
        self.net = make_mlp(obs_dim + act_dim + time_dim, act_dim, hidden_sizes, act)

    def forward(
        self, observation: torch.Tensor, noisy_action: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        features = torch.cat([observation, noisy_action, self.time_embedding(t)], dim=-1)
        return self.net(features)

    def conditioned(
        self,
        observation: torch.Tensor,
        repeats: int = 1,
        num_steps: int | None = None,
        times: torch.Tensor | None = None,
    ) -> ConditionedNetwork:
        """`F(a_t, t)` for a fixed batch of states, each repeated `repeats` times.

        The same as `forward`, cheaper for sampling, where it runs T times per call: the
        first layer's share of the state (most of its input on MuJoCo tasks: 348 of 381
        dims on Humanoid) is computed once per state instead of once per candidate and
        step; given `num_steps` (time inputs `0..num_steps-1`) or `times` (any time
        inputs, called by their index), the time embedding's share is computed for all of
        them in one batch; and the layers are called as functions, without module overhead.
        """
        first, *hidden_layers, last = [m for m in self.net if isinstance(m, nn.Linear)]
        obs_dim, act_dim = self.obs_dim, self.act_dim
        w_time_t = first.weight[:, obs_dim + act_dim :].t()
        state_part = nn.functional.linear(observation, first.weight[:, :obs_dim], first.bias)

        def time_part(steps: torch.Tensor) -> torch.Tensor:
            return self.time_embedding(steps) @ w_time_t  # [len(steps), hidden]

        table = None
        if num_steps is not None:
            table = time_part(torch.arange(num_steps, device=observation.device))
        elif times is not None:
            table = time_part(times.to(observation.device))
        return ConditionedNetwork(
            state_part=state_part.repeat_interleave(repeats, dim=0),
            time_table=table,
            time_part=time_part,
            action_weight_t=self.transposed(first.weight, (obs_dim, obs_dim + act_dim)),
            layers=[(self.transposed(layer.weight), layer.bias) for layer in hidden_layers],
            activations=[m for m in self.net if not isinstance(m, nn.Linear)],
            last=(self.transposed(last.weight), last.bias),
        )

    def transposed(
        self, weight: torch.Tensor, columns: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """`weight[:, a:b].t()` as the sampler's `addmm` operand.

        On a CPU without autograd, a contiguous copy, kept until the weight changes
        (optimizer and EMA steps bump its version): MKL multiplies 32 candidates by a
        transposed view of a 256x256 weight ~2.3x slower than by a contiguous matrix
        (measured here: 79-122 us against 34-52 us), 80 times per diffusion env step.
        Inside `torch.compile` on a CPU, a copy made in the graph. On a GPU, or where
        gradients flow, the view itself.
        """
        part = weight if columns is None else weight[:, columns[0] : columns[1]]
        if torch.compiler.is_compiling():
            # traced (`algo.compile`): the copy becomes one kernel of the compiled graph,
            # made on every call (the weights may have changed), and needs no cache
            return part.t().contiguous() if weight.device.type == "cpu" else part.t()
        if weight.device.type != "cpu" or torch.is_grad_enabled():
            return part.t()
        cache = self.__dict__.setdefault("_transposed_weights", {})
        key = (id(weight), columns)
        cached = cache.get(key)
        if cached is None or not (
            cached[0] is weight and cached[1] == weight._version and cached[2] == weight.data_ptr()
        ):
            copy = part.t().contiguous()
            cached = cache[key] = (weight, weight._version, weight.data_ptr(), copy)
        return cached[3]


class ConditionedNetwork:
    """A `ConditionalMLP` with its state input fixed (`ConditionalMLP.conditioned`), called
    as `F(noisy_action, step)` once per sampling step.

    Sampling runs ~25 small operations per step on 32 candidates, where on a CPU each
    operation's framework overhead (~3-8 us) rivals its arithmetic, so the layers are
    `addmm` calls on weights transposed once, and `affine` folds a sampler's update
    `beta * base + alpha * F(...)` into the last layer's `addmm` (the DDPM posterior
    mean and the consistency function are both of that form). Differentiable.
    """

    max_step_inputs = 2**20  # elements of the first layer's fixed input kept for all steps

    def __init__(
        self,
        state_part: torch.Tensor,
        time_table: torch.Tensor | None,
        time_part: Callable[[torch.Tensor], torch.Tensor],
        action_weight_t: torch.Tensor,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        activations: list[nn.Module],
        last: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        self.state_part, self.time_table, self.time_part = state_part, time_table, time_part
        # the first layer's input part for every step at once where that is small (acting:
        # 32 candidates x 20 steps x 256), one operation instead of one per step
        self.step_inputs: tuple[torch.Tensor, ...] | None = None
        size = None if time_table is None else time_table.numel() * state_part.shape[0]
        if size is not None and size <= self.max_step_inputs:
            self.step_inputs = (state_part.unsqueeze(0) + time_table.unsqueeze(1)).unbind(0)
        self.action_weight_t, self.layers, self.activations = action_weight_t, layers, activations
        self.last_weight_t, self.last_bias = last

    def last_hidden(self, noisy_action: torch.Tensor, step: int) -> torch.Tensor:
        """The activations that enter the last layer."""
        if self.step_inputs is not None:
            fixed_input = self.step_inputs[step]
        elif self.time_table is not None:
            fixed_input = self.state_part + self.time_table[step]
        else:
            offset = self.time_part(torch.full((1,), step, device=noisy_action.device))
            fixed_input = self.state_part + offset
        noisy_action = noisy_action.to(self.action_weight_t.dtype)
        hidden = torch.addmm(fixed_input, noisy_action, self.action_weight_t)
        for act, (weight_t, bias) in zip(self.activations, self.layers, strict=False):
            hidden = torch.addmm(bias, act(hidden), weight_t)
        return self.activations[-1](hidden)

    def __call__(self, noisy_action: torch.Tensor, step: int) -> torch.Tensor:
        return torch.addmm(self.last_bias, self.last_hidden(noisy_action, step), self.last_weight_t)

    def affine(
        self, noisy_action: torch.Tensor, step: int, base: torch.Tensor, beta: float, alpha: float
    ) -> torch.Tensor:
        """`beta * base + alpha * F(noisy_action, step)` in `base`'s dtype.

        `beta * base + alpha * (h W^T + b) = addmm(base + (alpha / beta) b, h, W^T,
        beta, alpha)`: two operations where the plain form takes four, and no Python
        number becomes a tensor operand (each costs a host-side conversion).
        """
        hidden = self.last_hidden(noisy_action, step)
        if beta == 0 or torch.is_autocast_enabled(base.device.type):
            out = torch.addmm(self.last_bias, hidden, self.last_weight_t).to(base.dtype)
            return torch.add(base.mul(beta), out, alpha=alpha)
        shifted = torch.add(base, self.last_bias, alpha=alpha / beta)
        return torch.addmm(shifted, hidden, self.last_weight_t, beta=beta, alpha=alpha)


def best_of_n(candidates: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick per state the candidate with the highest score.

    `candidates [B, N, act_dim]`, `scores [B, N]` -> (`actions [B, act_dim]`, `index [B]`).
    """
    if scores.shape != candidates.shape[:2]:
        raise ValueError(
            f"scores {tuple(scores.shape)} do not match candidates {tuple(candidates.shape)}"
        )
    index = scores.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), index], index


def softmax_choice(
    candidates: torch.Tensor, scores: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per state, one candidate drawn with probabilities `softmax(scores)`.

    `candidates [B, N, act_dim]`, `scores [B, N]` -> `actions [B, act_dim]`: the acting
    rule of Diffusion-QL-style policies (consistency policies pick among 50 this way).
    """
    if scores.shape != candidates.shape[:2]:
        raise ValueError(
            f"scores {tuple(scores.shape)} do not match candidates {tuple(candidates.shape)}"
        )
    # Gumbel-max (as exponential races): the same distribution as `multinomial` without
    # its host synchronisation, so the rule can be replayed from a CUDA graph.
    logits = torch.log_softmax(scores.float(), dim=1)
    races = torch.empty_like(logits).exponential_(generator=generator)
    index = (logits - races.log()).argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), index]
