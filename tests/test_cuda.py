"""GPU behaviour: CUDA-graph acting, training on a GPU, mixed precision there.

These need a CUDA device and are skipped without one (CI has none); they were run on the
GPU machine lent to development sessions (see CHANGELOG / docs/diffusion.md).
"""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, small_overrides, train
from test_diffusion_modules import TINY

from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.cuda_graphs import GraphedCall, GraphedStep
from lit_rl.nets.diffusion import DiffusionPolicy, DiffusionSchedule, EpsilonNetwork
from lit_rl.objectives.rsm import DPMDLoss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def small_dpmd_loss(cuda_graphs: bool) -> DPMDLoss:
    torch.manual_seed(0)
    policy = DiffusionPolicy(EpsilonNetwork(6, 2, (32, 32)), DiffusionSchedule.make("linear", 5))
    critic = EnsembleQCritic(6, 2, (32, 32), 2, "mish")
    return DPMDLoss(policy, critic, num_particles=8, cuda_graphs=cuda_graphs).cuda()


def seeded(fn, seed: int = 123) -> torch.Tensor:
    torch.cuda.manual_seed(seed)
    return fn()


def test_graphed_call_replays_fresh_randomness_and_reads_updated_weights():
    layer = torch.nn.Linear(4, 4).cuda()
    graphed = GraphedCall(lambda x: layer(x) + torch.randn_like(x))
    x = torch.randn(3, 4, device="cuda")
    first, second = graphed(x), graphed(x)
    assert not torch.equal(first, second)  # new noise on each replay
    assert len(graphed) == 1
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(100.0)  # in place, as optimizers and Polyak updates do
    assert (graphed(x) > 90).all()
    graphed(torch.randn(5, 4, device="cuda"))
    assert len(graphed) == 2  # one graph per input shape


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_graphed_acting_rule_equals_eager_for_the_same_random_stream(noise_std):
    loss = small_dpmd_loss(cuda_graphs=True)
    obs = torch.randn(5, 6, device="cuda")
    loss.act(obs, noise_std)  # capture
    graphed = seeded(lambda: loss.act(obs, noise_std))
    eager = seeded(lambda: loss._act(obs, noise_std, loss.policy, noise_std > 0))
    assert graphed.shape == (5, 2) and (graphed.abs() <= 1).all()
    torch.testing.assert_close(graphed, eager)
    with torch.no_grad():  # the graph follows in-place weight updates
        for param in loss.policy.parameters():
            param.mul_(0.5)
    graphed = seeded(lambda: loss.act(obs, noise_std))
    eager = seeded(lambda: loss._act(obs, noise_std, loss.policy, noise_std > 0))
    torch.testing.assert_close(graphed, eager)


@pytest.mark.parametrize("actor_critic", [False, True])
def test_graphed_consistency_acting_equals_eager_for_the_same_random_stream(actor_critic):
    from lit_rl.modules.consistency import ConsistencyActing
    from lit_rl.nets.conditional import ConditionalMLP
    from lit_rl.nets.consistency import ConsistencyPolicy
    from lit_rl.objectives.consistency import ConsistencyACLoss, ConsistencyBCLoss

    torch.manual_seed(0)
    policy = ConsistencyPolicy(ConditionalMLP(6, 2, (32, 32), "mish"), 2)
    if actor_critic:
        critic = EnsembleQCritic(6, 2, (32, 32), 2, "mish")
        loss = ConsistencyACLoss(policy, critic, num_candidates=8).cuda()
    else:
        loss = ConsistencyBCLoss(policy).cuda()
    acting = ConsistencyActing(loss, noise=0.0)
    obs = torch.randn(5, 6, device="cuda")
    acting(obs)  # capture
    assert len(loss.graphed_act) == 1
    graphed, eager = seeded(lambda: acting(obs)), seeded(lambda: loss.act(obs))
    assert graphed.shape == (5, 2) and (graphed.abs() <= 1).all()
    torch.testing.assert_close(graphed, eager)
    with torch.no_grad():  # the graph follows in-place (EMA) weight updates
        for param in loss.ema_policy.parameters():
            param.mul_(0.5)
    torch.testing.assert_close(seeded(lambda: acting(obs)), seeded(lambda: loss.act(obs)))
    assert not torch.equal(acting(obs), acting(obs))  # fresh noise on each replay
    ConsistencyActing(loss, noise=0.0, cuda_graphs=False)(torch.randn(3, 6, device="cuda"))
    assert len(loss.graphed_act) == 1  # disabled: no graph for the new batch size


