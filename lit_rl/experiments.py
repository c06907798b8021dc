"""Experiments that are not training runs: a recipe with `experiment: NAME` runs one of these.

    experiment: lookahead_pi
    run_dir: runs/${name}
    lookahead_pi: {gamma: 0.95, iterations: 60, settings: [[1, 1], [4, 1]]}

The section named after the experiment holds the arguments of its runner below (checked
against the runner's signature like `algo:` is against an algorithm's constructor).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lit_rl.data.suite import build_dataset_suite
from lit_rl.errors import ConfigError

DIVERGED_ERROR = 1e3  # an error this far above the start counts as divergence in the summary


def run_lookahead_pi(
    run_dir: str,
    problem: str = "two_state_counterexample",
    gamma: float = 0.95,
    iterations: int = 60,
    fit: str = "least_squares",
    settings: Sequence[Sequence[int]] = ((1, 1), (2, 1), (3, 1), (4, 1), (1, 4), (6, 1)),
    gradient_steps: int = 5,
    gradient_lr: float = 0.05,
) -> dict[tuple[int, int], list[float]]:
    """Approximate PI on a known MDP for each (H, m) in `settings`; write CSV and plot.

    Writes `run_dir/errors.csv` (one column per setting) and `run_dir/lookahead_pi.png`
    (sup-norm error per iteration, log scale). Returns the error curves by (H, m).
    """
    from lit_rl.planning.lookahead_pi import FITS, PROBLEMS, approximate_policy_iteration

    if problem not in PROBLEMS:
        raise ConfigError(f"unknown lookahead_pi.problem '{problem}'; choose {', '.join(PROBLEMS)}")
    if fit not in FITS:
        raise ConfigError(f"unknown lookahead_pi.fit '{fit}'; choose one of {', '.join(FITS)}")
    for setting in settings:
        if len(setting) != 2 or min(setting) < 1:
            raise ConfigError(f"lookahead_pi.settings entries are [H, m] with H, m >= 1: {setting}")
    print(f"lit-rl: run folder {run_dir}", flush=True)
    lp = PROBLEMS[problem](gamma)
    curves = {
        (h, m): approximate_policy_iteration(
            lp, h, m, iterations, fit, gradient_steps, gradient_lr
        ).tolist()
        for h, m in settings
    }
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"H{h}_m{m}" for h, m in curves]
    with (out / "errors.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", *names])
        for k in range(iterations + 1):
            writer.writerow([k, *(curve[k] for curve in curves.values())])
    plot_errors(curves, out / "lookahead_pi.png", f"{problem}, gamma={gamma}, fit={fit}")
    print(f"{'H':>3} {'m':>3} {'error[0]':>10} {'error[end]':>12}  verdict")
    for (h, m), curve in curves.items():
        verdict = "diverges" if curve[-1] > curve[0] else "converges"
        print(f"{h:>3} {m:>3} {curve[0]:>10.3g} {curve[-1]:>12.4g}  {verdict}")
    print(f"lit-rl: wrote {out / 'errors.csv'} and {out / 'lookahead_pi.png'}")
    return curves


def plot_errors(curves: dict[tuple[int, int], list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (h, m), curve in curves.items():
        # dashed for m > 1: (H, m) and (H', m') with H + m = H' + m' draw the same curve here
        ax.semilogy(curve, "--" if m > 1 else "-", label=f"H={h}, m={m}")
    ax.set_xlabel("iteration k")
    ax.set_ylabel(r"$\|\Phi\theta_k - J^*\|_\infty$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


BANDIT_PEAKS = (-0.6, 0.6)
BANDIT_WIDTH = 0.1


def bandit_reward(action):
    """Two equal Gaussian bumps at a = -0.6 and a = +0.6 (width 0.1): `[B, 1] -> [B]`."""
    import torch

    bumps = [torch.exp(-((action - p) ** 2) / (2 * BANDIT_WIDTH**2)) for p in BANDIT_PEAKS]
    return sum(bumps).squeeze(-1)


def train_bandit_policy(
    algorithm: str, iterations: int = 2000, seed: int = 0, batch_size: int = 256, lr: float = 3e-3
):
    """Policy improvement on the two-peak bandit with the true reward as the critic.

    Returns 2000 action samples `[2000]` of the trained policy. Isolates the step where
    diffusion policies differ from SAC: SDAC's target `exp(Q / lambda)` keeps both peaks,
    SAC's Gaussian must pick one or straddle the valley, and DPMD's target
    `pi_old * exp(Q / lambda)`, fitted to pi_old's own samples, drifts onto one peak.
    """
    import torch
    from tensordict import TensorDict
    from torch import nn

    from lit_rl.nets import TanhGaussianActor
    from lit_rl.nets.diffusion import DiffusionPolicy, DiffusionSchedule, EpsilonNetwork
    from lit_rl.objectives.rsm import DPMDLoss, SDACLoss
    from lit_rl.objectives.sac import SACLoss

    class TrueRewardCritic(nn.Module):
        """A fixed 'critic' returning the bandit's reward for both heads: `[2, B]`."""

        num_qs = 2

        def __init__(self) -> None:
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))  # optimizers and copies need one

        def forward(self, observation, action):
            return self.forward_with(None, observation, action)

        def forward_with(self, params, observation, action):
            return bandit_reward(action).unsqueeze(0).expand(2, -1) + 0 * self.dummy

    torch.manual_seed(seed)
    batch = TensorDict({"observation": torch.zeros(batch_size, 1)}, [batch_size])
    if algorithm in ("sdac", "dpmd"):
        schedule = DiffusionSchedule.make("cosine", 10)
        policy = DiffusionPolicy(EpsilonNetwork(1, 1, (64, 64)), schedule)
        if algorithm == "sdac":
            loss = SDACLoss(policy, TrueRewardCritic(), num_particles=8, num_reverse_samples=32)
            step = lambda: loss.policy_loss(batch, 0.05, noise_std=0.1)[0]  # noqa: E731
        else:
            # a0 drawn from pi_old itself (one particle), the proposal of the mirror-descent
            # target pi_old * exp(Q / lambda). Measured: it still ends on one peak (within
            # 100 updates for lambda 0.5-5, lr 3e-4-3e-3, 256-2048 samples per update):
            # fitting the policy to its own samples amplifies any bias of the sampler
            loss = DPMDLoss(policy, TrueRewardCritic(), num_particles=1)
            step = lambda: loss.policy_loss(batch, 0.5, noise_std=0.05)[0]  # noqa: E731
        params = policy.parameters()
    elif algorithm == "sac":
        actor = TanhGaussianActor(1, 1, (64, 64))
        loss = SACLoss(actor, TrueRewardCritic(), init_alpha=0.05)
        step = lambda: loss.actor_loss(batch)[0]  # noqa: E731
        params = actor.parameters()
    else:
        raise ConfigError(
            f"unknown bimodal_bandit algorithm '{algorithm}'; choose sdac, dpmd or sac"
        )
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(iterations):
        value = step()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        if algorithm in ("sdac", "dpmd"):
            return policy.sample(torch.zeros(1, 1), 2000).flatten()
        return actor.sample(torch.zeros(2000, 1))[0].flatten()


