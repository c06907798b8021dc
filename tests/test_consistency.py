"""Consistency policies: the parametrisation, consistency training on a bimodal dataset,
the actor-critic loss's gradient routing, and the modules on the engine."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import REPO, run_cli, train
from tensordict import TensorDict

from lit_rl.modules.consistency import ConsistencyActing
from lit_rl.nets.behavior import MixtureBehavior
from lit_rl.nets.conditional import ConditionalMLP, softmax_choice
from lit_rl.nets.consistency import (
    ConsistencyPolicy,
    curriculum_points,
    karras_boundaries,
    lognormal_pair_weights,
)
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.objectives.consistency import ConsistencyACLoss, ConsistencyBCLoss

SMALL_NETS = [
    "algo.policy_hidden=[32,32]",
    "algo.batch_size=32",
    "algo.log_every_updates=10",
    "progress_bar=false",
    "logger=[csv]",
    "eval.episodes=1",
    "env.max_episode_steps=50",
]


def policy(obs_dim=3, act_dim=2, hidden=(32, 32), steps=2) -> ConsistencyPolicy:
    return ConsistencyPolicy(ConditionalMLP(obs_dim, act_dim, hidden, "mish"), steps)


def test_the_boundary_condition_holds_exactly():
    torch.manual_seed(0)
    model = policy()
    obs, x = torch.randn(64, 3), torch.randn(64, 2) * 5
    out = model(obs, x, torch.full((64,), model.eps))
    assert torch.equal(out, x)
    # and it is not the identity elsewhere
    assert not torch.allclose(model(obs, x, torch.full((64,), 1.0)), x)


@pytest.mark.parametrize("tau", [0.002, 0.01, 0.5, 1.0, 7.3, 80.0])
def test_skip_and_output_coefficients_follow_the_stated_formulas(tau):
    model = policy()
    sigma_data, eps = 0.5, 0.002
    expected_skip = sigma_data**2 / ((tau - eps) ** 2 + sigma_data**2)
    expected_out = sigma_data * (tau - eps) / math.sqrt(sigma_data**2 + tau**2)
    assert model.c_skip(tau) == pytest.approx(expected_skip, rel=1e-12)
    assert model.c_out(tau) == pytest.approx(expected_out, rel=1e-12, abs=1e-15)
    as_tensor = torch.tensor([tau], dtype=torch.float64)
    assert model.c_skip(as_tensor).item() == pytest.approx(expected_skip, rel=1e-12)
    assert model.c_out(as_tensor).item() == pytest.approx(expected_out, rel=1e-12, abs=1e-15)


def test_karras_boundaries_and_the_curriculum():
    bounds = karras_boundaries(5)
    assert bounds[0].item() == pytest.approx(0.002) and bounds[-1].item() == pytest.approx(80.0)
    root = (0.002 ** (1 / 7) + 0.5 * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    assert bounds[2].item() == pytest.approx(root)
    assert (bounds.diff() > 0).all()
    counts = [curriculum_points(k, 10_000) for k in range(0, 10_001, 500)]
    assert counts[0] == 2 and counts[-1] == 151  # 1 interval -> 150 intervals
    assert counts == sorted(counts)
    assert curriculum_points(2500, 10_000) == math.ceil(math.sqrt(0.25 * (151**2 - 4) + 4) - 1) + 1


def test_lognormal_pair_weights_are_the_mass_between_boundaries():
    bounds = karras_boundaries(40)
    weights = lognormal_pair_weights(bounds)
    normal = torch.distributions.Normal(-1.1, 2.0)
    mass = normal.cdf(torch.log(bounds[1:])) - normal.cdf(torch.log(bounds[:-1]))
    assert torch.allclose(weights / 2, mass, atol=1e-9)  # erf difference = 2 * cdf difference


def test_sampling_is_clipped_shaped_and_differentiable():
    torch.manual_seed(0)
    model = policy(steps=3)
    assert len(model.sampling_levels()) == 3 and model.sampling_levels()[0] == pytest.approx(80)
    obs = torch.randn(4, 3)
    actions = model.sample(obs, num_samples=7)
    assert actions.shape == (4, 7, 2) and actions.abs().max() <= 1
    actions.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # one step from the same noise gives the same action as the forward at sigma_max
    torch.manual_seed(1)
    one = model.sample(obs, 1, steps=1)[:, 0]
    torch.manual_seed(1)
    noise = 80.0 * torch.randn(4, 2)
    assert torch.allclose(one, model(obs, noise, torch.full((4,), 80.0)).clamp(-1, 1), atol=1e-5)


def test_softmax_choice_draws_by_the_scores():
    candidates = torch.tensor([[[0.0], [1.0]]]).expand(4000, 2, 1)
    scores = torch.tensor([[0.0, math.log(3.0)]]).expand(4000, 2)
    picked = softmax_choice(candidates, scores, torch.Generator().manual_seed(0))
    assert picked.mean().item() == pytest.approx(0.75, abs=0.03)


def bimodal_actions(batch: int) -> torch.Tensor:
    sign = torch.where(torch.rand(batch, 1) < 0.5, -1.0, 1.0)
    return (0.7 * sign + 0.05 * torch.randn(batch, 1)).clamp(-1, 1)


def test_consistency_bc_reproduces_both_modes_where_gaussian_bc_fills_the_valley():
    """A 1-D behaviour with modes at +-0.7: Consistency-BC keeps both (>= 30% each, < 10%
    between), a tanh-Gaussian BC fit puts its mode and much of its mass in between."""
    torch.manual_seed(0)
    updates = 3000
    loss = ConsistencyBCLoss(policy(1, 1, (64, 64)))
    optimizer = torch.optim.Adam(loss.policy.parameters(), lr=1e-3)
    behavior = MixtureBehavior(1, 1, (64, 64), 1)
    bc_optimizer = torch.optim.Adam(behavior.parameters(), lr=1e-3)
    obs = torch.zeros(256, 1)
    for k in range(updates):
        batch = TensorDict(observation=obs, action=bimodal_actions(256), batch_size=[256])
        terms = loss(batch, num_points=curriculum_points(k, updates))
        optimizer.zero_grad()
        terms["loss_consistency"].backward()
        optimizer.step()
        loss.update_ema(0.005)
        nll = behavior.nll(batch["observation"], batch["action"])
        bc_optimizer.zero_grad()
        nll.backward()
        bc_optimizer.step()
    samples = loss.act(torch.zeros(4000, 1)).flatten()
    fractions = {
        "low": (samples < -0.35).float().mean().item(),
        "high": (samples > 0.35).float().mean().item(),
        "valley": (samples.abs() <= 0.35).float().mean().item(),
    }
    print("consistency", fractions)
    assert fractions["low"] >= 0.3 and fractions["high"] >= 0.3 and fractions["valley"] < 0.1
    with torch.no_grad():
        gaussian = torch.cat([behavior.sample(torch.zeros(1000, 1)) for _ in range(4)]).flatten()
        mode = behavior.mode(torch.zeros(1, 1)).item()
    gaussian_valley = (gaussian.abs() <= 0.35).float().mean().item()
    print("gaussian mode", mode, "valley", gaussian_valley)
    assert abs(mode) < 0.35 and gaussian_valley > 3 * fractions["valley"]


def test_actor_critic_terms_reach_only_their_own_networks():
    torch.manual_seed(0)
    critic = EnsembleQCritic(3, 2, (16, 16), 2)
    loss = ConsistencyACLoss(policy(hidden=(16, 16)), critic, eta=1.0, num_candidates=5)
    batch = TensorDict(
        {
            "observation": torch.randn(8, 3),
            "action": torch.rand(8, 2) * 2 - 1,
            ("next", "observation"): torch.randn(8, 3),
            ("next", "reward"): torch.randn(8, 1),
            ("next", "terminated"): torch.zeros(8, 1, dtype=torch.bool),
            ("next", "done"): torch.zeros(8, 1, dtype=torch.bool),
        },
        batch_size=[8],
    )
    out = loss(batch, num_points=10)
    assert {"loss_qvalue", "loss_consistency", "loss_actor_q"} <= set(out.keys())
    for name, owner, other in (
        ("loss_qvalue", loss.critic, loss.policy),
        ("loss_consistency", loss.policy, loss.critic),
        ("loss_actor_q", loss.policy, loss.critic),
    ):
        loss.zero_grad(set_to_none=True)
        out = loss(batch, num_points=10)
        out[name].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in owner.parameters())
        assert all(p.grad is None for p in other.parameters()), name
    # the online setting drops the consistency term entirely
    online = ConsistencyACLoss(loss.policy, critic, consistency_weight=0.0)
    assert "loss_consistency" not in online(batch, num_points=10)
    assert loss.act(torch.randn(6, 3)).shape == (6, 2)


def test_the_sarsa_critic_target_takes_the_datasets_next_action():
    torch.manual_seed(0)
    critic = EnsembleQCritic(3, 2, (16, 16), 2)
    loss = ConsistencyACLoss(policy(hidden=(16, 16)), critic, gamma=0.9, critic_target="dataset")
    next_action = torch.rand(6, 2) * 2 - 1
    batch = TensorDict(
        {
            "observation": torch.randn(6, 3),
            "action": torch.rand(6, 2) * 2 - 1,
            ("next", "observation"): torch.randn(6, 3),
            ("next", "action"): next_action,
            ("next", "has_action"): torch.tensor([True] * 5 + [False]).unsqueeze(-1),
            ("next", "reward"): torch.randn(6, 1),
            ("next", "terminated"): torch.zeros(6, 1, dtype=torch.bool),
            ("next", "done"): torch.zeros(6, 1, dtype=torch.bool),
        },
        batch_size=[6],
    )
    with torch.no_grad():
        next_q = critic(batch["next", "observation"], next_action).min(0).values
        target = batch["next", "reward"].view(-1) + 0.9 * next_q
        q = critic(batch["observation"], batch["action"])
        per_row = 0.5 * (q - target).pow(2).sum(0)
    expected = per_row[:5].mean()  # the row without a next action drops out
    assert loss.critic_loss(batch)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_consistency_recipes_run_offline_online_and_offline_to_online(small_dataset, tmp_path):
    recipes = REPO / "recipes"
    offline = [*SMALL_NETS, f"dataset={small_dataset}", "max_updates=20", "eval.every_updates=20"]
    _, bc, _ = train(
        [*offline, f"run_dir={tmp_path / 'bc'}"], str(recipes / "consistency_bc_pendulum.yaml")
    )
    assert bc.updates == 20 and bc.env_steps == 0
    assert bc.schedules(bc.total_updates())["consistency_points"] == 151
    ac_args = [*offline, "algo.critic_hidden=[32,32]", "checkpoint.every_updates=20"]
    _, ac, run_dir = train(
        [*ac_args, f"run_dir={tmp_path / 'ac'}"],
        str(recipes / "consistency_ac_offline_pendulum.yaml"),
    )
    assert ac.loss_module.consistency_weight == 1.0
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_consistency", "loss_actor_q", "loss_qvalue", "eval/normalized_score"} <= set(
        header
    )
    # evaluation also runs the policy alone: one EMA sample, no choice among candidates by Q
    assert "eval/one_sample_return_mean" in header and set(ac.eval_policies()) == {"", "one_sample"}
    one_sample = ConsistencyActing(ac.loss_module, noise=0.0, one_sample=True)
    obs = torch.randn(5, 3)
    torch.manual_seed(3)
    alone = ac.loss_module.ema_policy.sample(obs, 1)[:, 0]
    torch.manual_seed(3)
    torch.testing.assert_close(one_sample(obs), alone, rtol=1e-5, atol=1e-6)
    online_small = [*SMALL_NETS, "algo.critic_hidden=[32,32]", "algo.num_candidates=4"]
    _, online, _ = train(
        [*online_small, "max_env_steps=150", "algo.warmup_steps=100",
         "eval.every_env_steps=150", f"run_dir={tmp_path / 'online'}"],
        str(recipes / "consistency_ac_pendulum.yaml"),
    )  # fmt: skip
    assert online.env_steps == 150 and online.loss_module.consistency_weight == 0.0
    checkpoint = tmp_path / "ac" / "step=20.ckpt"
    _, o2o, _ = train(
        [*online_small, "max_env_steps=50", "eval.every_env_steps=50",
         f"init_from={checkpoint}", f"run_dir={tmp_path / 'o2o'}"],
        str(recipes / "consistency_ac_online_pendulum.yaml"),
    )  # fmt: skip
    assert o2o.env_steps == 50 and len(o2o.replay_buffer) == 300 + 50
    assert o2o.loss_module.consistency_weight == 1.0  # the buffer starts with the dataset
    # Consistency-BC has nothing to learn from online
    online_bc = tmp_path / "online_bc.yaml"
    online_bc.write_text(
        "max_env_steps: 100\nenv: {id: Pendulum-v1}\nalgo: {name: consistency_bc}\n"
    )
    result = run_cli(
        "run", str(online_bc),
        f"run_dir={tmp_path / 'nothing'}",
    )  # fmt: skip
    assert result.returncode == 2 and "learns from a dataset" in result.stderr, result.stderr
    result = run_cli(
        "run", str(recipes / "consistency_bc_pendulum.yaml"), "algo.consistency_training=fast",
        f"run_dir={tmp_path / 'typo'}",
    )  # fmt: skip
    assert result.returncode == 2 and "choose one of improved, original" in result.stderr


def test_cosine_learning_rate_decay_and_per_network_gradient_clipping(small_dataset, tmp_path):
    recipe = str(REPO / "recipes" / "consistency_ac_offline_pendulum.yaml")
    trainer, ac, _ = train(
        [*SMALL_NETS, f"dataset={small_dataset}", "max_updates=20", "eval.every_updates=20",
         "algo.critic_hidden=[32,32]", "algo.lr_decay=true", "algo.grad_norm=0.5",
         f"run_dir={tmp_path / 'decay'}"],
        recipe,
    )  # fmt: skip
    base = {"policy_lr": 3e-4, "critic_lr": 1e-3}
    for updates, factor in [(0, 1.0), (5, 0.5 + 0.5 * math.cos(math.pi / 4)), (10, 0.5)]:
        now = ac.schedules(updates)
        for name, lr in base.items():
            assert now[name] == pytest.approx(lr * factor)
    # the optimizer followed the cosine through the run: its lr is that of update 20
    last = 0.5 * (1 + math.cos(math.pi * 19 / 20))
    rates = [group["lr"] for group in trainer.optimizers[0].param_groups]
    assert rates == pytest.approx([base["policy_lr"] * last, base["critic_lr"] * last])
    # each network's gradient is clipped on its own
    for param in ac.parameters():
        param.grad = torch.full_like(param, 3.0)
    ac.before_optimizer_step()
    for group in ac.param_groups():
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in group["params"]]))
        assert norm.item() == pytest.approx(0.5, rel=1e-4), group["name"]
    # without lr_decay the rates are the recipe's for the whole run
    _, constant, _ = train(
        [*SMALL_NETS, f"dataset={small_dataset}", "max_updates=2", "eval.every_updates=2",
         "algo.critic_hidden=[32,32]", "algo.lr_decay=false", f"run_dir={tmp_path / 'constant'}"],
        recipe,
    )  # fmt: skip
    assert constant.schedules(constant.total_updates())["critic_lr"] == base["critic_lr"]


def test_offline_loop_fits_its_model_once_and_plans_around_its_prior(small_dataset, tmp_path):
    from lit_rl.planning.planners import ARCPlanner

    recipe = str(REPO / "recipes" / "loop_offline_pendulum.yaml")
    args = [
        *SMALL_NETS[1:], "algo.behavior_hidden=[32,32]", "algo.critic_hidden=[32,32]",
        "algo.model_hidden=[32,32]", "algo.model_max_epochs=2", "algo.num_samples=10",
        f"dataset={small_dataset}", "max_updates=20", "eval.every_updates=20",
        "checkpoint.every_updates=10",
    ]  # fmt: skip
    _, module, run_dir = train([*args, f"run_dir={tmp_path / 'a'}"], recipe)
    assert bool(module.model_fitted)
    rows = (run_dir / "metrics.csv").read_text()
    header = rows.splitlines()[0].split(",")
    assert {"eval/return_mean", "eval/prior_return_mean", "model/holdout_mse"} <= set(header)
    planner = module.make_planner()
    assert isinstance(planner, ARCPlanner) and planner.iterations == 1 and planner.horizon == 5
    assert planner.pessimism == 1.0 and planner.kappa == 0.3
    assert planner.init_var == pytest.approx(0.01**2) and planner.mean_from_prior
    # with no sampling noise every candidate is the prior's plan: the planner acts as it
    planner.init_var = 0.0
    obs = torch.randn(3)
    planned = planner(obs)
    assert torch.allclose(planned, module.prior_action(obs.unsqueeze(0))[0], atol=1e-5)
    # a resumed run keeps its fitted model: no second fit
    fits = []
    original = type(module).fit_model
    type(module).fit_model = lambda self: fits.append(1) or original(self)
    try:
        _, resumed, _ = train(
            [*args, "max_updates=30", f"run_dir={tmp_path / 'a'}"], recipe,
            resume=str(tmp_path / "a" / "last.ckpt"),
        )  # fmt: skip
    finally:
        type(module).fit_model = original
    assert fits == [] and resumed.updates == 30
    # without sampling noise the planner acts as its prior; evaluation starts both from
    # the same initial states, so their returns agree
    _, _, quiet_dir = train(
        [*args, "algo.plan_noise=0.0", "eval.episodes=2", f"run_dir={tmp_path / 'quiet'}"],
        recipe,
    )
    with (quiet_dir / "metrics.csv").open() as file:
        evals = [row for row in csv.DictReader(file) if row.get("eval/return_mean")]
    planned, prior = (float(evals[-1][f"eval/{k}return_mean"]) for k in ("", "prior_"))
    assert planned == pytest.approx(prior, rel=1e-3)