def test_graphs_are_not_used_under_autocast_or_when_disabled():
    obs = torch.randn(5, 6, device="cuda")
    loss = small_dpmd_loss(cuda_graphs=False)
    loss.act(obs)
    assert not loss._graphed_acting
    loss = small_dpmd_loss(cuda_graphs=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss.act(obs)
    assert not loss._graphed_acting


@pytest.mark.parametrize("algo", ["dpmd", "sdac"])
def test_diffusion_algorithms_train_on_gpu_with_graphed_acting(tmp_path, algo):
    recipe = str(REPO / "recipes" / f"{algo}_pendulum.yaml")
    overrides = [*TINY, f"run_dir={tmp_path}", "trainer.accelerator=gpu"]
    trainer, module, _ = train(overrides, recipe=recipe)
    assert (module.env_steps, module.updates) == (160, 60)
    assert trainer.strategy.root_device.type == "cuda"  # (Lightning moves it back at the end)
    assert module.loss_module._graphed_acting  # collection and updates replayed graphs
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_gpu_run_resumes_from_its_checkpoint(tmp_path):
    recipe = str(REPO / "recipes" / "dpmd_pendulum.yaml")
    overrides = [*TINY, f"run_dir={tmp_path}", "trainer.accelerator=gpu"]
    _, _, run_dir = train(overrides, recipe=recipe)
    _, resumed, _ = train(
        [*overrides, "max_env_steps=200"], recipe=recipe, resume=str(run_dir / "last.ckpt")
    )
    assert (resumed.env_steps, resumed.updates) == (200, 100)
    assert str(resumed.replay_buffer.storage.device).startswith("cuda")


def test_sac_trains_on_gpu_in_bf16_mixed_precision(tmp_path):
    overrides = small_overrides(
        tmp_path, "max_env_steps=300", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed"
    )
    trainer, module, _ = train(overrides)
    assert trainer.precision == "bf16-mixed" and trainer.strategy.root_device.type == "cuda"
    assert module.updates == 200
    assert all(torch.isfinite(p).all() for p in module.parameters())


OFFLINE_GPU = [
    "progress_bar=false",
    "logger=[csv]",
    "eval.episodes=1",
    "env.max_episode_steps=50",
    "max_updates=40",
    "eval.every_updates=20",
    "checkpoint.every_updates=20",
    "trainer.accelerator=gpu",
]


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        ("bc_pendulum", []),
        ("cfpi_pendulum", []),
        ("consistency_bc_pendulum", []),
        ("consistency_ac_offline_pendulum", []),
        ("loop_offline_pendulum", ["algo.model_max_epochs=2", "algo.num_samples=10"]),
    ],
)
def test_offline_algorithms_train_on_gpu_from_a_dataset_on_the_gpu(
    small_dataset, tmp_path, recipe, extra
):
    path = str(REPO / "recipes" / f"{recipe}.yaml")
    args = [*OFFLINE_GPU, *extra, f"dataset={small_dataset}"]
    trainer, module, run_dir = train([*args, f"run_dir={tmp_path}"], recipe=path)
    assert trainer.strategy.root_device.type == "cuda"
    assert module.updates == 40 and module.env_steps == 0
    assert str(module.replay_buffer.storage.device).startswith("cuda")
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert "eval/normalized_score" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    _, resumed, _ = train(
        [*args, "max_updates=60", f"run_dir={tmp_path}"],
        recipe=path,
        resume=str(run_dir / "last.ckpt"),
    )
    assert resumed.updates == 60


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        ("cvpo_pointgoal", []),
        ("sac_lag_pointgoal", []),
        (
            "safe_loop_pointgoal",
            ["algo.num_samples=16", "algo.model_hidden=[32,32]", "algo.model_max_epochs=2"],
        ),
        ("loop_pendulum", ["algo.num_samples=16", "algo.model_hidden=[32,32]"]),
        ("consistency_ac_pendulum", ["algo.num_candidates=4"]),
    ],
)
def test_online_algorithms_train_on_gpu(tmp_path, recipe, extra):
    path = str(REPO / "recipes" / f"{recipe}.yaml")
    overrides = small_overrides(
        tmp_path,
        *extra,
        "max_env_steps=300",
        "eval.every_env_steps=300",
        "checkpoint.every_env_steps=300",
        "algo.model_train_every=100" if "loop" in recipe else "algo.batch_size=32",
        "trainer.accelerator=gpu",
    )
    if recipe.startswith("consistency"):
        overrides = [o for o in overrides if not o.startswith("algo.actor_hidden")]
    trainer, module, run_dir = train(overrides, recipe=path)
    assert trainer.strategy.root_device.type == "cuda"
    assert module.env_steps == 300 and module.updates > 0
    assert all(torch.isfinite(p).all() for p in module.parameters())
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    if "pointgoal" in recipe:
        assert str(module.replay_buffer.storage.device).startswith("cuda")
        assert "eval/cost_mean" in header


