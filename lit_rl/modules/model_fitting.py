"""When and how a planning algorithm refits its dynamics model from the replay buffer."""

from __future__ import annotations

import time
from typing import Any

import torch
from tensordict import TensorDictBase

from lit_rl.nets.dynamics import EnsembleDynamics
from lit_rl.objectives.dynamics import fit_dynamics


def ddp_ignored(prefix: str, module: torch.nn.Module) -> list[str]:
    """Names of `module`'s parameters and buffers (under attribute `prefix`) for
    `_ddp_params_and_buffers_to_ignore`: a model each rank fits by itself, outside the
    update, must be neither reduced nor broadcast by DDP."""
    named = [*module.named_parameters(), *module.named_buffers()]
    return [f"{prefix}.{name}" for name, _ in named]


class PeriodicModelFit:
    """Refit on the whole replay buffer every `every` env steps once warm-up is over
    (LOOP: every 250), with early stopping on a hold-out split (`fit_dynamics`).

    Counters are checkpointed (`state_dict`), so a resumed run refits at the same steps.
    """

    def __init__(
        self,
        every: int,
        warmup_steps: int,
        holdout: float = 0.2,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 5,
    ) -> None:
        self.every, self.warmup_steps = every, warmup_steps
        self.fit_kwargs = dict(
            holdout_ratio=holdout, batch_size=batch_size, max_epochs=max_epochs, patience=patience
        )
        self.fitted_at = -1  # env_steps // every at the last fit
        self.fits = 0
        self.seconds = 0.0

    def due(self, env_steps: int) -> bool:
        return env_steps >= self.warmup_steps and env_steps // self.every > self.fitted_at

    def fit(
        self,
        dynamics: EnsembleDynamics,
        optimizer: torch.optim.Optimizer,
        rows: TensorDictBase,
        env_steps: int,
    ) -> dict[str, float]:
        """Fit `dynamics` to `rows` (replay transitions) at `env_steps`; returns the
        metrics to log."""
        start = time.perf_counter()
        with torch.enable_grad():
            report = fit_dynamics(
                dynamics,
                optimizer,
                rows.get("observation"),
                rows.get("action"),
                rows.get(("next", "reward")),
                rows.get(("next", "observation")),
                **self.fit_kwargs,
            )
        self.seconds += time.perf_counter() - start
        self.fits += 1
        self.fitted_at = env_steps // self.every
        return {
            "model/holdout_mse": float(report.holdout_mse[dynamics.elites].mean()),
            "model/epochs": float(report.epochs),
            "model/train_nll": report.train_nll,
            "model/transitions": float(len(rows)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"fitted_at": self.fitted_at, "fits": self.fits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted_at, self.fits = state["fitted_at"], state["fits"]
