"""How well can a cost critic learn hazard cost-to-go on lit_rl/SafePointGoalSmall-v0?

    python benchmarks/cost_critic_fit.py RUN_DIR [--episodes 100] [--sorted]

RUN_DIR is a finished `cvpo_pointgoal` run (its `config.yaml` and `last.ckpt`). The
script rolls out that run's stochastic policy, computes each step's discounted cost-to-go
(the recipe's `cost_gamma`), holds out the last 20% of the episodes (new hazard layouts),
and reports the held-out correlation and mean of:

1. the run's own cost critic (max over its members);
2. a fresh critic regressed on the Monte Carlo cost-to-go (what the observation allows);
3. a fresh critic fitted by TD with the data's next actions, one member;
4. the same with two members, max over them and targets clamped at 0 (CVPO's target).

`--sorted` lists the hazards nearest first in the observation (a permutation-invariant
layout, like Safety Gym's lidar) before fitting 2-4. Numbers: docs/safe.md.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_rl.config import load_recipe  # noqa: E402
from lit_rl.nets.critics import EnsembleQCritic  # noqa: E402
from lit_rl.run import build_module  # noqa: E402

STEPS_PER_EPISODE = 200
BATCH = 256


def rollouts(actor, env_id: str, episodes: int, gamma: float) -> dict[str, torch.Tensor]:
    """Transitions of the stochastic policy with each step's discounted cost-to-go."""
    env = gym.make(env_id)
    tensors = ("obs", "action", "next_obs", "next_action")
    columns: dict[str, list] = {k: [] for k in (*tensors, "cost", "togo")}
    for episode in range(episodes):
        observation, _ = env.reset(seed=5000 + episode)
        observations, actions, costs = [], [], []
        for _ in range(STEPS_PER_EPISODE):
            obs = torch.as_tensor(observation, dtype=torch.float32)
            with torch.no_grad():
                action = actor.explore(obs[None])[0]
            observation, _, _, _, info = env.step(action.numpy())
            observations.append(obs)
            actions.append(action)
            costs.append(float(info["cost"]))
        togo, running = [], 0.0
        for cost in reversed(costs):
            running = cost + gamma * running
            togo.append(running)
        togo.reverse()
        # the last step has no next observation here: drop it
        columns["obs"] += observations[:-1]
        columns["next_obs"] += observations[1:]
        columns["action"] += actions[:-1]
        columns["next_action"] += actions[1:]
        columns["cost"] += costs[:-1]
        columns["togo"] += togo[:-1]
    return {
        k: torch.stack(v) if k in tensors else torch.tensor(v, dtype=torch.float32)
        for k, v in columns.items()
    }


def nearest_first(observation: torch.Tensor) -> torch.Tensor:
    """The observation with its hazard positions (after the first 5 numbers) sorted by
    distance from the robot."""
    hazards = observation[:, 5:].unflatten(1, (-1, 2))
    order = hazards.norm(dim=-1).argsort(dim=1)
    hazards = torch.gather(hazards, 1, order[..., None].expand_as(hazards))
    return torch.cat([observation[:, :5], hazards.flatten(1)], dim=1)


def fit(data, split: int, gamma: float, target: str, members: int, updates: int = 6000):
    """A (128, 128) ReLU critic fitted on the first `split` transitions."""
    critic = EnsembleQCritic(data["obs"].shape[1], data["action"].shape[1], (128, 128), members)
    frozen = copy.deepcopy(critic).requires_grad_(False)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    for _ in range(updates):
        index = torch.randint(split, (BATCH,))
        if target == "monte_carlo":
            goal = data["togo"][index]
        else:
            with torch.no_grad():
                following = frozen(data["next_obs"][index], data["next_action"][index])
                if target == "td_max":
                    goal = (data["cost"][index] + gamma * following.max(dim=0).values).clamp_min(0)
                else:
                    goal = data["cost"][index] + gamma * following.mean(dim=0)
        loss = (critic(data["obs"][index], data["action"][index]) - goal).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for param, slow in zip(critic.parameters(), frozen.parameters(), strict=True):
                slow.lerp_(param, 0.005)
    return critic


def report(name: str, critic, data, split: int) -> None:
    with torch.no_grad():
        predicted = critic(data["obs"][split:], data["action"][split:]).max(dim=0).values
    truth = data["togo"][split:]
    correlation = np.corrcoef(predicted.numpy(), truth.numpy())[0, 1]
    print(
        f"  {name:42s} held-out correlation {correlation:5.2f} | "
        f"mean {predicted.mean():.2f} (true {truth.mean():.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--sorted", action="store_true", help="hazards nearest first")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_recipe(str(args.run_dir / "config.yaml"), [])
    module = build_module(cfg, args.run_dir / "cost_critic_fit")
    state = torch.load(args.run_dir / "last.ckpt", weights_only=True, map_location="cpu")
    module.load_state_dict(state["state_dict"])
    gamma = module.cost_discount()
    data = rollouts(module.loss_module.actor, cfg["env"]["id"], args.episodes, gamma)
    split = int(0.8 * len(data["togo"]))
    print(
        f"{len(data['togo'])} steps of {args.episodes} episodes, cost rate "
        f"{data['cost'].mean():.3f}, cost gamma {gamma}"
    )
    report("the run's own cost critic", module.loss_module.cost_critic, data, split)
    if args.sorted:
        data["obs"], data["next_obs"] = nearest_first(data["obs"]), nearest_first(data["next_obs"])
        print("  (hazards nearest first from here on)")
    for name, target, members in (
        ("regression on Monte Carlo cost-to-go", "monte_carlo", 1),
        ("TD, one member", "td", 1),
        ("TD, two members, max + clamp (CVPO's)", "td_max", 2),
    ):
        report(name, fit(data, split, gamma, target, members), data, split)


if __name__ == "__main__":
    main()
