"""Lightning loggers by name from a recipe's `logger:` list."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lightning.pytorch import loggers as pl_loggers

from lit_rl.errors import ConfigError

LOGGERS: dict[str, str] = {
    "csv": "CSVLogger",
    "tensorboard": "TensorBoardLogger",
    "wandb": "WandbLogger",
    "mlflow": "MLFlowLogger",
    "comet": "CometLogger",
    "neptune": "NeptuneLogger",
}


def _logger_class(name: str) -> type:
    """The logger class a recipe names: a built-in name, or the class path of a
    `lightning.pytorch.loggers.Logger` subclass. Anything else (a function such as
    `os.system`, a class that is not a logger) is refused before it is called."""
    if name in LOGGERS:
        return getattr(pl_loggers, LOGGERS[name])
    if "." in name:  # a class path such as my_package.MyLogger
        module_name, _, class_name = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            raise ConfigError(f"cannot import logger class '{name}'") from None
        if not (isinstance(found, type) and issubclass(found, pl_loggers.Logger)):
            raise ConfigError(
                f"logger '{name}' is not a lightning.pytorch.loggers.Logger subclass; "
                "a recipe may only name logger classes"
            )
        return found
    raise ConfigError(
        f"unknown logger '{name}'; choose from {', '.join(LOGGERS)} or give a class path"
    )


def make_loggers(specs: list[Any], run_dir: str | Path) -> list[pl_loggers.Logger]:
    """Build loggers writing into `run_dir`: CSV to `metrics.csv`, TensorBoard to `tensorboard/`."""
    loggers = []
    for spec in specs:
        options: dict[str, Any] = {}
        if isinstance(spec, dict):
            options = dict(spec)
            name = options.pop("name", None)
            if name is None:
                raise ConfigError(f"logger entry {spec} needs a 'name'")
        elif isinstance(spec, str):
            name = spec
        else:
            raise ConfigError(f"logger entry {spec!r} must be a name or a mapping with 'name'")
        cls = _logger_class(name)
        if name == "csv":
            options = {"save_dir": str(run_dir), "name": "", "version": "", **options}
        elif name == "tensorboard":
            options = {"save_dir": str(run_dir), "name": "tensorboard", "version": "", **options}
        elif "save_dir" in _init_params(cls):
            options.setdefault("save_dir", str(run_dir))
        try:
            loggers.append(cls(**options))
        except (ModuleNotFoundError, ImportError) as err:
            raise ConfigError(
                f"logger '{name}' needs a package that is not installed: {err}"
            ) from None
        except TypeError as err:
            raise ConfigError(f"logger '{name}': {err}") from None
    return loggers


def _init_params(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)
