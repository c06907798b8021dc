"""The Python API: train a recipe, load a trained policy, export it.

    import lit_rl
    result = lit_rl.train("recipes/sac_pendulum.yaml", seed=1, max_env_steps=5000)
    result.run_dir, result.metrics["eval/return_mean"]
    policy = lit_rl.load_policy(result.checkpoint)
    action = policy(observation)          # NumPy in, NumPy out, in the env's own bounds

Keyword arguments of `train` are recipe overrides; nested sections take dicts
(`algo={"batch_size": 64}`) or dotted strings in `overrides`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lit_rl.errors import ConfigError


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left behind.

    Attributes:
        run_dir: the run folder (config.yaml, metrics.csv, checkpoints).
        metrics: the last logged value of every metric (`eval/return_mean`, `env_steps`,
            `updates`, losses, ...).
        checkpoint: `last.ckpt` if written, else the newest checkpoint (None if none).
    """

    run_dir: Path
    metrics: dict[str, float]
    checkpoint: Path | None


def _dotlist(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`{"seed": 1, "algo": {"batch_size": 64}}` -> `["seed=1", "algo.batch_size=64"]`.

    Non-string values are written as JSON, which the YAML of OmegaConf's dot-lists reads
    back as the same numbers, booleans, nulls and lists."""
    items = []
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_dotlist(value, f"{name}."))
        else:
            items.append(f"{name}={value if isinstance(value, str) else json.dumps(value)}")
    return items


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The last non-empty value of each column of the run's metrics.csv."""
    from lit_rl.loggers import METRICS_FILE

    path = Path(run_dir) / METRICS_FILE
    latest: dict[str, float] = {}
    if not path.is_file():
        return latest
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if value not in ("", None):
                    try:
                        latest[key] = float(value)
                    except ValueError:
                        continue
    return latest


def train(
    recipe: str | Path,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    **settings: Any,
) -> TrainResult:
    """Train `recipe` (a path, or a shipped recipe's name) in this process.

    Args:
        recipe: a recipe file or a shipped recipe's name (`"sac_pendulum"`).
        overrides: dotted `key=value` strings, as on the command line.
        resume: a run folder or checkpoint to continue (its config.yaml is the recipe;
            `recipe` is then not read).
        **settings: more overrides as keywords (`seed=1`, `algo={"batch_size": 64}`).

    Raises:
        ConfigError: a bad recipe or override (one line, as the CLI prints it).
    """
    from argparse import Namespace

    from lit_rl.cli import load_run_config
    from lit_rl.run import fit, newest_checkpoint

    # Lightning notes "`weights_only` was not set" at every checkpoint save (lit_rl's
    # checkpoints hold weights and counters on purpose); the CLI hides it too
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(
        logging.WARNING
    )
    # the same recipe and resume handling (and checks) as `lit-rl run`
    request = Namespace(
        recipe=None if resume is not None else str(recipe),
        overrides=[*overrides, *_dotlist(settings)],
        resume=None if resume is None else str(resume),
        init_from=None,
    )
    cfg, checkpoint = load_run_config(request)
    _, _, run_dir = fit(cfg, resume=checkpoint)
    try:
        last = newest_checkpoint(run_dir)
    except ConfigError:
        last = None
    return TrainResult(run_dir=run_dir, metrics=final_metrics(run_dir), checkpoint=last)


class EnvUnitsPolicy(nn.Module):
    """`observation [*B, obs] -> action [*B, act]` in the env's own bounds: an acting rule
    (actions in [-1, 1]) followed by the affine map to `[low, high]`."""

    def __init__(self, acting: nn.Module, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.acting = acting
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        unit = self.acting(observation).float()
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


class LoadedPolicy:
    """A trained acting policy as a plain callable: NumPy (or a tensor) in, NumPy out.

    Acts deterministically by default (as evaluation does); `deterministic=False`
    samples as during training. Planning policies keep a warm start across calls: call
    `reset()` at each episode start.
    """

    def __init__(self, module: Any, device: str | torch.device, deterministic: bool) -> None:
        from lit_rl.data.datasets import action_bounds

        self.module = module.to(device).eval()
        self.device = torch.device(device)
        self.deterministic = deterministic
        self.policy = module.make_policy()
        self.low, self.high = action_bounds(module.hparams.env_id)
        self.obs_dim = int(module.hparams.obs_dim)
        self._episode_start = True

    def reset(self) -> None:
        """The next call starts a new episode (planners drop their warm start)."""
        self._episode_start = True

    def __call__(self, observation: np.ndarray | torch.Tensor) -> np.ndarray:
        from lit_rl.data.datasets import to_env_actions
        from lit_rl.modules.policy import act_on_numpy

        obs = np.asarray(observation, dtype=np.float32)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim > 2:
            raise ValueError(
                f"observation of shape {tuple(obs.shape)}; this policy takes "
                f"[{self.obs_dim}] or [batch, {self.obs_dim}]"
            )
        start, self._episode_start = self._episode_start, False
        unit = act_on_numpy(self.policy, obs, start, self.deterministic, self.device)
        return to_env_actions(unit, self.low, self.high).astype(np.float32)


def load_policy(
    checkpoint: str | Path, device: str | torch.device = "cpu", deterministic: bool = True
) -> LoadedPolicy:
    """The acting policy of a lit_rl checkpoint (tensors only are loaded).

    Raises:
        ConfigError: not a lit_rl checkpoint, or one this version cannot load.
    """
    from lit_rl.modules.loading import module_from_checkpoint

    module, _ = module_from_checkpoint(Path(checkpoint))
    return LoadedPolicy(module, device, deterministic)


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the deterministic acting policy of `checkpoint` as a `torch.export` program
    (`.pt2`): `observation [B, obs] -> action [B, act]` in the env's own bounds. It loads
    with `torch.export.load(path).module()` and needs only torch.

    Raises:
        ConfigError: a policy that cannot be exported (planners decide in Python loops
            and keep state between steps).
    """
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from lit_rl.data.datasets import action_bounds
    from lit_rl.modules.loading import module_from_checkpoint

    module, _ = module_from_checkpoint(Path(checkpoint))
    module.eval()
    policy = module.make_policy()
    acting = getattr(policy, "acting", None)
    if acting is None or list(getattr(policy, "in_keys", [])) != ["observation"]:
        raise ConfigError(
            f"{module.hparams.env_id} policy of {type(module).__name__} cannot be exported: "
            "it is not an observation -> action network (planning policies are not)"
        )
    low, high = action_bounds(module.hparams.env_id)
    wrapped = EnvUnitsPolicy(acting, low, high).eval()
    example = torch.zeros(2, int(module.hparams.obs_dim))
    batch = torch.export.Dim("batch", min=1)
    try:
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            wrapped(example)  # fills lazy caches (sampling plans) outside the trace
            program = torch.export.export(
                wrapped, (example,), dynamic_shapes={"observation": {0: batch}}
            )
    except Exception as err:  # noqa: BLE001 - export reports many error types
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(
            f"{type(module).__name__}'s acting policy cannot be exported: {first_line}"
        ) from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out)
    return out


__all__ = ["LoadedPolicy", "TrainResult", "export_policy", "load_policy", "train"]
