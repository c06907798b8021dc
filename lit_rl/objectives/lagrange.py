"""Lagrange multipliers for safe RL: the PID controller of Stooke, Achiam & Abbeel
(ICML 2020, "Responsive Safety in Reinforcement Learning by PID Lagrangian Methods").

A plain Lagrangian multiplier is the integral term alone (gradient ascent on the
constraint violation), which lags and makes the cost oscillate around the limit; the
proportional term reacts to the current violation and the derivative term to a rising
cost, damping the oscillation. Per observed episode cost `J`:

    J_p   <- ema_p J_p + (1 - ema_p) J            (smoothed cost for the P term)
    I     <- max(0, I + ki (J - d))
    D     =  max(0, J_d - J_d[delay episodes ago]) (J_d smoothed with ema_d)
    lambda = clamp(kp (J_p - d) + I + kd D, 0, lambda_max)

Defaults follow OmniSafe's `PIDLagrangian` (kp 0.1, ki 0.01, kd 0.01, delay 10, both
EMAs 0.95, max 100), which updates once per epoch with the epoch's mean episode cost;
lit_rl updates once per finished training episode. State lives in buffers, so the
multiplier is checkpointed with the module's weights.
"""

from __future__ import annotations

import torch
from torch import nn


class PIDLagrangian(nn.Module):
    """The multiplier `lambda >= 0` of a cost constraint `J_c <= cost_limit`, by PID."""

    def __init__(
        self,
        cost_limit: float,
        kp: float = 0.1,
        ki: float = 0.01,
        kd: float = 0.01,
        delay: int = 10,
        ema_p: float = 0.95,
        ema_d: float = 0.95,
        init: float = 0.001,
        max_value: float = 100.0,
    ) -> None:
        super().__init__()
        if delay < 1:
            raise ValueError(f"delay must be >= 1, got {delay}")
        self.cost_limit, self.kp, self.ki, self.kd = cost_limit, kp, ki, kd
        self.ema_p, self.ema_d, self.max_value = ema_p, ema_d, max_value
        self.register_buffer("value", torch.tensor(float(init)))
        self.register_buffer("integral", torch.tensor(float(init)))
        self.register_buffer("smoothed_p", torch.tensor(0.0))
        self.register_buffer("smoothed_d", torch.tensor(0.0))
        self.register_buffer("history", torch.zeros(delay))  # smoothed_d, oldest first
        self.register_buffer("updates", torch.tensor(0))

    @torch.no_grad()
    def update(self, episode_cost: float) -> float:
        """Take one episode's cost into account; returns the new multiplier."""
        cost = float(episode_cost)
        if int(self.updates) == 0:  # the first cost starts every average
            self.smoothed_p.fill_(cost)
            self.smoothed_d.fill_(cost)
            self.history.fill_(cost)
        else:
            self.smoothed_p.lerp_(torch.full_like(self.smoothed_p, cost), 1.0 - self.ema_p)
            self.smoothed_d.lerp_(torch.full_like(self.smoothed_d, cost), 1.0 - self.ema_d)
        error = cost - self.cost_limit
        self.integral.fill_(max(0.0, float(self.integral) + self.ki * error))
        derivative = max(0.0, float(self.smoothed_d) - float(self.history[0]))
        self.history.copy_(torch.cat([self.history[1:], self.smoothed_d.view(1)]))
        proportional = self.kp * (float(self.smoothed_p) - self.cost_limit)
        value = proportional + float(self.integral) + self.kd * derivative
        self.value.fill_(min(max(value, 0.0), self.max_value))
        self.updates += 1
        return float(self.value)
