"""A full-covariance Gaussian policy (MPO/CVPO), parameterised by a Cholesky factor."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_rl.nets.mlp import activation, make_mlp

MIN_STD = 1e-4  # keeps the covariance positive definite


class CholeskyGaussianActor(nn.Module):
    """`pi(a|s) = N(mu(s), L(s) L(s)^T)`: mean `tanh`-bounded to [-1, 1], `L` lower
    triangular with a softplus diagonal.

    The mean and the factor come from one MLP trunk with two heads. MPO's decoupled
    trust regions (Abdolmaleki et al. 2018) need the two separately: `parameters()`
    gives `(mean [*B, A], scale_tril [*B, A, A])`. Samples are not squashed; acting
    clips them to the action box (the released CVPO does the same), so the M-step's
    likelihoods are those of plain Gaussians.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        act: str = "relu",
        init_std: float = 0.5,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.trunk = make_mlp(obs_dim, hidden_sizes[-1], hidden_sizes[:-1], act)
        self.trunk_act = activation(act)()
        self.mean_head = nn.Linear(hidden_sizes[-1], act_dim)
        self.tril_head = nn.Linear(hidden_sizes[-1], act_dim * (act_dim + 1) // 2)
        rows, cols = torch.tril_indices(act_dim, act_dim)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        # softplus^-1 of init_std on the diagonal at initialisation
        self.diag_offset = float(torch.log(torch.expm1(torch.tensor(init_std))))

    def distribution_params(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mean [*B, A], scale_tril [*B, A, A])`."""
        features = self.trunk_act(self.trunk(observation))
        mean = torch.tanh(self.mean_head(features))
        entries = self.tril_head(features)
        tril = entries.new_zeros(*entries.shape[:-1], self.act_dim, self.act_dim)
        tril[..., self.rows, self.cols] = entries
        diagonal = F.softplus(tril.diagonal(dim1=-2, dim2=-1) + self.diag_offset) + MIN_STD
        tril = tril.tril(-1) + torch.diag_embed(diagonal)
        return mean, tril

    def sample_actions(self, observation: torch.Tensor, num: int) -> torch.Tensor:
        """`[num, *B, A]` unclipped samples (the E-step's candidate actions)."""
        mean, tril = self.distribution_params(observation)
        noise = torch.randn(num, *mean.shape, device=mean.device, dtype=mean.dtype)
        return mean + (tril @ noise.unsqueeze(-1)).squeeze(-1)

    def explore(self, observation: torch.Tensor) -> torch.Tensor:
        return self.sample_actions(observation, 1)[0].clamp(-1.0, 1.0)

    def mode(self, observation: torch.Tensor) -> torch.Tensor:
        mean, _ = self.distribution_params(observation)
        return mean


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, tril: torch.Tensor) -> torch.Tensor:
    """`log N(x; mean, tril tril^T)`; `x [N, *B, A]` against `mean [*B, A]` -> `[N, *B]`."""
    diff = (x - mean).unsqueeze(-1)
    solved = torch.linalg.solve_triangular(tril.expand(*diff.shape[:-2], -1, -1), diff, upper=False)
    mahalanobis = solved.squeeze(-1).pow(2).sum(-1)
    log_det = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    act_dim = x.shape[-1]
    return -0.5 * mahalanobis - log_det - 0.5 * act_dim * torch.log(torch.tensor(2 * torch.pi))


def gaussian_kl(
    mean_p: torch.Tensor, tril_p: torch.Tensor, mean_q: torch.Tensor, tril_q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of `KL(N_p || N_q)` per state `[*B]`: the mean part
    `0.5 (mu_q - mu_p)^T S_q^-1 (mu_q - mu_p)` and the covariance part
    `0.5 (tr(S_q^-1 S_p) - A + log det S_q - log det S_p)` (MPO's decoupled KLs)."""
    diff = (mean_q - mean_p).unsqueeze(-1)
    solved = torch.linalg.solve_triangular(tril_q, diff, upper=False).squeeze(-1)
    kl_mean = 0.5 * solved.pow(2).sum(-1)
    ratio = torch.linalg.solve_triangular(tril_q, tril_p, upper=False)  # L_q^-1 L_p
    trace = ratio.pow(2).sum((-2, -1))
    log_det_q = tril_q.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_det_p = tril_p.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    kl_cov = 0.5 * (trace - mean_p.shape[-1] + 2 * (log_det_q - log_det_p))
    return kl_mean, kl_cov
