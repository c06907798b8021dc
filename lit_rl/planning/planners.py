"""Planners over a model: state in, action out, with a warm-started plan between steps.

Every planner scores candidate action sequences the same way (LOOP, Sikchi et al. 2021):

    R_j = sum_{t < H-1} gamma^t r_t  +  gamma^(H-1) Q(s_{H-1}, a_{H-1})

through a model with `num_members` members (the ensemble's elites; 1 for a known
model). As in the released code (controllers/arc.py), each of a sequence's
`num_members x particles` rollouts stays on one member for the whole horizon, and the
sequence's score is the mean over them (5 elites x 4 particles = 20 rollouts). All
rollouts go through the model as one batch per horizon step. Rewards after a predicted
termination count zero.

Sampling, as released: the variance is capped by the distance to the action bounds,
`min((mu + 1)^2 / 4, (1 - mu)^2 / 4, var)`, and sequences are `mu + sqrt(var) * z` with
`z` from a standard normal truncated to [-2, 2], so samples stay inside [-1, 1] without
clipping. Each env step starts from the previous plan shifted by one step with its last
action repeated, and the variance reset to `init_var`.

- `ARCPlanner`: MPPI whose candidates include rollouts of a prior policy (the SAC actor
  in LOOP): "actor regularised control" keeps the executed actions near what the critic
  evaluates. The mean is replaced by the weighted mean (no smoothing; `mean_momentum`
  adds it), the variance smoothed `momentum * old + (1 - momentum) * new`. Training
  executes the first action of a sequence drawn by the MPPI weights, evaluation the mean.
- `CEMPlanner`: the cross-entropy method; refits to the top `num_elites` sequences of the
  samples plus the prior's rollouts (released baseline: 20 elites, 5 actor rollouts, no
  added noise).

Actions live in [-1, 1] like every lit_rl policy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
ValueFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PriorFn = Callable[[torch.Tensor], torch.Tensor]
CostFn = Callable[[torch.Tensor], torch.Tensor]  # observation [..., obs_dim] -> cost [...]
TRUNCATION = 2.0  # sampling noise is a standard normal truncated to [-2, 2] (released ARC)
ACTION_LOW, ACTION_HIGH = -1.0, 1.0


def each_row_step(step: StepFn) -> StepFn:
    """A members step for a model without members: `[M, N, ...]` rows through `step`."""

    def members_step(observation: torch.Tensor, action: torch.Tensor):
        lead = observation.shape[:-1]
        next_obs, reward, terminated = step(
            observation.reshape(-1, observation.shape[-1]), action.reshape(-1, action.shape[-1])
        )
        return next_obs.view(*lead, -1), reward.view(lead), terminated.view(lead)

    return members_step


def score_sequences(
    step: StepFn,
    value: ValueFn | None,
    observation: torch.Tensor,
    actions: torch.Tensor,
    particles: int,
    gamma: float,
    members_step: StepFn | None = None,
    num_members: int = 1,
    cost_fn: CostFn | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Returns `[K, num_members * particles]` rollout returns of K sequences
    `actions [K, H, act_dim]` from `observation [obs_dim]`.

    `members_step(obs [M, N, obs_dim], action [M, N, act_dim])` steps row block `m`
    through member `m` (M = `num_members`), so a rollout never changes member; without
    it, `step` moves every row (a known model, M = 1).

    With `cost_fn(obs [..., obs_dim]) -> cost [...]` (safe planning), returns
    `(returns, costs)`, `costs` the undiscounted sum of the costs of the H - 1 predicted
    observations of each rollout (zero after a predicted termination), same shape.
    """
    if members_step is None:
        members_step, num_members = each_row_step(step), 1
    num, horizon, act_dim = actions.shape
    rows = num * particles
    obs = observation.reshape(1, 1, -1).expand(num_members, rows, -1)
    per_row = actions.repeat_interleave(particles, dim=0)  # [K * P, H, act_dim]
    per_row = per_row.unsqueeze(0).expand(num_members, rows, horizon, act_dim)
    total = obs.new_zeros(num_members, rows)
    total_cost = obs.new_zeros(num_members, rows) if cost_fn is not None else None
    alive = obs.new_ones(num_members, rows)
    discount = 1.0
    for t in range(horizon - 1):
        obs, reward, terminated = members_step(obs, per_row[:, :, t])
        total = total + discount * alive * reward
        if total_cost is not None:
            total_cost = total_cost + alive * cost_fn(obs)
        alive = alive * (~terminated).to(obs.dtype)
        discount *= gamma
    if value is not None:
        last_action = per_row[:, :, -1].reshape(-1, act_dim)
        terminal = value(obs.reshape(-1, obs.shape[-1]), last_action).view(num_members, rows)
        total = total + discount * alive * terminal

    def per_sequence(x: torch.Tensor) -> torch.Tensor:
        # [M, K, P] -> [K, M * P]: every rollout of sequence k
        return x.view(num_members, num, particles).transpose(0, 1).reshape(num, -1)

    if total_cost is None:
        return per_sequence(total)
    return per_sequence(total), per_sequence(total_cost)


