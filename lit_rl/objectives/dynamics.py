"""Fitting the dynamics ensemble: Gaussian NLL, bootstrap batches, hold-out early stopping.

As in PETS/MBPO/LOOP: a random 20% of the data is held out; every member trains on its own
shuffling of the rest; an epoch improves a member when its hold-out MSE drops by more than
1%; training stops after `patience` epochs without any member improving, each member keeps
its best weights, and the members with the lowest hold-out MSE become the elites.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from lit_rl.nets.dynamics import EnsembleDynamics

LOG_VAR_BOUND_WEIGHT = 0.01  # keeps the learned log-variance limits tight (PETS)


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood (without the constant), summed over members."""
    per_member = (((mean - target) ** 2) * torch.exp(-log_var) + log_var).mean(dim=(1, 2))
    return per_member.sum()


def model_targets(reward: torch.Tensor, observation: torch.Tensor, next_obs: torch.Tensor):
    """`[N, 1 + obs_dim]`: what the model predicts, reward and state change."""
    return torch.cat([reward.reshape(-1, 1), next_obs - observation], dim=-1)


@dataclass
class FitReport:
    epochs: int
    holdout_mse: torch.Tensor  # [M] best hold-out MSE per member
    train_nll: float


def fit_dynamics(
    model: EnsembleDynamics,
    optimizer: torch.optim.Optimizer,
    observation: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    next_observation: torch.Tensor,
    holdout_ratio: float = 0.2,
    max_holdout: int = 5000,
    batch_size: int = 256,
    max_epochs: int = 100,
    patience: int = 5,
    min_improvement: float = 0.01,
) -> FitReport:
    """Train `model` on transitions `[N, ...]` until the hold-out error stops improving."""
    num = observation.shape[0]
    inputs = torch.cat([observation, action], dim=-1)
    raw_targets = model_targets(reward, observation, next_observation)
    perm = torch.randperm(num, device=inputs.device)
    num_holdout = min(int(num * holdout_ratio), max_holdout)
    if num - num_holdout < 2 or num_holdout < 1:
        raise ValueError(f"need more transitions to fit the dynamics model, got {num}")
    hold, train = perm[:num_holdout], perm[num_holdout:]
    model.set_normalizer(inputs[train], raw_targets[train])
    targets = model.normalize_targets(raw_targets)
    obs_dim = observation.shape[-1]

    def holdout_mse() -> torch.Tensor:
        # in standardised units: every predicted quantity counts alike
        with torch.no_grad():
            mean, _ = model(observation[hold], action[hold])
            return ((mean - targets[hold]) ** 2).mean(dim=(1, 2))

    best = holdout_mse()
    best_state = copy.deepcopy(model.state_dict())
    members = model.num_members
    epochs_since, epoch, nll = 0, 0, float("nan")
    for epoch in range(1, max_epochs + 1):  # noqa: B007 - epoch is reported
        # every member sees its own shuffle of the training rows
        order = torch.argsort(torch.rand(members, len(train), device=inputs.device), dim=1)
        order = train[order]
        for start in range(0, len(train), batch_size):
            idx = order[:, start : start + batch_size]
            mean, log_var = model(inputs[idx][..., :obs_dim], inputs[idx][..., obs_dim:])
            loss = gaussian_nll(mean, log_var, targets[idx])
            loss = loss + LOG_VAR_BOUND_WEIGHT * (model.max_log_var.sum() - model.min_log_var.sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            nll = float(loss.detach())
        current = holdout_mse()
        improved = (best - current) / best.clamp_min(1e-12) > min_improvement
        if improved.any():
            best = torch.where(improved, current, best)
            state = model.state_dict()
            for name, value in state.items():
                if value.dim() >= 1 and value.shape[0] == members and name.startswith("layers"):
                    best_state[name][improved] = value[improved]
            epochs_since = 0
        else:
            epochs_since += 1
            if epochs_since >= patience:
                break
    # restore each member's best weights (normaliser and log-var bounds stay current)
    layer_state = {k: v for k, v in best_state.items() if k.startswith("layers")}
    model.load_state_dict(layer_state, strict=False)
    model.elites.copy_(torch.argsort(best)[: model.num_elites])
    return FitReport(epochs=epoch, holdout_mse=best, train_nll=nll)
