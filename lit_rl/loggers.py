"""Lightning loggers by name from a recipe's `logger:` list."""

from __future__ import annotations

import csv
import importlib
from pathlib import Path
from typing import Any

from lightning.pytorch import loggers as pl_loggers
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from lit_rl.errors import ConfigError

METRICS_FILE = "metrics.csv"


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing `metrics.csv` is continued (its
    header's columns kept) instead of deleted: a resumed run appends to its own curve."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))


class AppendingCSVLogger(CSVLogger):
    """`CSVLogger` that appends to the run folder's `metrics.csv` (see `_AppendingWriter`)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


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
    if name == "csv":
        return AppendingCSVLogger
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
