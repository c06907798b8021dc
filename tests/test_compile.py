"""`algo.compile: true` (SAC): the compiled update and acting compute what eager ones do.

Inductor draws random numbers its own way; `fallback_random` makes it draw eager's, so
the same seed gives the same noise and the comparison is exact up to float reordering.
"""

from __future__ import annotations

import pytest
import torch
from conftest import PENDULUM
from tensordict import TensorDict
from torch._dynamo.eval_frame import OptimizedModule
from torch._dynamo.utils import counters
from torchrl.envs.utils import ExplorationType, set_exploration_type

from lit_rl.config import load_recipe
from lit_rl.run import build_module


def sac(tmp_path, *overrides):
    torch.manual_seed(0)
    return build_module(load_recipe(PENDULUM, list(overrides)), tmp_path)


def random_batch(obs_dim: int, act_dim: int, n: int = 64) -> TensorDict:
    generator = torch.Generator().manual_seed(3)
    return TensorDict(
        {
            "observation": torch.randn(n, obs_dim, generator=generator),
            "action": torch.rand(n, act_dim, generator=generator) * 2 - 1,
            "next": {
                "observation": torch.randn(n, obs_dim, generator=generator),
                "reward": torch.randn(n, 1, generator=generator),
                "terminated": torch.rand(n, 1, generator=generator) < 0.1,
                "done": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


@pytest.fixture
def inductor_draws_eager_random_numbers():
    """`fallback_random` for one test, through the config's own `patch` (monkeypatch's
    undo deletes the option from inductor's config module, breaking later compiles)."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):
        yield


@pytest.mark.usefixtures("inductor_draws_eager_random_numbers")
def test_compiled_update_and_acting_agree_with_eager(tmp_path):
    eager = sac(tmp_path / "eager")
    compiled = sac(tmp_path / "compiled", "algo.compile=true")
    compiled.load_state_dict(eager.state_dict())
    batch = random_batch(eager.hparams.obs_dim, eager.hparams.act_dim)
    grads = {}
    for name, module in (("eager", eager), ("compiled", compiled)):
        torch.manual_seed(11)
        losses = module.compute_losses(batch.clone())
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        total.backward()
        trained = [p for p in module.loss_module.parameters() if p.requires_grad]
        grads[name] = (losses, [p.grad.clone() for p in trained])
    (eager_losses, eager_grads), (compiled_losses, compiled_grads) = grads.values()
    for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
        torch.testing.assert_close(compiled_losses[key], eager_losses[key], rtol=1e-5, atol=1e-5)
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the compiled path really ran (an eager fallback would pass the comparison too)
    assert isinstance(compiled.__dict__.get("_compiled_loss"), OptimizedModule)
    assert counters["stats"]["unique_graphs"] > 0
    # the compiled wrapper is not part of the checkpoint
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    observation = TensorDict({"observation": batch["observation"][0]}, [])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        policies = [m.make_policy() for m in (eager, compiled)]
        acts = [policy(observation.clone())["action"] for policy in policies]
    assert isinstance(policies[1].acting, OptimizedModule)
    assert compiled.make_policy().acting is policies[1].acting  # compiled once per module
    torch.testing.assert_close(acts[1], acts[0], rtol=1e-5, atol=1e-6)


def test_compile_is_a_key_of_the_algorithms_that_have_it(tmp_path):
    """Algorithms without a compiled path (behaviour cloning, consistency policies, ...)
    have no `compile` key: the recipe error names it."""
    from conftest import REPO, run_cli

    recipe = str(REPO / "recipes" / "bc_pendulum.yaml")
    result = run_cli("run", recipe, "algo.compile=true", f"run_dir={tmp_path}")
    assert result.returncode == 2 and "unknown key 'algo.compile'" in result.stderr


def dpmd(tmp_path, *overrides):
    """DPMD on Pendulum with networks small enough to compile in seconds."""
    from conftest import REPO

    torch.manual_seed(0)
    small = ("algo.policy_hidden=[16,16]", "algo.critic_hidden=[16,16]", *overrides)
    return build_module(load_recipe(REPO / "recipes" / "dpmd_pendulum.yaml", list(small)), tmp_path)


def test_compiled_diffusion_acting_agrees_with_eager(tmp_path):
    """`algo.compile: true` (DPMD/SDAC): the acting rule (collecting, evaluating, and in
    updates) runs as one compiled graph that draws its random numbers outside, in eager's
    order, so a seed gives eager's actions and losses and leaves the generator where eager
    leaves it; a new noise level (the temperature moves it) reuses the graph."""
    eager = dpmd(tmp_path / "eager")
    compiled = dpmd(tmp_path / "compiled", "algo.compile=true")
    compiled.load_state_dict(eager.state_dict())
    observation = TensorDict({"observation": torch.randn(3, eager.hparams.obs_dim)}, [3])
    graphs_before = counters["stats"]["unique_graphs"]
    for exploration in (ExplorationType.RANDOM, ExplorationType.DETERMINISTIC):
        results = []
        for module in (eager, compiled):
            torch.manual_seed(7)
            with set_exploration_type(exploration):
                action = module.make_policy()(observation.clone())["action"]
            results.append((action, torch.randn(4)))  # where the generator was left
        (eager_action, eager_next), (compiled_action, compiled_next) = results
        torch.testing.assert_close(compiled_action, eager_action, rtol=1e-5, atol=1e-6)
        assert torch.equal(compiled_next, eager_next)
        assert (eager_action.abs() <= 1).all()
    # the compiled path really ran: one graph per rule (exploring, deterministic)
    assert counters["stats"]["unique_graphs"] == graphs_before + 2
    loss = compiled.loss_module
    for noise_std in (0.3, 0.7):  # another temperature: the same exploring graph
        loss.act(observation["observation"], noise_std, loss.ema_policy)
    assert counters["stats"]["unique_graphs"] == graphs_before + 2
    # an update samples its critic target and policy actions through the compiled rule
    batch = random_batch(eager.hparams.obs_dim, eager.hparams.act_dim, n=16)
    losses = []
    for module in (eager, compiled):
        torch.manual_seed(11)
        losses.append(module.loss_module(batch.clone(), lam=1.0, noise_std=0.2))
    for key in ("loss_qvalue", "loss_policy"):
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-5, atol=1e-6)
    assert counters["stats"]["unique_graphs"] == graphs_before + 3  # 32 states (2 x 16)
    assert compiled.state_dict().keys() == eager.state_dict().keys()


def regression_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    def step(batch):
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def test_warmup_steps_are_undone_before_a_graph_is_captured():
    """`GraphedStep` trains a few eager warm-up steps before capture; `undone_afterwards`
    puts the weights, Adam's state and the RNG back, so the first replayed update equals
    a fresh model's first update (on the CPU here: the same code runs before a capture)."""
    from lit_rl.nets.cuda_graphs import undone_afterwards

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(model.state_dict())
    batch = TensorDict({"x": torch.randn(8, 3), "y": torch.randn(8, 2)}, [8])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    rng_before = torch.get_rng_state()
    with undone_afterwards(list(model.parameters()), optimizer):
        for _ in range(3):
            optimizer.zero_grad()
            regression_step(model, optimizer)(batch)
            torch.randn(5)  # the warm-up draws random numbers too
    assert torch.equal(torch.get_rng_state(), rng_before)
    for mine, theirs in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    for module, adam in ((model, optimizer), (fresh, fresh_optimizer)):
        adam.zero_grad(set_to_none=True)  # as GraphedStep does before its capture
        regression_step(module, adam)(batch)
    for mine, theirs in zip(model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    state = optimizer.state[next(model.parameters())]
    assert float(state["step"]) == 1.0  # the warm-up's three steps are not counted
