"""`CheapHookBookkeeping` makes two per-step Lightning costs cheap without changing what
Lightning or `nn.Module` see (lit_rl/modules/hook_overhead.py)."""

from __future__ import annotations

import inspect

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from lit_rl.modules.hook_overhead import CheapHookBookkeeping
from lit_rl.modules.off_policy import OffPolicyModule


class _Module(CheapHookBookkeeping, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def training_step(self, batch, batch_idx):
        return None


class _OneArgument(_Module):
    def training_step(self, batch):
        return None


def test_hook_names_skip_module_bookkeeping_and_everything_else_keeps_it(monkeypatch):
    module, scale, head = _Module(), torch.nn.Parameter(torch.ones(1)), torch.nn.Linear(2, 1)
    seen = []
    module_setattr = torch.nn.Module.__setattr__

    def counting(self, name, value):
        seen.append(name)
        module_setattr(self, name, value)

    monkeypatch.setattr(torch.nn.Module, "__setattr__", counting)
    module._current_fx_name = "training_step"
    module._current_fx_name = None
    assert seen == []
    assert vars(module)["_current_fx_name"] is None
    module.scale, module.head = scale, head
    assert seen == ["scale", "head"]
    assert "scale" in dict(module.named_parameters()) and "head" in dict(module.named_modules())
    assert "scale" not in vars(module) and "head" not in vars(module)


def test_training_step_signatures_are_computed_once_and_read_the_same():
    for cls, takes_batch_idx in ((_Module, True), (_OneArgument, False), (OffPolicyModule, True)):
        step = cls.__dict__["training_step"]
        assert step.__signature__ == inspect.signature(step, follow_wrapped=False)
        del step.__signature__  # what Lightning would read without it
        uncached = inspect.getfullargspec(step)
        cls.__init_subclass__.__func__(cls)  # as at class creation
        assert "__signature__" in vars(step)
        assert inspect.getfullargspec(step) == uncached
        bound = cls.__new__(cls).training_step
        assert is_param_in_hook_signature(bound, "batch_idx", min_args=2) is takes_batch_idx
