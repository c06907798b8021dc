"""Rebuild a trained module from a checkpoint, for evaluation, collection or fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lit_rl.errors import ConfigError
from lit_rl.modules.state import load_plain


def module_from_checkpoint(path: Path, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """`(module, checkpoint)`: the algorithm the checkpoint names, with its hyperparameters
    (`overrides` on top) and weights. Loads tensors and plain values only.

    Raises:
        ConfigError: (one line) not a lit_rl checkpoint, or not one this version can load.
    """
    from lit_rl.modules import ALGORITHMS, algorithm_class

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    checkpoint = load_plain(path, "lit_rl checkpoint")
    hparams = checkpoint.get("hyper_parameters")
    algo_name = checkpoint.get("lit_rl_algo")
    custom = isinstance(algo_name, str) and ":" in algo_name
    if not isinstance(hparams, dict) or not (algo_name in ALGORITHMS or custom):
        raise ConfigError(f"{path} is not a lit_rl checkpoint")
    # a user's algorithm (`module:Class`) is imported as its recipe did; it must be an
    # OffPolicyModule subclass, and the checkpoint itself still loads tensors only
    algo_cls = algorithm_class(algo_name, what=f"{path}'s algorithm")
    try:
        module = algo_cls(**{**hparams, **overrides})
        module.load_state_dict(checkpoint["state_dict"])
    except (TypeError, KeyError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise ConfigError(f"{path} does not fit this lit_rl's {algo_name}: {reason}") from None
    return module, checkpoint
