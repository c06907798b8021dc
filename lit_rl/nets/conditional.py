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
    ) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """`eps(a_t, t)` for a fixed batch of states, each repeated `repeats` times.

        The same as `forward`, cheaper for sampling, where it runs T times per call: the
        first layer's share of the state (most of its input on MuJoCo tasks: 348 of 381
        dims on Humanoid) is computed once per state instead of once per candidate and
        step; given `num_steps` (time inputs `0..num_steps-1`) or `times` (any time
        inputs, called by their index), the time embedding's share is computed for all of
        them in one batch; and the layers are called as functions, without module overhead.
        """
        first, *hidden_layers, last = [m for m in self.net if isinstance(m, nn.Linear)]
        activations = [m for m in self.net if not isinstance(m, nn.Linear)]
        obs_dim, act_dim = self.obs_dim, self.act_dim
        w_act_t = first.weight[:, obs_dim : obs_dim + act_dim].t()
        w_time_t = first.weight[:, obs_dim + act_dim :].t()
        state_part = nn.functional.linear(observation, first.weight[:, :obs_dim], first.bias)
        state_part = state_part.repeat_interleave(repeats, dim=0)
        linear = nn.functional.linear

        def time_part(steps: torch.Tensor) -> torch.Tensor:
            return self.time_embedding(steps) @ w_time_t  # [len(steps), hidden]

        table = None
        if num_steps is not None:
            table = time_part(torch.arange(num_steps, device=observation.device))
        elif times is not None:
            table = time_part(times.to(observation.device))

        def eps(noisy_action: torch.Tensor, step: int) -> torch.Tensor:
            if table is not None:
                offset = table[step]
            else:
                offset = time_part(torch.full((1,), step, device=observation.device))
            noisy_action = noisy_action.to(w_act_t.dtype)
            hidden = torch.addmm(state_part + offset, noisy_action, w_act_t)
            for act, layer in zip(activations, hidden_layers, strict=False):
                hidden = linear(act(hidden), layer.weight, layer.bias)
            return linear(activations[-1](hidden), last.weight, last.bias)

        return eps


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
