"""Safe RL learns on lit_rl/SafePointGoalSmall-v0 and lit_rl/SafeHopperVelocity-v0:
the safe algorithms keep the mean evaluation episode cost under the recipe's limit, SAC
without costs does not, and each reaches more goals than a random policy.

Slow (each run 10-60 minutes on this 2-core CPU; safe LOOP's 100 evaluation episodes
alone take over 25): `pytest -m slow tests/test_safe_learning.py`.
The numbers of the runs made by hand with the same recipes are in docs/safe.md.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import REPO, train
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

import lit_rl  # noqa: F401  (registers the lit_rl/Safe* ids)

# 100 episodes: one episode parked in a hazard costs ~100, so a 10-episode mean cost swings
# between 0 and 26 from one evaluation to the next, and even 30 episodes can mislead
# (CVPO: 0.0 on seeds 1000-1029, 7.8 on 1000-1099; docs/safe.md)
EPISODES = 100
SMALL = "lit_rl/SafePointGoalSmall-v0"


def goals_and_costs(
    policy, env_kwargs: dict, episodes: int = EPISODES, seed: int = 1000
) -> tuple[float, float]:
    """Mean goals reached and mean episode cost of deterministic episodes of `policy`
    (a TensorDict policy reading observation and is_init) on the small goal task with
    the recipe's env options."""
    env = gym.make(SMALL, **env_kwargs)
    goals, costs = [], []
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            first, cost, done = True, 0.0, False
            while not done:
                td = TensorDict(
                    {
                        "observation": torch.as_tensor(observation, dtype=torch.float32),
                        "is_init": torch.tensor([first]),
                    },
                    [],
                )
                action = policy(td).get("action").numpy()
                observation, _, terminated, truncated, info = env.step(action)
                cost += info["cost"]
                first, done = False, terminated or truncated
            goals.append(info["goals_reached"])
            costs.append(cost)
    return float(np.mean(goals)), float(np.mean(costs))


def random_goals(env_kwargs: dict) -> float:
    env = gym.make(SMALL, **env_kwargs)
    env.action_space.seed(0)
    goals = []
    for episode in range(EPISODES):
        env.reset(seed=1000 + episode)
        done = False
        while not done:
            *_, terminated, truncated, info = env.step(env.action_space.sample())
            done = terminated or truncated
        goals.append(info["goals_reached"])
    return float(np.mean(goals))


def run(recipe: str, tmp_path, *extra: str):
    overrides = [f"run_dir={tmp_path / recipe}", "progress_bar=false", "logger=[csv]", *extra]
    _, module, _ = train(overrides, recipe=str(REPO / "recipes" / f"{recipe}.yaml"))
    return module


@pytest.mark.slow
@pytest.mark.learning
@pytest.mark.parametrize(
    ("recipe", "safe"),
    [
        ("sac_pointgoal", False),
        ("safe_loop_pointgoal", True),
        ("sac_lag_pointgoal", True),
        ("cvpo_pointgoal", True),
    ],
)
def test_safe_algorithms_keep_the_cost_under_the_limit(recipe, safe, tmp_path):
    module = run(recipe, tmp_path)
    env_kwargs = dict(module.hparams.env_kwargs or {})
    goals, cost = goals_and_costs(module.make_policy(), env_kwargs)
    limit = module.hparams.cost_limit
    print(f"{recipe}: {goals:.2f} goals, cost {cost:.2f} per episode on {EPISODES} episodes")
    if safe:
        assert cost <= limit, f"{recipe}: mean episode cost {cost} over the limit {limit}"
    else:
        assert cost > limit, f"SAC without costs should violate the limit: {cost} <= {limit}"
    assert goals > random_goals(env_kwargs) + 0.5, f"{recipe}: {goals} goals per episode"


@pytest.mark.slow
@pytest.mark.learning
def test_cvpo_respects_the_hopper_speed_limit(tmp_path):
    module = run("cvpo_hopper_velocity", tmp_path)
    env = module.make_env(12345)
    from lit_rl.callbacks.evaluation import evaluate_episodes

    result = evaluate_episodes(env, module.make_policy(), 5)
    lengths = 1000  # cost rate against the limit per 1000 steps (Safety-Gymnasium)
    assert float(result["cost"].mean()) <= module.hparams.cost_limit * lengths / 1000
    random_return = 18.0  # uniform random actions on Hopper-v5: about 18 (short falls)
    assert float(result["return"].mean()) > random_return
