"""The diffusion policy: schedules, exact sampling math, batching, best-of-N, expressiveness."""

from __future__ import annotations

import pytest
import torch

from lit_rl.nets.conditional import ConditionedNetwork, best_of_n
from lit_rl.nets.diffusion import (
    SCHEDULES,
    DiffusionPolicy,
    DiffusionSchedule,
    EpsilonNetwork,
    cosine_beta_schedule,
    linear_beta_schedule,
)
from lit_rl.nets.mlp import Mish


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules_decay_to_noise(name):
    sched = DiffusionSchedule.make(name, 20)
    assert sched.alpha_bars.shape == (20,)
    assert (sched.alpha_bars[1:] < sched.alpha_bars[:-1]).all()
    assert sched.alpha_bars[0] > 0.95 and sched.alpha_bars[-1] < 0.05
    torch.testing.assert_close(
        sched.sqrt_alpha_bars**2 + sched.sqrt_one_minus_alpha_bars**2, torch.ones(20)
    )


def test_released_linear_schedule_values():
    betas = linear_beta_schedule(20)
    assert betas[0].item() == pytest.approx(0.8 * 1e-4)
    assert betas[-1].item() == pytest.approx(0.8 * 0.999)
    assert (cosine_beta_schedule(20) <= 0.999).all()


def test_q_sample_formula():
    sched = DiffusionSchedule.make("linear", 10)
    a0, noise, t = torch.rand(4, 2), torch.randn(4, 2), torch.tensor([0, 3, 7, 9])
    expected = (
        sched.alpha_bars[t].sqrt()[:, None] * a0 + (1 - sched.alpha_bars[t]).sqrt()[:, None] * noise
    )
    torch.testing.assert_close(sched.q_sample(a0, t, noise), expected)


class OracleEps(torch.nn.Module):
    """The exact noise predictor for a target that is a point mass at `target`."""

    def __init__(self, schedule: DiffusionSchedule, target: torch.Tensor) -> None:
        super().__init__()
        self.schedule, self.target, self.act_dim, self.calls = schedule, target, target.shape[-1], 0

    def forward(self, obs, noisy, t):
        self.calls += 1
        ab = self.schedule.alpha_bars[t][:, None]
        return (noisy - ab.sqrt() * self.target) / (1 - ab).sqrt()


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_sampling_with_the_exact_score_recovers_the_target(name):
    sched = DiffusionSchedule.make(name, 20)
    target = torch.tensor([0.3, -0.7])
    oracle = OracleEps(sched, target)
    policy = DiffusionPolicy(oracle, sched)
    actions = policy.sample(torch.zeros(5, 3), num_samples=7)
    assert actions.shape == (5, 7, 2)
    torch.testing.assert_close(actions, target.expand(5, 7, 2), rtol=0, atol=1e-5)
    assert oracle.calls == 20  # one forward per denoising step for all 35 candidates


