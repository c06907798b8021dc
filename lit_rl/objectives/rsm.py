"""Reweighted Score Matching (RSM) losses for diffusion policies: DPMD and SDAC.

Ma, Chen, Wang, Li, Dai, "Efficient Online Reinforcement Learning for Diffusion Policy",
ICML 2025 (arXiv 2502.00361). Denoising score matching needs samples of the target
policy, which online RL does not have; RSM reweights the DSM loss so its minimiser is
still the target's score while samples come from a tractable distribution.

* DPMD (policy mirror descent, target `pi_new ~ pi_old * exp(Q / lambda)`):
  `L = E[w(s, a0) ||eps_theta(a_t, s, t) - eps||^2]`, `a0` from the acting rule,
  `w = exp(clip((Q - mu) / sigma, -3, 3) / lambda)` with running `mu`, `sigma` of Q.
* SDAC (max-entropy target `pi ~ exp(Q / lambda)`, reverse sampling): for `a_t` noised
  from an acting-rule action, draw M reverse samples `eps_i`,
  `a0_i = clip((a_t - sqrt(1 - ab_t) eps_i) / sqrt(ab_t), -1, 1)`,
  `w_i = softmax_i(Q(s, a0_i) / lambda)`, `L = E[sum_i w_i ||eps_theta(a_t, s, t) - eps_i||^2]`.

Both critics are twin Q-networks trained to `y = reward_scale * r + gamma (1 - term)
min Q_targ(s', a')` with `a'` from the acting rule and no entropy term. Q of an action
is the min over the critic ensemble.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.distributed as dist
from tensordict import TensorDict, TensorDictBase
from torch import nn

from lit_rl.nets.conditional import best_of_n
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.cuda_graphs import GraphedCall
from lit_rl.nets.diffusion import DiffusionPolicy
from lit_rl.objectives.sac import SACKeys, ensemble_l2_loss, reward_and_continuation
from lit_rl.objectives.targets import polyak_update

WEIGHT_CLIP = 3.0  # DPMD: normalised Q is clipped to [-3, 3] before exponentiation (paper)
STD_FLOOR = 1e-6
FLOAT32_LOG_MAX = math.log(torch.finfo(torch.float32).max)  # ~88.7


def max_weight_is_finite(lam: float) -> bool:
    """Whether DPMD's largest weight `exp(WEIGHT_CLIP / lambda)` is finite in float32."""
    return lam > 0 and WEIGHT_CLIP / lam < FLOAT32_LOG_MAX