def test_load_policy_acts_on_the_gpu_like_on_the_cpu(tmp_path):
    import numpy as np

    from lit_rl.api import load_policy, train

    result = train(
        str(REPO / "recipes" / "sac_pendulum.yaml"), small_overrides(tmp_path, "max_env_steps=150")
    )
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    on_gpu = load_policy(result.checkpoint, device="cuda")
    assert next(on_gpu.module.parameters()).is_cuda
    np.testing.assert_allclose(on_gpu(obs), load_policy(result.checkpoint)(obs), atol=1e-5)


def test_compiled_sac_trains_on_gpu_and_agrees_with_eager(tmp_path, monkeypatch):
    """`algo.compile: true` on a GPU (CUDA graphs): a short run trains and resumes, and one
    compiled update equals the eager one for the same random stream."""
    import torch._inductor.config as inductor_config
    from test_compile import random_batch, sac

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    eager = sac(tmp_path / "eager", "trainer.accelerator=gpu").cuda()
    compiled = sac(tmp_path / "compiled", "trainer.accelerator=gpu", "algo.compile=true").cuda()
    compiled.load_state_dict(eager.state_dict())
    batch = random_batch(eager.hparams.obs_dim, eager.hparams.act_dim).cuda()
    results = []
    for module in (eager, compiled):
        torch.manual_seed(11)
        results.append(module.compute_losses(batch.clone()))
    for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
        torch.testing.assert_close(results[1][key], results[0][key], rtol=1e-4, atol=1e-4)
    trainer, module, _ = train(
        small_overrides(tmp_path / "run", "trainer.accelerator=gpu", "algo.compile=true")
    )
    # Lightning moved the module to the CPU at the end of fit, reading every parameter's
    # gradient: a stale CUDA-graph output there raises (it did in a CLI run on an H200)
    assert module.updates > 0 and trainer.strategy.root_device.type == "cuda"
    assert all(p.grad is None for p in module.parameters())
    # on one GPU in full precision the whole update replays from one graph, and
    # Lightning still counts one optimizer step per update
    assert module.__dict__["_graphed_update"].captured
    assert trainer.global_step == module.updates
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_graphed_step_trains_like_eager_steps():
    """Four updates replayed from one CUDA graph (fused, capturable Adam) move the weights
    exactly as four eager updates on the same batches: the warm-up before capture is
    undone and every replay reads the new batch."""
    from tensordict import TensorDict
    from test_compile import regression_step

    torch.manual_seed(0)

    def mlp() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    models = [mlp(), mlp()]
    models[1].load_state_dict(models[0].state_dict())
    models = [m.cuda() for m in models]
    optimizers = [
        torch.optim.Adam(m.parameters(), lr=0.01, fused=True, capturable=c)
        for m, c in zip(models, (False, True), strict=True)
    ]
    trained = list(models[1].parameters())
    graphed = GraphedStep(regression_step(models[1], optimizers[1]), trained, optimizers[1])
    batches = [
        TensorDict({"x": torch.randn(8, 3), "y": torch.randn(8, 2)}, [8]).cuda() for _ in range(4)
    ]
    eager_step = regression_step(models[0], optimizers[0])
    for batch in batches:
        optimizers[0].zero_grad(set_to_none=True)
        eager_loss = eager_step(batch)
        graphed_loss = graphed(batch)
        torch.testing.assert_close(graphed_loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert graphed.captured
    for eager, replayed in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(replayed, eager, rtol=1e-5, atol=1e-6)
