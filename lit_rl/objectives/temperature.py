"""The temperature of DPMD and SDAC, as the released code learns it.

The released code (Ma et al., ICML 2025) learns `log alpha` with Adam (lr 7e-3, one Adam
step every 250 updates) on a loss that depends on no data:

    L(log alpha) = -log alpha * (-H(alpha) + H_target),   H_target = -0.9 d,
    H(alpha) = d * (0.5 log(2 pi e) + log(exploration_noise * alpha)),

the entropy of the acting noise N(0, (0.1 alpha)^2 I), treated as a constant in the
gradient (SAC's alpha loss). The gradient `d (H(alpha) - H_target)` vanishes at
`0.1 alpha = exp(-0.9 - 0.5 log(2 pi e))`, i.e. alpha ~ 0.984: the temperature falls from
5 at Adam's full step size first, then ever more slowly, and settles there instead of
decaying forever (a plain exponential decay reaches alpha ~ 0.02 at 1M env steps, where
DPMD's weights `exp(3 / lambda)` overflow).

Because the loss sees no data, alpha after `k` Adam steps is a fixed sequence: it is
computed here by running those Adam steps in double precision, so alpha at any update is
known before a run starts (recipes test their last update), and a resumed run needs no
optimizer state to continue the same temperature.
"""

from __future__ import annotations

import math

GAUSSIAN_ENTROPY_CONST = 0.5 * math.log(2 * math.pi * math.e)  # per dimension, std 1
ADAM_BETAS = (0.9, 0.999)  # optax/torch defaults, as in the released code
ADAM_EPS = 1e-8


class NoiseEntropyTemperature:
    """alpha after `updates` updates: Adam on the acting-noise entropy loss (see module doc).

    Args:
        alpha_init: alpha before the first Adam step (5 in the paper).
        lr: Adam learning rate of `log alpha` (7e-3); 0 keeps alpha fixed.
        update_every: updates between Adam steps (250).
        exploration_noise: acting noise std is `exploration_noise * alpha` (0.1).
        target_entropy_per_dim: H_target / d (-0.9).
        alpha_min: a floor, so no setting can drive the weights to overflow.

    The action dimension cancels out of Adam's normalised step (up to its epsilon), so
    the trajectory does not depend on it.
    """

    def __init__(
        self,
        alpha_init: float = 5.0,
        lr: float = 7e-3,
        update_every: int = 250,
        exploration_noise: float = 0.1,
        target_entropy_per_dim: float = -0.9,
        alpha_min: float = 1e-3,
    ) -> None:
        self.alpha_init = alpha_init
        self.lr = lr
        self.update_every = update_every
        self.exploration_noise = exploration_noise
        self.target_entropy_per_dim = target_entropy_per_dim
        self.alpha_min = alpha_min
        self._trajectory = [alpha_init]  # alpha after k Adam steps, k = index
        self._adam = (math.log(alpha_init), 0.0, 0.0)  # log alpha, first and second moments

    @property
    def fixed_point(self) -> float:
        """The alpha at which the loss's gradient is zero (~0.984 at the defaults)."""
        if self.exploration_noise <= 0:
            return math.inf
        log_std = self.target_entropy_per_dim - GAUSSIAN_ENTROPY_CONST
        return math.exp(log_std) / self.exploration_noise

    def gradient(self, log_alpha: float) -> float:
        """dL/d(log alpha) per action dimension: entropy of the acting noise minus the target."""
        std = self.exploration_noise * math.exp(log_alpha)
        return GAUSSIAN_ENTROPY_CONST + math.log(std) - self.target_entropy_per_dim

    def _extend(self, num_steps: int) -> None:
        beta1, beta2 = ADAM_BETAS
        log_alpha, first, second = self._adam
        for step in range(len(self._trajectory), num_steps + 1):
            grad = self.gradient(log_alpha)
            first = beta1 * first + (1 - beta1) * grad
            second = beta2 * second + (1 - beta2) * grad * grad
            first_hat = first / (1 - beta1**step)
            second_hat = second / (1 - beta2**step)
            log_alpha -= self.lr * first_hat / (math.sqrt(second_hat) + ADAM_EPS)
            self._trajectory.append(math.exp(log_alpha))
        self._adam = (log_alpha, first, second)

    def __call__(self, updates: int) -> float:
        """alpha in effect during update number `updates` (0-based)."""
        if self.lr == 0 or self.exploration_noise <= 0:
            return max(self.alpha_min, self.alpha_init)
        num_steps = max(0, updates) // self.update_every
        if num_steps >= len(self._trajectory):
            self._extend(num_steps)
        return max(self.alpha_min, self._trajectory[num_steps])


def hold_then_linear(step: int, hold_steps: int, decay_steps: int, end_factor: float) -> float:
    """Learning-rate factor: 1 for `hold_steps`, then linear to `end_factor` over
    `decay_steps`, then constant (the released policy schedule: 25k, 50k, 0.1)."""
    if step < hold_steps:
        return 1.0
    if decay_steps <= 0:
        return end_factor
    progress = min(1.0, (step - hold_steps) / decay_steps)
    return 1.0 + (end_factor - 1.0) * progress