def mass_near_peaks(samples) -> list[float]:
    """Share of samples within 0.2 of each peak."""
    return [float(((samples - p).abs() < 0.2).float().mean()) for p in BANDIT_PEAKS]


def run_bimodal_bandit(
    run_dir: str,
    algorithms: Sequence[str] = ("sdac", "dpmd", "sac"),
    iterations: int = 2000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train each algorithm's policy on the two-peak bandit; plot sample histograms.

    Writes `run_dir/bimodal_bandit.png` and prints the mass near each peak.
    """
    print(f"lit-rl: run folder {run_dir}", flush=True)
    samples = {name: train_bandit_policy(name, iterations, seed) for name in algorithms}
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    fig, ax = plt.subplots(figsize=(6, 3.5))
    grid = torch.linspace(-1, 1, 400)
    ax.plot(grid, bandit_reward(grid[:, None]), "k--", label="reward")
    masses = {}
    for name, actions in samples.items():
        masses[name] = mass_near_peaks(actions)
        ax.hist(
            actions.numpy(),
            bins=80,
            range=(-1, 1),
            density=True,
            alpha=0.5,
            label=f"{name.upper()} actions",
        )
        print(f"{name}: mass near -0.6 {masses[name][0]:.2f}, near +0.6 {masses[name][1]:.2f}")
    ax.set_xlabel("action")
    ax.set_title(f"two-peak bandit, {iterations} policy updates, seed {seed}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bimodal_bandit.png", dpi=120)
    plt.close(fig)
    print(f"lit-rl: wrote {out / 'bimodal_bandit.png'}")
    return masses


EXPERIMENTS: dict[str, Callable[..., Any]] = {
    "lookahead_pi": run_lookahead_pi,
    "bimodal_bandit": run_bimodal_bandit,
    "dataset_suite": build_dataset_suite,  # offline datasets of every quality
}
EXPERIMENT_TOP_LEVEL = {"name", "seed", "run_dir", "experiment"}
