"""Env steps, updates, warm-up and the stop on max_env_steps are exactly what the recipe says."""

from __future__ import annotations

import pytest
import torch
from conftest import train

from lit_rl.modules import ALGORITHMS, SAC


@pytest.mark.parametrize(
    ("utd", "frames_per_batch", "expected_updates"),
    [(1.0, 1, 200), (0.5, 1, 100), (2.0, 1, 400), (1.0, 10, 200)],
)
def test_counts_follow_the_recipe(small, utd, frames_per_batch, expected_updates):
    trainer, module, _ = train(
        small(
            "max_env_steps=300",
            "algo.warmup_steps=100",
            f"algo.utd_ratio={utd}",
            f"algo.frames_per_batch={frames_per_batch}",
        )
    )
    assert module.env_steps == 300
    assert module.updates == expected_updates  # (300 - 100 warm-up steps) * utd
    assert trainer.global_step == expected_updates  # one grouped optimizer: one step per update
    assert len(module.replay_buffer) == 300


class SACThreeOptimizers(SAC):
    """SAC with one optimizer per role: Lightning's global_step then counts 3 per update."""

    algo_name = "sac_three_optimizers"

    def configure_optimizers(self):
        loss = self.loss_module
        return [
            torch.optim.Adam(loss.actor.parameters(), lr=self.hparams.actor_lr),
            torch.optim.Adam(loss.critic.parameters(), lr=self.hparams.critic_lr),
            torch.optim.Adam([loss.log_alpha], lr=self.hparams.alpha_lr),
        ]


def test_counts_do_not_depend_on_the_number_of_optimizers(small, monkeypatch):
    monkeypatch.setitem(ALGORITHMS, "sac_three_optimizers", SACThreeOptimizers)
    trainer, module, _ = train(
        small("max_env_steps=300", "algo.warmup_steps=100", "algo.name=sac_three_optimizers")
    )
    assert module.env_steps == 300
    assert module.updates == 200
    assert (
        trainer.global_step == 600
    )  # the Lightning counter would have stopped a max_steps run early


def test_warmup_collects_before_the_first_update(small):
    _, module, _ = train(small("max_env_steps=150", "algo.warmup_steps=150"))
    assert module.env_steps == 150
    assert module.updates == 0
