"""Importing a user's code by name: the one way a recipe imports code.

A recipe may name a user's algorithm class (`algo.name: my_pkg.my_module:MyAlgo`) and a
Gymnasium env in its `module:EnvName-v0` form. Both name an importable module; nothing
else in a recipe or a checkpoint leads to an import. The module must be installed, on
`PYTHONPATH`, or in the current folder (as with `python -m`).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

from lit_rl.errors import ConfigError


def import_user_module(name: str, what: str) -> ModuleType:
    """`importlib.import_module(name)`, also from the current folder; one-line errors.

    Raises:
        ConfigError: the module (or a module it imports) cannot be found, or its import
            raised; `what` says which recipe key named it.
    """
    if not name or any(not part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"{what}: '{name}' is not a Python module name")
    for attempt in range(2):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            missing_self = err.name is not None and (
                name == err.name or name.startswith(err.name + ".")
            )
            cwd = os.getcwd()
            if attempt == 0 and missing_self and cwd not in sys.path:
                sys.path.insert(0, cwd)
                continue
            where = "not installed, not on PYTHONPATH, not in the current folder"
            if missing_self:
                raise ConfigError(f"{what}: cannot import module '{name}' ({where})") from None
            raise ConfigError(f"{what}: importing '{name}' failed: {err}") from None
        except Exception as err:  # noqa: BLE001 - user code may raise anything on import
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"{what}: importing '{name}' failed: {first_line}") from None
    raise AssertionError("unreachable")


def load_object(path: str, what: str) -> Any:
    """The object `module.path:Name` names (`Name` may be dotted: `Outer.Inner`)."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ConfigError(f"{what}: '{path}' must look like package.module:Name")
    target: Any = import_user_module(module_name, what)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{what}: module '{module_name}' has no '{attribute}'")
        target = getattr(target, part)
    return target