class RunningMeanStd(nn.Module):
    """Exponential running mean and std of a scalar stream (update rate `rate`)."""

    def __init__(self, rate: float = 0.001) -> None:
        super().__init__()
        self.rate = rate
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:
        """Blend in the batch's mean and variance; under DDP, those of all ranks' batches
        (equal sizes), so every rank keeps the same statistics."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            moments = torch.stack([values.mean(), values.pow(2).mean()])
            dist.all_reduce(moments)
            moments /= dist.get_world_size()
            batch_mean = moments[0]
            batch_var = (moments[1] - batch_mean.pow(2)).clamp_min(0.0)
        else:
            batch_mean, batch_var = values.mean(), values.var(unbiased=False)
        if not self.initialized:
            self.mean.copy_(batch_mean)
            self.var.copy_(batch_var)
            self.initialized.fill_(True)
            return
        self.mean.lerp_(batch_mean, self.rate)
        self.var.lerp_(batch_var, self.rate)

    @property
    def std(self) -> torch.Tensor:
        return self.var.clamp_min(STD_FLOOR**2).sqrt()


class DiffusionActorCriticLoss(nn.Module):
    """What DPMD and SDAC share: the acting rule, the critic loss and the targets.

    Args:
        policy: the diffusion policy (an EMA copy is kept for collection).
        critic: twin Q ensemble; a target copy is kept.
        gamma, reward_scale: critic target `reward_scale * r + gamma * ...`.
        num_particles: candidates N of the best-of-N acting rule.
        cuda_graphs: on a GPU, replay the acting rule from CUDA graphs (see `act`).
        compile_acting: elsewhere (a CPU), run the acting rule through `torch.compile`
            (`compiled_act`): for collection, evaluation and the updates' targets.
    """

    keys = SACKeys()

    def __init__(
        self,
        policy: DiffusionPolicy,
        critic: EnsembleQCritic,
        gamma: float = 0.99,
        reward_scale: float = 0.2,
        num_particles: int = 32,
        cuda_graphs: bool = True,
        compile_acting: bool = False,
    ) -> None:
        super().__init__()
        self.cuda_graphs = cuda_graphs
        self.compile_acting = compile_acting
        self._graphed_acting: dict[tuple[int, bool], GraphedCall] = {}
        self._compiled_acting: Callable | None = None
        self.policy = policy
        self.ema_policy = copy.deepcopy(policy).requires_grad_(False)
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.gamma = gamma
        self.reward_scale = reward_scale
        self.num_particles = num_particles

    def q_value(
        self, observation: torch.Tensor, action: torch.Tensor, target: bool = False
    ) -> torch.Tensor:
        """min over the ensemble of Q(s, a) for `[*B, obs]`, `[*B, act]` -> `[*B]`."""
        critic = self.target_critic if target else self.critic
        flat_obs = observation.reshape(-1, observation.shape[-1])
        flat_act = action.reshape(-1, action.shape[-1])
        return critic(flat_obs, flat_act).min(dim=0).values.reshape(action.shape[:-1])

    @torch.no_grad()
    def act(
        self,
        observation: torch.Tensor,
        noise_std: float = 0.0,
        policy: DiffusionPolicy | None = None,
        compiled: bool | None = None,
    ) -> torch.Tensor:
        """The acting rule: best of `num_particles` samples by min-Q, plus Gaussian noise, clipped.

        `observation [B, obs] -> action [B, act]`; all B * N candidates in one batch. On a
        GPU (with `cuda_graphs`, outside autocast) the whole rule replays from a CUDA
        graph per batch size: same computation, one launch instead of ~500. Elsewhere,
        `compiled` (default: `compile_acting`, i.e. `algo.compile`) runs it as one
        `torch.compile` graph per batch size (`compiled_act`).
        """
        policy = self.policy if policy is None else policy
        compiled = self.compile_acting if compiled is None else compiled
        if self.cuda_graphs and observation.is_cuda and not torch.is_autocast_enabled("cuda"):
            key = (id(policy), noise_std > 0)
            graphed = self._graphed_acting.get(key)
            if graphed is None:
                add_noise = noise_std > 0
                graphed = self._graphed_acting[key] = GraphedCall(
                    lambda obs, std: self._act(obs, std, policy, add_noise)
                )
            std = torch.full((1, 1), float(noise_std), device=observation.device)
            return graphed(observation, std)
        if compiled and not torch.is_autocast_enabled(observation.device.type):
            return self.compiled_act(observation, noise_std, policy)
        return self._act(observation, noise_std, policy, noise_std > 0)

    def compiled_act(
        self, observation: torch.Tensor, noise_std: float, policy: DiffusionPolicy
    ) -> torch.Tensor:
        """The acting rule as one `torch.compile` graph (inductor): on a CPU its ~500
        small operations become ~80 matrix products and ~80 fused loops, without
        Python between them, and each Mish one loop instead of four passes over memory
        (on the updates' 8192-16384 candidate rows, most of a CPU update's time).
        See benchmarks/diffusion.py and docs/diffusion.md, "Cost".

        The random numbers are drawn outside the graph, in eager's order and shapes, so
        a seed gives the same actions compiled or not (to float rounding) and leaves the
        generator where eager leaves it. `noise_std` enters as a tensor: the temperature
        changes it during a run without a recompilation. One graph per batch size and
        per exploring/deterministic rule (dynamo specialises on `add_noise`); the first
        call of each compiles (seconds to a minute).
        """
        add_noise = noise_std > 0
        if self._compiled_acting is None:
            # unbound, so a copy of this loss (deepcopy) compiles for its own networks
            self._compiled_acting = torch.compile(type(self)._act, dynamic=False)
        compiled = self._compiled_acting
        rows = observation.shape[0] * self.num_particles
        sampling_noise = policy.sampling_noise(rows, observation.device)
        action_noise = None
        if add_noise:
            action_noise = torch.randn(
                observation.shape[0], policy.act_dim, device=observation.device
            )
        std = torch.tensor(float(noise_std), device=observation.device)
        return compiled(self, observation, std, policy, add_noise, sampling_noise, action_noise)

    def _act(
        self,
        observation: torch.Tensor,
        noise_std: float | torch.Tensor,
        policy: DiffusionPolicy,
        add_noise: bool,
        sampling_noise: torch.Tensor | None = None,
        action_noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        candidates = policy.sample(observation, self.num_particles, noise=sampling_noise)
        obs = observation.unsqueeze(1).expand(*candidates.shape[:2], observation.shape[-1])
        action, _ = best_of_n(candidates, self.q_value(obs, candidates))
        if add_noise:
            if action_noise is None:
                action_noise = torch.randn_like(action)
            action = (action + noise_std * action_noise).clamp(-1, 1)
        return action

    def qvalue_loss(
        self, td: TensorDictBase, noise_std: float = 0.0, next_action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """0.5 * sum over critics of the mean squared Bellman error (no entropy term).

        `next_action` (the acting rule at the next states) is drawn here unless given.
        """
        reward, continuation = reward_and_continuation(td, self.keys)
        with torch.no_grad():
            next_obs = td.get(self.keys.next_observation)
            if next_action is None:
                next_action = self.act(next_obs, noise_std)
            next_q = self.q_value(next_obs, next_action, target=True)
            target_q = self.reward_scale * reward + self.gamma * continuation * next_q
        q = self.critic(td.get(self.keys.observation), td.get(self.keys.action))
        loss = ensemble_l2_loss(q, target_q)
        return loss, {"q_mean": q.detach().mean(), "target_q_mean": target_q.mean()}

    def policy_loss(
        self,
        td: TensorDictBase,
        lam: float,
        noise_std: float = 0.0,
        action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy's RSM loss; `action` (the acting rule at the replay states) is drawn
        there unless given."""
        raise NotImplementedError

    @torch.no_grad()
    def acting_rule_actions(
        self, td: TensorDictBase, noise_std: float, with_policy_states: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The acting rule at the next states (critic target) and, for a policy update, at
        the replay states too, drawn in ONE sampling pass over both batches.

        Both are the same rule with the same networks, so one pass of 2B states instead of
        two passes of B changes no distribution; it halves the T-step loop's per-step cost
        (kernel launches on a GPU, operator overhead on a CPU).
        """
        next_obs = td.get(self.keys.next_observation)
        if not with_policy_states:
            return self.act(next_obs, noise_std), None
        obs = td.get(self.keys.observation)
        actions = self.act(torch.cat([next_obs, obs]), noise_std)
        next_action, action = actions.split([next_obs.shape[0], obs.shape[0]])
        return next_action, action

    def forward(
        self, td: TensorDictBase, lam: float, noise_std: float = 0.0, update_policy: bool = True
    ) -> TensorDict:
        next_action, action = self.acting_rule_actions(td, noise_std, update_policy)
        loss_qvalue, info = self.qvalue_loss(td, noise_std, next_action=next_action)
        out = {"loss_qvalue": loss_qvalue, **info}
        if update_policy:
            loss_policy, policy_info = self.policy_loss(td, lam, noise_std, action=action)
            out.update(loss_policy=loss_policy, **policy_info)
        return TensorDict(out, batch_size=[])

    def update_targets(self, tau: float) -> None:
        polyak_update(self.target_critic, self.critic, tau)

    def update_ema_policy(self, tau: float) -> None:
        polyak_update(self.ema_policy, self.policy, tau)


class DPMDLoss(DiffusionActorCriticLoss):
    """Diffusion Policy Mirror Descent: exponentially Q-weighted denoising score matching.

    Args (besides the shared ones):
        q_norm_rate: update rate of the running mean/std of Q (0.001).

    The released code's normalisation is a variant class, `ReleasedCodeDPMDLoss`.
    """

    def __init__(
        self,
        *args,
        q_norm_rate: float = 0.001,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.q_stats = RunningMeanStd(q_norm_rate)

    def normalized_q(self, q: torch.Tensor) -> torch.Tensor:
        """`(q - mu) / sigma` with the running statistics (the paper's normalisation)."""
        return (q - self.q_stats.mean) / self.q_stats.std

    def weights(self, observation: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
        """Per-sample weights `exp(clip(normalised Q, -3, 3) / lambda)`; override to change them."""
        return torch.exp(self.normalized_q(q).clamp(-WEIGHT_CLIP, WEIGHT_CLIP) / lam)

    def policy_loss(
        self,
        td: TensorDictBase,
        lam: float,
        noise_std: float = 0.0,
        action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = td.get(self.keys.observation)
        with torch.no_grad():
            a0 = self.act(obs, noise_std) if action is None else action
            q = self.q_value(obs, a0)
            self.q_stats.update(q)
            w = self.weights(obs, q, lam)
        t = torch.randint(0, self.policy.schedule.num_steps, (obs.shape[0],), device=obs.device)
        noise = torch.randn_like(a0)
        per_sample = self.policy.denoising_loss_terms(obs, a0, t, noise)
        loss = (w * per_sample).mean()
        return loss, {"weight_mean": w.mean(), "weight_max": w.max()}


class ReleasedCodeDPMDLoss(DPMDLoss):
    """DPMD as the released code computes it: `q - mu / sigma`, an operator-precedence
    bug that keeps Q's raw scale, saturates the clip, and so degenerates DPMD into
    cloning the best-of-N action. For reproducing the released numbers only."""

    def normalized_q(self, q: torch.Tensor) -> torch.Tensor:
        return q - self.q_stats.mean / self.q_stats.std


class SDACLoss(DiffusionActorCriticLoss):
    """Soft Diffusion Actor-Critic: reverse-sampling score matching with softmax weights.

    Args (besides the shared ones):
        num_reverse_samples: M reverse samples per noised action (64).
    """

    def __init__(self, *args, num_reverse_samples: int = 64, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_reverse_samples = num_reverse_samples

    def reverse_samples(
        self, noisy_action: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        """`a0_i = clip((a_t - sqrt(1 - ab_t) eps_i) / sqrt(ab_t), -1, 1)`: `[B, M, act]`."""
        sched = self.policy.schedule
        sqrt_ab = sched.sqrt_alpha_bars[t][:, None, None]
        sqrt_one_minus = sched.sqrt_one_minus_alpha_bars[t][:, None, None]
        return ((noisy_action.unsqueeze(1) - sqrt_one_minus * eps) / sqrt_ab).clamp(-1, 1)

    def policy_loss(
        self,
        td: TensorDictBase,
        lam: float,
        noise_std: float = 0.0,
        action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = td.get(self.keys.observation)
        batch = obs.shape[0]
        with torch.no_grad():
            if action is None:
                action = self.act(obs, noise_std)
            t = torch.randint(0, self.policy.schedule.num_steps, (batch,), device=obs.device)
            noisy = self.policy.schedule.q_sample(action, t, torch.randn_like(action))
            eps = torch.randn(batch, self.num_reverse_samples, action.shape[-1], device=obs.device)
            a0 = self.reverse_samples(noisy, t, eps)
            obs_rep = obs.unsqueeze(1).expand(batch, self.num_reverse_samples, obs.shape[-1])
            w = torch.softmax(self.q_value(obs_rep, a0) / lam, dim=1)  # per (s, a_t)
        predicted = self.policy.eps_net(obs, noisy, t)
        per_sample = (predicted.unsqueeze(1) - eps).pow(2).sum(-1)  # [B, M]
        loss = (w * per_sample).sum(1).mean()
        entropy_proxy = -(w * w.clamp_min(1e-12).log()).sum(1).mean()
        return loss, {"weight_entropy": entropy_proxy}