class GaussianOracleEps(torch.nn.Module):
    """The exact noise predictor for a Gaussian target N(mean, std^2) per dimension.

    a_t = sqrt(ab) a0 + sqrt(1 - ab) eps is Gaussian with variance ab std^2 + 1 - ab, so
    E[eps | a_t] = sqrt(1 - ab) (a_t - sqrt(ab) mean) / (ab std^2 + 1 - ab).
    """

    def __init__(self, betas: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.alpha_bars = torch.cumprod(1 - betas.double(), 0)
        self.mean, self.std, self.act_dim = mean.double(), std.double(), mean.shape[-1]

    def forward(self, obs, noisy, t):
        ab = self.alpha_bars[t][:, None]
        marginal_var = ab * self.std**2 + 1 - ab
        return (1 - ab).sqrt() * (noisy.double() - ab.sqrt() * self.mean) / marginal_var


def ddpm_sampler_moments(betas, mean, std, init_scale):
    """Mean and variance of ancestral DDPM sampling driven by the exact Gaussian score,
    propagated in closed form (every step is affine in a_t plus independent noise):
    x0_hat = (a_t - sqrt(1 - ab_t) eps(a_t)) / sqrt(ab_t), a_{t-1} = c0 x0_hat + ct a_t + s_t z
    with DDPM's posterior (Ho et al. 2020, eq. 6-7), s_t^2 = beta_t (1 - ab_{t-1}) / (1 - ab_t).
    """
    betas = betas.double()
    alpha_bars = torch.cumprod(1 - betas, 0)
    m, v = torch.zeros_like(mean.double()), torch.full_like(std.double(), init_scale**2)
    for t in reversed(range(len(betas))):
        ab, beta = alpha_bars[t], betas[t]
        ab_prev = alpha_bars[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        marginal_var = ab * std.double() ** 2 + 1 - ab
        # eps(a) = k (a - sqrt(ab) mean): x0_hat = g a + h
        k = (1 - ab).sqrt() / marginal_var
        g = (1 - (1 - ab).sqrt() * k) / ab.sqrt()
        h = (1 - ab).sqrt() * k * ab.sqrt() * mean.double() / ab.sqrt()
        c0 = beta * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * (1 - beta).sqrt() / (1 - ab)
        slope, offset = c0 * g + ct, c0 * h
        noise_var = beta * (1 - ab_prev) / (1 - ab) if t > 0 else torch.tensor(0.0)
        m, v = slope * m + offset, slope**2 * v + noise_var
    return m, v


@pytest.mark.parametrize("name, num_steps", [("linear", 20), ("cosine", 20), ("cosine", 5)])
def test_sampling_with_a_gaussian_score_matches_the_ddpm_moments(name, num_steps):
    """Samples driven by the exact score of N(mean, std^2) have the mean and variance that
    DDPM's recursion predicts; a wrong posterior variance (doubled, removed) or wrong
    schedule constants move the variance by far more than the sampling error (~0.5%)."""
    torch.manual_seed(0)
    betas = SCHEDULES[name](num_steps)
    mean, std = torch.tensor([0.2, -0.4]), torch.tensor([0.15, 0.3])
    policy = DiffusionPolicy(GaussianOracleEps(betas, mean, std), DiffusionSchedule(betas))
    samples = policy.sample(torch.zeros(1, 1), num_samples=200_000)[0].double()
    ref_mean, ref_var = ddpm_sampler_moments(betas, mean, std, policy.init_noise_scale)
    # DDPM with the posterior variance under-disperses at finite T (0.15-0.67 of std^2
    # here); the mean is exact
    torch.testing.assert_close(ref_mean, mean.double(), rtol=0, atol=1e-4)
    assert ((ref_var > 0.1 * std**2) & (ref_var < std**2)).all()
    torch.testing.assert_close(samples.mean(0), ref_mean, rtol=0, atol=0.003)
    torch.testing.assert_close(samples.var(0), ref_var, rtol=0.02, atol=0)


def test_the_reference_recursion_reaches_the_target_as_steps_grow():
    """Checks the test's own closed form: with 4000 cosine steps DDPM's output is the
    target Gaussian (variance within 1%)."""
    mean, std = torch.tensor([0.2, -0.4]), torch.tensor([0.15, 0.3])
    ref_mean, ref_var = ddpm_sampler_moments(cosine_beta_schedule(4000), mean, std, 1.0)
    torch.testing.assert_close(ref_mean, mean.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ref_var, std.double() ** 2, rtol=0.01, atol=0)


def test_best_of_n_picks_the_highest_score():
    candidates = torch.tensor([[[0.1], [0.9], [0.5]], [[-0.2], [0.0], [0.4]]])
    scores = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]])
    actions, index = best_of_n(candidates, scores)
    assert index.tolist() == [1, 0]
    torch.testing.assert_close(actions, torch.tensor([[0.9], [-0.2]]))


