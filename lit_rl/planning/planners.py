"""Planners over a model: state in, action out, with a warm-started plan between steps.

Every planner scores candidate action sequences the same way (LOOP, Sikchi et al. 2021):

    R_j = sum_{t < H-1} gamma^t r_t  +  gamma^(H-1) Q(s_{H-1}, a_{H-1})

through a model `step(obs, action) -> (next_obs, reward, terminated)`, with `particles`
model rollouts per sequence. All candidates x particles go through the model as one
batch per horizon step. Rewards after a predicted termination count zero.

- `ARCPlanner`: MPPI whose candidates include rollouts of a prior policy (the SAC actor
  in LOOP): "actor regularised control" keeps the executed actions near what the critic
  evaluates. Training executes the first action of a sequence drawn by the MPPI weights,
  evaluation the mean.
- `CEMPlanner`: the cross-entropy method; refits to the top `num_elites` sequences.

Actions live in [-1, 1] like every lit_rl policy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
ValueFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PriorFn = Callable[[torch.Tensor], torch.Tensor]


def score_sequences(
    step: StepFn,
    value: ValueFn | None,
    observation: torch.Tensor,
    actions: torch.Tensor,
    particles: int,
    gamma: float,
) -> torch.Tensor:
    """Returns `[K, particles]` of K sequences `actions [K, H, act_dim]` from `observation`."""
    num, horizon, _ = actions.shape
    rows = num * particles
    obs = observation.reshape(1, -1).expand(rows, -1)
    per_row = actions.repeat_interleave(particles, dim=0)  # [K * P, H, act_dim]
    total = torch.zeros(rows, dtype=obs.dtype, device=obs.device)
    alive = torch.ones(rows, dtype=obs.dtype, device=obs.device)
    discount = 1.0
    for t in range(horizon - 1):
        obs, reward, terminated = step(obs, per_row[:, t])
        total = total + discount * alive * reward
        alive = alive * (~terminated).to(obs.dtype)
        discount *= gamma
    if value is not None:
        total = total + discount * alive * value(obs, per_row[:, -1])
    return total.view(num, particles)


def prior_sequences(
    step: StepFn, prior: PriorFn, observation: torch.Tensor, num: int, horizon: int
) -> torch.Tensor:
    """`[num, H, act_dim]` action sequences of `prior` rolled out through the model."""
    obs = observation.reshape(1, -1).expand(num, -1)
    actions = []
    for t in range(horizon):
        action = prior(obs)
        actions.append(action)
        if t < horizon - 1:
            obs, _, _ = step(obs, action)
    return torch.stack(actions, dim=1)


class SequencePlanner:
    """Shared state and sampling of the sampling-based planners.

    Args:
        step: the model (learned ensemble or known dynamics).
        value: terminal `Q(s, a) -> [B]`, or None to score rewards only.
        act_dim: action dimension.
        horizon: H, the planned sequence length.
        num_samples: sampled sequences per iteration.
        particles: model rollouts per sequence (their mean is the score).
        iterations: refinements of the sampling distribution per env step.
        init_var: sampling variance at each step's start (the mean is warm-started).
        momentum: weight of the old mean/variance in each refinement.
        gamma: discount inside the horizon.
        pessimism: score = mean - pessimism * std over particles (offline LOOP uses 1).
    """

    def __init__(
        self,
        step: StepFn,
        value: ValueFn | None,
        act_dim: int,
        horizon: int = 3,
        num_samples: int = 100,
        particles: int = 4,
        iterations: int = 5,
        init_var: float = 0.25,
        momentum: float = 0.1,
        gamma: float = 0.99,
        pessimism: float = 0.0,
    ) -> None:
        if horizon < 1 or num_samples < 1 or particles < 1 or iterations < 1:
            raise ValueError("horizon, num_samples, particles and iterations must be >= 1")
        self.step, self.value = step, value
        self.act_dim, self.horizon = act_dim, horizon
        self.num_samples, self.particles, self.iterations = num_samples, particles, iterations
        self.init_var, self.momentum, self.gamma = init_var, momentum, gamma
        self.pessimism = pessimism
        self.mean: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the warm start (call at an episode's start)."""
        self.mean = None

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"mean": self.mean}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.mean = state["mean"]

    def initial_mean(self, observation: torch.Tensor) -> torch.Tensor:
        """The previous plan shifted by one step, zeros appended (zeros at the start)."""
        zeros = observation.new_zeros(self.horizon, self.act_dim)
        if self.mean is None:
            return zeros
        return torch.cat([self.mean[1:], zeros[:1]], dim=0)

    def sample(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """`[num_samples, H, act_dim]` truncated-normal sequences clipped to [-1, 1]."""
        noise = torch.randn(self.num_samples, *mean.shape, dtype=mean.dtype, device=mean.device)
        return (mean + var.sqrt() * noise.clamp(-2.0, 2.0)).clamp(-1.0, 1.0)

    def score(self, observation: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        returns = score_sequences(
            self.step, self.value, observation, candidates, self.particles, self.gamma
        )
        if self.pessimism and self.particles > 1:
            return returns.mean(1) - self.pessimism * returns.std(1)
        return returns.mean(1)

    def smooth(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return self.momentum * old + (1.0 - self.momentum) * new

    def __call__(self, observation: torch.Tensor, explore: bool = False) -> torch.Tensor:
        """The action `[act_dim]` to execute in `observation [obs_dim]`."""
        if observation.dim() != 1:
            raise ValueError(
                f"planners act in one env at a time: observation must be [obs_dim], "
                f"got {tuple(observation.shape)}"
            )
        return self.plan(observation, explore)

    def plan(self, observation: torch.Tensor, explore: bool) -> torch.Tensor:
        raise NotImplementedError


class ARCPlanner(SequencePlanner):
    """Actor Regularized Control: MPPI with prior-policy rollouts among the candidates.

    Args (besides `SequencePlanner`'s):
        prior: deterministic prior policy `obs [B, obs_dim] -> action [B, act_dim]`, or None.
        num_prior: prior rollouts added to the candidates each iteration.
        kappa: inverse temperature of the MPPI weights `softmax(kappa * R)`.
    """

    def __init__(
        self, *args, prior: PriorFn | None = None, num_prior: int = 5, kappa: float = 1.0, **kw
    ) -> None:
        super().__init__(*args, **kw)
        self.prior, self.num_prior, self.kappa = prior, num_prior, kappa

    def plan(self, observation: torch.Tensor, explore: bool) -> torch.Tensor:
        mean = self.initial_mean(observation)
        var = torch.full_like(mean, self.init_var)
        prior = None
        if self.prior is not None and self.num_prior > 0:
            prior = prior_sequences(
                self.step, self.prior, observation, self.num_prior, self.horizon
            ).clamp(-1.0, 1.0)
        for _ in range(self.iterations):
            candidates = self.sample(mean, var)
            if prior is not None:
                candidates = torch.cat([candidates, prior], dim=0)
            weights = torch.softmax(self.kappa * self.score(observation, candidates), dim=0)
            new_mean = torch.einsum("k,kha->ha", weights, candidates)
            new_var = torch.einsum("k,kha->ha", weights, (candidates - new_mean) ** 2)
            mean, var = self.smooth(mean, new_mean), self.smooth(var, new_var)
        self.mean = mean
        if explore:
            chosen = torch.multinomial(weights, 1).item()
            return candidates[chosen, 0]
        return mean[0]


class CEMPlanner(SequencePlanner):
    """The cross-entropy method: refit mean and variance to the best `num_elites` sequences.

    Executes the mean's first action; `explore_noise` adds Gaussian noise in training.
    """

    def __init__(self, *args, num_elites: int = 10, explore_noise: float = 0.1, **kw) -> None:
        super().__init__(*args, **kw)
        if not 1 <= num_elites <= self.num_samples:
            raise ValueError(f"num_elites={num_elites} must be in [1, num_samples]")
        self.num_elites, self.explore_noise = num_elites, explore_noise

    def plan(self, observation: torch.Tensor, explore: bool) -> torch.Tensor:
        mean = self.initial_mean(observation)
        var = torch.full_like(mean, self.init_var)
        for _ in range(self.iterations):
            candidates = self.sample(mean, var)
            best = candidates[self.score(observation, candidates).topk(self.num_elites).indices]
            mean = self.smooth(mean, best.mean(0))
            var = self.smooth(var, best.var(0, unbiased=False))
        self.mean = mean
        action = mean[0]
        if explore and self.explore_noise > 0:
            action = (action + self.explore_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action


PLANNERS: dict[str, type[SequencePlanner]] = {"arc": ARCPlanner, "cem": CEMPlanner}
