"""Every schedule of every recipe at its last update, without running it.

The released DPMD/SDAC temperature (Adam on `log alpha`, lr 7e-3, every 250 updates) is
reproduced by `NoiseEntropyTemperature`; here it is checked against torch's own Adam on
the same loss and against the released trajectory's numbers (algorithms.md section 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import REPO

from lit_rl.config import load_recipe
from lit_rl.objectives.temperature import NoiseEntropyTemperature, hold_then_linear
from lit_rl.run import build_module

TRAINING_RECIPES = sorted(
    path for path in (REPO / "recipes").glob("*.yaml") if "experiment" not in path.read_text()
)


def torch_adam_alpha(num_steps: int, act_dim: int, alpha_init: float = 5.0) -> float:
    """alpha after `num_steps` steps of torch.optim.Adam on the released loss."""
    log_alpha = torch.tensor(math.log(alpha_init), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([log_alpha], lr=7e-3)
    target_entropy = -0.9 * act_dim
    for _ in range(num_steps):
        std = 0.1 * log_alpha.detach().exp()
        entropy = act_dim * (0.5 * math.log(2 * math.pi * math.e) + torch.log(std))
        loss = -log_alpha * (-entropy + target_entropy)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(log_alpha.exp())


def test_temperature_follows_torch_adam_on_the_released_loss():
    temperature = NoiseEntropyTemperature()
    for num_steps in (0, 1, 10, 200, 500, 800):
        expected = torch_adam_alpha(num_steps, act_dim=17)
        assert temperature(num_steps * 250) == pytest.approx(expected, rel=1e-6)
        assert temperature(num_steps * 250 + 249) == temperature(num_steps * 250)
    assert temperature.fixed_point == pytest.approx(0.984, abs=1e-3)


@pytest.fixture(scope="module")
def dpmd_humanoid():
    cfg = load_recipe(REPO / "recipes" / "dpmd_humanoid.yaml", ["run_dir=/tmp/unused"])
    return build_module(cfg, Path("/tmp/unused"))


@pytest.mark.parametrize(
    "fraction, released_alpha",
    # released trajectory (algorithms.md): ~1.5 at 300k env steps, ~1.1 at 500k, 0.98 at 1M
    [(0.3, 1.5), (0.5, 1.1), (0.9, 0.985), (1.0, 0.984)],
)
def test_dpmd_humanoid_temperature_tracks_the_released_run(dpmd_humanoid, fraction, released_alpha):
    module = dpmd_humanoid
    updates = round(fraction * module.total_updates())
    assert module.alpha(updates) == pytest.approx(released_alpha, rel=0.10)


def test_dpmd_humanoid_policy_lr_follows_the_released_schedule(dpmd_humanoid):
    module = dpmd_humanoid
    policy_delay = module.hparams.policy_delay
    lr = lambda policy_steps: module.schedules(policy_steps * policy_delay)["policy_lr"]
    assert lr(0) == pytest.approx(3e-4)
    assert lr(24_999) == pytest.approx(3e-4)
    assert lr(50_000) == pytest.approx(1.65e-4)  # halfway down the 50k linear decay
    assert lr(75_000) == pytest.approx(3e-5)
    assert module.schedules(module.total_updates())["policy_lr"] == pytest.approx(3e-5)


def test_dpmd_humanoid_weights_stay_finite_over_the_whole_run(dpmd_humanoid):
    module = dpmd_humanoid
    loss = module.loss_module
    q = torch.tensor([-1e6, 0.0, 1e6])  # normalised Q hits both ends of the clip
    every = module.hparams.alpha_update_every
    for updates in range(0, module.total_updates() + every, every):
        lam = module.schedules(updates)["lambda"]
        weights = loss.weights(None, q, lam)
        assert torch.isfinite(weights).all(), (updates, lam)


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda path: path.stem)
def test_every_schedule_is_usable_at_the_recipes_last_update(recipe):
    # an offline-to-online recipe requires its checkpoint (read when the run starts)
    start = ["init_from=unused.ckpt"] if "init_from: ???" in recipe.read_text() else []
    module = build_module(load_recipe(recipe, ["run_dir=/tmp/unused", *start]), Path("/tmp/unused"))
    last = module.schedules(module.total_updates())
    first = module.schedules(0)
    assert set(last) == set(first)
    for name, value in last.items():
        assert math.isfinite(value) and value > 0, (name, value)
    if "lambda" in last and module.algo_name == "dpmd":
        weights = module.loss_module.weights(None, torch.tensor([-1e6, 1e6]), last["lambda"])
        assert torch.isfinite(weights).all()
    if "alpha" in last:  # the temperature settles; it never falls two orders of magnitude
        assert last["alpha"] > 0.05 * first["alpha"]


def test_dpmd_refuses_a_temperature_floor_that_overflows_its_weights():
    from lit_rl.errors import ConfigError

    cfg = load_recipe(REPO / "recipes" / "dpmd_pendulum.yaml", ["algo.alpha_min=0.01"])
    with pytest.raises(ConfigError, match="alpha_min"):
        build_module(cfg, Path("/tmp/unused"))


def test_hold_then_linear():
    assert hold_then_linear(0, 10, 20, 0.1) == 1.0
    assert hold_then_linear(20, 10, 20, 0.1) == pytest.approx(0.55)
    assert hold_then_linear(10_000, 10, 20, 0.1) == pytest.approx(0.1)
    assert hold_then_linear(5, 0, 0, 0.1) == pytest.approx(0.1)