def truncated_normal(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Standard normal samples truncated to [-2, 2] (inverse-CDF sampling)."""
    noise = torch.empty(shape, dtype=like.dtype, device=like.device)
    return torch.nn.init.trunc_normal_(noise, 0.0, 1.0, -TRUNCATION, TRUNCATION)


def capped_variance(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """`min((mu - low)^2 / 4, (high - mu)^2 / 4, var)`: with noise in [-2, 2] std, no
    sample leaves the action bounds (released ARC)."""
    to_low = (mean - ACTION_LOW).pow(2) / TRUNCATION**2
    to_high = (ACTION_HIGH - mean).pow(2) / TRUNCATION**2
    return torch.minimum(torch.minimum(to_low, to_high), var)


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
        momentum: weight of the old variance (and, in CEM, mean) in each refinement.
        gamma: discount inside the horizon.
        pessimism: score = mean - pessimism * std over rollouts (offline LOOP uses 1).
        members_step, num_members: the model's members step (see `score_sequences`);
            None for a model without members.
        prior: deterministic prior policy `obs [B, obs_dim] -> action [B, act_dim]`, or
            None; its rollouts through `step` join the candidates of every iteration.
        num_prior: prior rollouts per env step (5).

    A subclass names its own arguments' recipe keys in `recipe_options`, so an
    algorithm builds whichever planner a recipe names without knowing its options.
    """

    recipe_options: dict[str, str] = {}

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
        members_step: StepFn | None = None,
        num_members: int = 1,
        prior: PriorFn | None = None,
        num_prior: int = 5,
    ) -> None:
        if horizon < 1 or num_samples < 1 or particles < 1 or iterations < 1:
            raise ValueError("horizon, num_samples, particles and iterations must be >= 1")
        self.step, self.value = step, value
        self.members_step, self.num_members = members_step, num_members
        self.prior, self.num_prior = prior, num_prior
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
        """The previous plan shifted by one step, its last action repeated (zeros at the
        start of an episode)."""
        if self.mean is None:
            return observation.new_zeros(self.horizon, self.act_dim)
        return torch.cat([self.mean[1:], self.mean[-1:]], dim=0)

    def sample(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """`[num_samples, H, act_dim]` sequences `mean + sqrt(capped var) * truncnorm(-2, 2)`."""
        noise = truncated_normal((self.num_samples, *mean.shape), mean)
        std = capped_variance(mean, var).sqrt()
        return (mean + std * noise).clamp(ACTION_LOW, ACTION_HIGH)  # clamp: rounding only

    def prior_candidates(self, observation: torch.Tensor) -> torch.Tensor | None:
        """The prior's rollouts `[num_prior, H, act_dim]`, or None without a prior."""
        if self.prior is None or self.num_prior <= 0:
            return None
        rollouts = prior_sequences(self.step, self.prior, observation, self.num_prior, self.horizon)
        return rollouts.clamp(ACTION_LOW, ACTION_HIGH)

    def candidates(self, mean, var, prior: torch.Tensor | None) -> torch.Tensor:
        samples = self.sample(mean, var)
        return samples if prior is None else torch.cat([samples, prior], dim=0)

    def rollouts(self, observation, candidates, cost_fn: CostFn | None = None):
        """`score_sequences` of `candidates` with this planner's model and value."""
        return score_sequences(
            self.step,
            self.value,
            observation,
            candidates,
            self.particles,
            self.gamma,
            self.members_step,
            self.num_members,
            cost_fn=cost_fn,
        )

    def score(self, observation: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return self.reduce_returns(self.rollouts(observation, candidates))

    def reduce_returns(self, returns: torch.Tensor) -> torch.Tensor:
        """A sequence's score from its rollouts' returns `[K, rollouts]`: the mean, minus
        `pessimism` standard deviations."""
        if self.pessimism and returns.shape[1] > 1:
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
        kappa: inverse temperature of the MPPI weights `softmax(kappa * R)`.
        mean_momentum: weight of the old mean in each refinement (0: the weighted mean
            replaces it, as released; an earlier lit_rl used `momentum` for both).
        mean_from_prior: sample around the prior's first rollout instead of the shifted
            previous plan (offline LOOP: small noise around the offline policy's plan).
    """

    # planner argument <- the LOOP recipe key that sets it
    recipe_options = {"kappa": "kappa", "mean_momentum": "plan_mean_momentum"}

    def __init__(
        self,
        *args,
        kappa: float = 1.0,
        mean_momentum: float = 0.0,
        mean_from_prior: bool = False,
        **kw,
    ) -> None:
        super().__init__(*args, **kw)
        self.kappa, self.mean_momentum = kappa, mean_momentum
        self.mean_from_prior = mean_from_prior

    def mppi_logits(self, observation: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """`kappa * score`, whose softmax over candidates gives the MPPI weights."""
        return self.kappa * self.score(observation, candidates)

    def weigh(self, observation: torch.Tensor, candidates: torch.Tensor):
        """`(candidates, logits)`: the sequences an iteration refits to and their MPPI
        logits (a subclass may add candidates, as safe ARC does)."""
        return candidates, self.mppi_logits(observation, candidates)

    def settle(self, observation, mean, candidates, weights) -> torch.Tensor:
        """The plan kept (warm start) and executed in evaluation: the refined mean."""
        return mean

    def plan(self, observation: torch.Tensor, explore: bool) -> torch.Tensor:
        prior = self.prior_candidates(observation)
        if self.mean_from_prior and prior is not None:
            mean = prior[0].clone()
        else:
            mean = self.initial_mean(observation)
        var = torch.full_like(mean, self.init_var)
        for _ in range(self.iterations):
            candidates, logits = self.weigh(observation, self.candidates(mean, var, prior))
            weights = torch.softmax(logits, dim=0)
            new_mean = torch.einsum("k,kha->ha", weights, candidates)
            new_var = torch.einsum("k,kha->ha", weights, (candidates - new_mean) ** 2)
            mean = self.mean_momentum * mean + (1.0 - self.mean_momentum) * new_mean
            var = self.smooth(var, new_var)
        mean = self.settle(observation, mean, candidates, weights)
        self.mean = mean
        if explore:
            chosen = torch.multinomial(weights, 1).item()
            return candidates[chosen, 0]
        return mean[0]


class CEMPlanner(SequencePlanner):
    """The cross-entropy method: refit mean and variance to the best `num_elites` of the
    sampled sequences and the prior's rollouts (released baseline: 20 elites, 5 actor
    rollouts, no added noise).

    Executes the mean's first action; `explore_noise` (0) adds Gaussian noise in training.
    """

    recipe_options = {"num_elites": "cem_elites"}

    def __init__(self, *args, num_elites: int = 20, explore_noise: float = 0.0, **kw) -> None:
        super().__init__(*args, **kw)
        if not 1 <= num_elites <= self.num_samples:
            raise ValueError(f"num_elites={num_elites} must be in [1, num_samples]")
        self.num_elites, self.explore_noise = num_elites, explore_noise

    def plan(self, observation: torch.Tensor, explore: bool) -> torch.Tensor:
        mean = self.initial_mean(observation)
        var = torch.full_like(mean, self.init_var)
        prior = self.prior_candidates(observation)
        for _ in range(self.iterations):
            candidates = self.candidates(mean, var, prior)
            best = candidates[self.score(observation, candidates).topk(self.num_elites).indices]
            mean = self.smooth(mean, best.mean(0))
            var = self.smooth(var, best.var(0, unbiased=False))
        self.mean = mean
        action = mean[0]
        if explore and self.explore_noise > 0:
            action = (action + self.explore_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action


class SafeARCPlanner(ARCPlanner):
    """Safe ARC (safe LOOP, Sikchi et al. 2021): ARC that plans only among sequences
    predicted to stay safe.

    A sequence's cost is the largest summed cost over its rollouts (every ensemble
    member and particle: safe under the most pessimistic model), with the step cost a
    known function of the predicted observation (`cost_fn`). Sequences whose cost is at
    most `cost_threshold` are feasible; the MPPI weights go to feasible sequences only
    (by return). When fewer than `min_feasible` are feasible, the planner minimises cost
    instead: weights `softmax(-cost_kappa * cost)` over all sequences.

    When fewer than `min_feasible` of an iteration's candidates are feasible, it also
    scores `uniform_samples` sequences drawn uniformly from the action box. Why: the
    released variance cap gives a mean at an action bound zero variance, so once the
    warm-started plan saturates (full speed towards the goal) every sample repeats it,
    and the planner drove into hazards that most other sequences avoid (measured on
    SafePointGoalSmall, docs/safe.md: all of 2000 uniform sequences were feasible five
    steps before an entry where none of the 55 ARC candidates was). A deviation from
    the paper, whose planner has no such samples.

    Args (besides ARC's): cost_fn, cost_threshold (0.2), min_feasible (10), cost_kappa
    (inverse temperature on costs when minimising them), uniform_samples (50).
    """

    recipe_options = {
        **ARCPlanner.recipe_options,
        "cost_threshold": "plan_cost_threshold",
        "min_feasible": "min_feasible",
        "uniform_samples": "plan_uniform_samples",
    }

    def __init__(
        self,
        *args,
        cost_fn: CostFn,
        cost_threshold: float = 0.2,
        min_feasible: int = 10,
        cost_kappa: float = 10.0,
        uniform_samples: int = 50,
        **kw,
    ) -> None:
        super().__init__(*args, **kw)
        if uniform_samples < 0:
            raise ValueError(f"uniform_samples must be >= 0, got {uniform_samples}")
        self.cost_fn, self.cost_threshold = cost_fn, cost_threshold
        self.min_feasible, self.cost_kappa = min_feasible, cost_kappa
        self.uniform_samples = uniform_samples
        self.last_feasible = 0  # feasible sequences at the last iteration (diagnostics)

    def sequence_costs(self, observation: torch.Tensor, candidates: torch.Tensor):
        """`(returns [K, rollouts], cost [K])`: each sequence's worst-case summed cost."""
        returns, costs = self.rollouts(observation, candidates, cost_fn=self.cost_fn)
        return returns, costs.max(dim=1).values

    def weigh(self, observation: torch.Tensor, candidates: torch.Tensor):
        """Safe MPPI logits; when fewer than `min_feasible` of ARC's candidates are
        feasible, `uniform_samples` sequences uniform in the action box join them (only
        then: at ARC's temperature a feasible plan's weighted mean would otherwise be
        diluted towards the box's centre, and the robot crawls)."""
        returns, cost = self.sequence_costs(observation, candidates)
        if int((cost <= self.cost_threshold).sum()) < self.min_feasible and self.uniform_samples:
            uniform = torch.empty(
                (self.uniform_samples, *candidates.shape[1:]),
                dtype=candidates.dtype,
                device=candidates.device,
            ).uniform_(ACTION_LOW, ACTION_HIGH)
            more_returns, more_cost = self.sequence_costs(observation, uniform)
            candidates = torch.cat([candidates, uniform])
            returns, cost = torch.cat([returns, more_returns]), torch.cat([cost, more_cost])
        return candidates, self.safe_logits(returns, cost)

    def mppi_logits(self, observation: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return self.safe_logits(*self.sequence_costs(observation, candidates))

    def safe_logits(self, returns: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        """MPPI logits by return over feasible sequences, or by cost when fewer than
        `min_feasible` are feasible."""
        feasible = cost <= self.cost_threshold
        self.last_feasible = int(feasible.sum())
        if self.last_feasible < self.min_feasible:
            return -self.cost_kappa * cost
        score = self.reduce_returns(returns)
        return torch.where(feasible, self.kappa * score, torch.full_like(score, -torch.inf))

    def settle(self, observation, mean, candidates, weights) -> torch.Tensor:
        """The weighted mean of feasible sequences need not be feasible (the mean of a
        detour left and a detour right of a hazard crosses it): keep the mean only when
        it is predicted feasible, else the best-weighted candidate."""
        _, cost = self.sequence_costs(observation, mean.unsqueeze(0))
        if float(cost[0]) <= self.cost_threshold:
            return mean
        return candidates[weights.argmax()].clone()


PLANNERS: dict[str, type[SequencePlanner]] = {
    "arc": ARCPlanner,
    "cem": CEMPlanner,
    "safe_arc": SafeARCPlanner,
}