def test_denoising_training_learns_two_separated_modes():
    """Plain score matching on samples from two equal peaks at -0.6 and +0.6: the policy
    keeps both (a unimodal Gaussian could not)."""
    torch.manual_seed(0)
    sched = DiffusionSchedule.make("cosine", 20)
    policy = DiffusionPolicy(EpsilonNetwork(1, 1, (64, 64)), sched)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    obs = torch.zeros(256, 1)
    for _ in range(2500):
        a0 = torch.where(torch.rand(256, 1) < 0.5, -0.6, 0.6) + 0.05 * torch.randn(256, 1)
        t = torch.randint(0, sched.num_steps, (256,))
        loss = policy.denoising_loss_terms(obs, a0, t, torch.randn_like(a0)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        samples = policy.sample(torch.zeros(1, 1), num_samples=2000).flatten()
    near_left = ((samples + 0.6).abs() < 0.2).float().mean()
    near_right = ((samples - 0.6).abs() < 0.2).float().mean()
    assert near_left > 0.3 and near_right > 0.3, (near_left, near_right)


def test_conditioned_noise_prediction_equals_the_full_forward():
    """Sampling's shortcut (state part of the first layer once per state) changes nothing."""
    torch.manual_seed(0)
    net = EpsilonNetwork(10, 3, (32, 32))
    obs, noisy = torch.randn(4, 10), torch.randn(8, 3)
    for step in (0, 7):
        full = net(obs.repeat_interleave(2, dim=0), noisy, torch.full((8,), step))
        assert torch.allclose(net.conditioned(obs, 2)(noisy, step), full, atol=1e-6)


def test_cpu_mish_without_autograd_equals_the_builtin():
    """The sampler's Mish (CPU, no autograd: `2x / (1 + sigmoid(-x)^2) - x`) is torch's
    mish to an ulp of `x`, also where `e^x` overflows float32 or vanishes."""
    extremes = torch.tensor([-1e4, -100.0, -20.0, 0.0, 20.0, 89.0, 1e4])
    x = torch.cat([torch.randn(4096) * 4, extremes])
    with torch.no_grad():
        fast = Mish()(x.clone())
    error = (fast - torch.nn.functional.mish(x.double())).abs()
    # within two float32 ulps of the input (what rounding of the layer before it leaves)
    assert (error <= 2.4e-7 * x.abs() + 1e-7).all(), error.max()


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("beta, alpha", [(1.3, -0.4), (0.0, 2.0), (0.5, 0.0)])
@pytest.mark.parametrize("all_steps_at_once", [False, True])
def test_conditioned_affine_update_equals_the_plain_form(
    grad, beta, alpha, all_steps_at_once, monkeypatch
):
    """`affine` folds `beta * base + alpha * F(a, t)` into the last layer's addmm: the same
    numbers as the plain form, with or without autograd, with the first layer's fixed
    input made for all steps at once (small batches) or per step."""
    monkeypatch.setattr(ConditionedNetwork, "max_step_inputs", 2**20 if all_steps_at_once else 0)
    torch.manual_seed(0)
    net = EpsilonNetwork(10, 3, (32, 32))
    obs, noisy, base = torch.randn(4, 10), torch.randn(8, 3), torch.randn(8, 3)
    with torch.set_grad_enabled(grad):
        full = net(obs.repeat_interleave(2, dim=0), noisy, torch.full((8,), 5))
        folded = net.conditioned(obs, 2, num_steps=7).affine(noisy, 5, base, beta, alpha)
    torch.testing.assert_close(folded, beta * base + alpha * full, rtol=1e-5, atol=1e-6)


def test_sampling_follows_weight_updates():
    """Sampling on a CPU multiplies by transposed copies of the weights kept between calls;
    an in-place update (optimizer, EMA) must reach the next call."""
    torch.manual_seed(0)
    net = EpsilonNetwork(10, 3, (32, 32))
    obs, noisy = torch.randn(4, 10), torch.randn(8, 3)
    with torch.no_grad():
        before = net.conditioned(obs, 2)(noisy, 3)
        for parameter in net.net.parameters():
            parameter.mul_(1.5)
        after = net.conditioned(obs, 2)(noisy, 3)
        full = net(obs.repeat_interleave(2, dim=0), noisy, torch.full((8,), 3))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, full, rtol=1e-5, atol=1e-6)


class PlainEps(torch.nn.Module):
    """An epsilon network seen only through `forward` (no `conditioned` shortcut)."""

    def __init__(self, net: EpsilonNetwork) -> None:
        super().__init__()
        self.net, self.act_dim = net, net.act_dim

    def forward(self, obs, noisy, t):
        return self.net(obs, noisy, t)


@pytest.mark.parametrize("grad", [False, True])
def test_the_fused_sampler_draws_what_the_plain_network_draws(grad):
    """Same seed, same samples: through `conditioned` (fused updates, cached weights) and
    through the network's plain forward."""
    net = EpsilonNetwork(10, 3, (32, 32))
    sched = DiffusionSchedule.make("linear", 20)
    obs = torch.randn(4, 10)
    with torch.set_grad_enabled(grad):
        torch.manual_seed(1)
        fused = DiffusionPolicy(net, sched).sample(obs, num_samples=16)
        torch.manual_seed(1)
        plain = DiffusionPolicy(PlainEps(net), sched).sample(obs, num_samples=16)
    assert fused.abs().max() > 0.1  # not all clipped to zero
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


def test_sampling_clips_the_x0_prediction_as_the_textbook_step_does():
    """The sampler's fused step (`clip(c0 a0, -c0, c0)` folded into one update) equals the
    textbook DDPM step with `a0` clipped to [-1, 1], given the same noise (the sampler draws
    all of it in one call: `a_T` from row 0, the step to `a_{t-1}` from row t). The
    target's mean lies outside [-1, 1], so clipping is active along the chain."""
    sched = DiffusionSchedule.make("linear", 10)
    oracle = GaussianOracleEps(linear_beta_schedule(10), torch.tensor([1.5, -0.2]), torch.ones(2))
    policy = DiffusionPolicy(oracle, sched, init_noise_scale=0.5)
    torch.manual_seed(3)
    samples = policy.sample(torch.zeros(1, 1), num_samples=64)[0]
    torch.manual_seed(3)
    noise = torch.randn(10, 64, 2)
    action, clipped = 0.5 * noise[0], 0
    for t in reversed(range(10)):
        ab = sched.alpha_bars[t]
        a0 = (action - (1 - ab).sqrt() * oracle(None, action, torch.full((64,), t))) / ab.sqrt()
        clipped += int((a0.abs() > 1).sum())
        mean = sched.posterior_coef_x0[t] * a0.clamp(-1, 1) + sched.posterior_coef_xt[t] * action
        action = (mean + sched.posterior_std[t] * noise[t] if t > 0 else mean).float()
    assert clipped > 100
    torch.testing.assert_close(samples, action.clamp(-1, 1), rtol=1e-4, atol=1e-5)
