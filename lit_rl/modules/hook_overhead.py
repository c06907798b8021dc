"""Two per-step costs of Lightning's training loop that an RL engine pays once per env
step, made cheap without changing what Lightning sees.

At the recipes' defaults (one env step and one update per `training_step`) Lightning's
loop runs once per env step, so its fixed costs compete with a MuJoCo step
(`benchmarks/engine_floor.py`). Two of them come from generic Python machinery:

* Lightning records the running hook in `module._current_fx_name` before and after each
  hook it calls (~30 assignments per step). On a LightningModule each assignment goes
  through `nn.Module.__setattr__`, which checks whether the value is a parameter,
  module or buffer: ~4-8 us each here, against <1 us for a plain attribute. The name is
  always a str or None, so it is stored as a plain attribute directly (what
  `nn.Module.__setattr__` ends up doing for such a value anyway).
* Before every `training_step` Lightning asks whether the hook takes `batch_idx` with
  `inspect.getfullargspec`, which rebuilds the signature each time (~20-50 us). A
  function's `__signature__` attribute is what `inspect` returns when it is set, so
  each class's `training_step` gets its signature computed once, when the class is made.
"""

from __future__ import annotations

import inspect
from typing import Any

HOOK_NAME_ATTRIBUTE = "_current_fx_name"


class CheapHookBookkeeping:
    """Mixin for a `LightningModule` (put it before `pl.LightningModule` in the bases)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("training_step")
        if inspect.isfunction(step) and "__signature__" not in vars(step):
            step.__signature__ = inspect.signature(step)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE and (value is None or isinstance(value, str)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
