"""Q-function ensembles."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_rl.nets.mlp import EnsembleLinear, activation


class EnsembleQCritic(nn.Module):
    """`num_qs` independent Q-networks evaluated together by batched matmuls.

    Twin critics (`num_qs=2`) cost one set of matmuls instead of two, which is most of
    SAC's update time on a CPU. Shapes: `observation [B, obs_dim]`, `action [B, act_dim]`
    -> `q [num_qs, B]`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        num_qs: int = 2,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.num_qs = num_qs
        sizes = [obs_dim + act_dim, *hidden_sizes, 1]
        self.layers = nn.ModuleList(
            EnsembleLinear(num_qs, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.act = activation(act)()

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.forward_with(list(self.parameters()), observation, action)

    def forward_with(
        self, params: Sequence[torch.Tensor], observation: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """Evaluate with explicit `params` (as ordered by `parameters()`).

        The actor loss passes detached parameters, so its gradient reaches the action
        but never the critic: this is what lets SAC sum all losses into one backward.
        """
        if observation.shape[:-1] != action.shape[:-1]:
            raise ValueError(
                f"observation batch {tuple(observation.shape)} and action batch "
                f"{tuple(action.shape)} differ"
            )
        x = torch.cat([observation, action], dim=-1)
        x = x.unsqueeze(0).expand(params[0].shape[0], *x.shape)  # members given by params
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            weight, bias = params[2 * i], params[2 * i + 1]
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = self.act(x)
        return x.squeeze(-1)
