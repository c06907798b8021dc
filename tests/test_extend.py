"""Extending by subclassing: a SAC variant with a fixed temperature in a few lines."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import small_overrides, train

from lit_rl.modules import ALGORITHMS, SAC
from lit_rl.objectives import SACLoss


# --- the variant a user writes (the whole of it) -----------------------------------
class FixedAlphaSACLoss(SACLoss):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_alpha.requires_grad_(False)

    def alpha_loss(self, log_prob):
        return torch.zeros((), device=log_prob.device), {}


class FixedAlphaSAC(SAC):
    """SAC with a constant temperature `init_alpha` (SAC v1 style)."""

    algo_name = "sac_fixed_alpha"
    loss_class = FixedAlphaSACLoss

    def configure_optimizers(self):
        params = [*self.loss_module.actor.parameters(), *self.loss_module.critic.parameters()]
        return torch.optim.Adam(params, lr=self.hparams.critic_lr)


# -------------------------------------------------------------------------------------


def test_variant_trains_and_differs_from_sac_on_the_same_seed(tmp_path, monkeypatch):
    """Same seed, same data path: only the temperature rule differs, so SAC moves alpha
    and the variant does not, and the two actors end up apart."""
    monkeypatch.setitem(ALGORITHMS, "sac_fixed_alpha", FixedAlphaSAC)
    runs = {}
    for name in ("sac", "sac_fixed_alpha"):
        overrides = ["max_env_steps=300", f"algo.name={name}", "algo.init_alpha=0.2"]
        _, runs[name], _ = train(small_overrides(tmp_path / name, *overrides))
    sac, variant = runs["sac"].loss_module, runs["sac_fixed_alpha"].loss_module
    assert runs["sac"].updates == runs["sac_fixed_alpha"].updates == 200
    assert variant.log_alpha.item() == pytest.approx(math.log(0.2))
    assert abs(sac.log_alpha.item() - math.log(0.2)) > 1e-3
    actor_weights = lambda loss: torch.cat([p.flatten() for p in loss.actor.parameters()])
    assert not torch.allclose(actor_weights(sac), actor_weights(variant))


def test_variant_trains_with_its_temperature_fixed(tmp_path, monkeypatch):
    monkeypatch.setitem(ALGORITHMS, "sac_fixed_alpha", FixedAlphaSAC)
    _, module, _ = train(
        small_overrides(
            tmp_path, "max_env_steps=400", "algo.name=sac_fixed_alpha", "algo.init_alpha=0.2"
        )
    )
    assert module.updates == 300
    assert module.loss_module.log_alpha.item() == pytest.approx(math.log(0.2))
    # it learned something: the critic moved from its initial weights
    _, untrained, _ = train(
        small_overrides(
            tmp_path / "init",
            "max_env_steps=100",
            "algo.name=sac_fixed_alpha",
            "algo.init_alpha=0.2",
        )
    )
    assert torch.equal(module.loss_module.log_alpha, untrained.loss_module.log_alpha)
    assert not torch.equal(
        module.loss_module.critic.layers[0].weight, untrained.loss_module.critic.layers[0].weight
    )
