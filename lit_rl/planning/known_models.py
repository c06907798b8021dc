"""Known dynamics as model step functions, for lookahead with a simulator's equations.

A planner takes any `step(obs [B, o], action [B, a]) -> (next_obs, reward [B], terminated [B])`;
these are exact ones. `pendulum_step` reproduces Gymnasium's Pendulum-v1 (actions in
[-1, 1], scaled to the task's +-2 torque as lit_rl's envs do), `PointMass` is a linear
system with quadratic cost whose optimal controller is known in closed form (LQR).
"""

from __future__ import annotations

import torch

PENDULUM_MAX_TORQUE = 2.0
PENDULUM_MAX_SPEED = 8.0
PENDULUM_DT = 0.05
PENDULUM_G = 10.0


def pendulum_step(obs: torch.Tensor, action: torch.Tensor):
    """Pendulum-v1's equations on observations `(cos th, sin th, th_dot)`."""
    cos, sin, speed = obs.unbind(-1)
    theta = torch.atan2(sin, cos)
    torque = PENDULUM_MAX_TORQUE * action[..., 0].clamp(-1.0, 1.0)
    cost = theta**2 + 0.1 * speed**2 + 0.001 * torque**2  # atan2 already wraps theta
    speed = speed + (3 * PENDULUM_G / 2 * torch.sin(theta) + 3.0 * torque) * PENDULUM_DT
    speed = speed.clamp(-PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED)
    theta = theta + speed * PENDULUM_DT
    next_obs = torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=-1)
    return next_obs, -cost, torch.zeros_like(cost, dtype=torch.bool)


class PointMass:
    """A 1-D point mass `x' = x + dt v, v' = v + dt u` with reward `-(s^T Q s + r u^2)`."""

    def __init__(
        self,
        dt: float = 0.1,
        position_cost: float = 1.0,
        speed_cost: float = 0.1,
        action_cost: float = 0.1,
    ) -> None:
        self.A = torch.tensor([[1.0, dt], [0.0, 1.0]])
        self.B = torch.tensor([[0.0], [dt]])
        self.Q = torch.diag(torch.tensor([position_cost, speed_cost]))
        self.R = torch.tensor([[action_cost]])

    def __call__(self, obs: torch.Tensor, action: torch.Tensor):
        reward = -(((obs @ self.Q) * obs).sum(-1) + ((action @ self.R) * action).sum(-1))
        next_obs = obs @ self.A.T + action @ self.B.T
        return next_obs, reward, torch.zeros_like(reward, dtype=torch.bool)

    def riccati(self, gamma: float, iterations: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, K) of the discounted infinite-horizon problem: V(s) = -s^T P s, u* = -K s."""
        A, B, Q, R = (m.double() for m in (self.A, self.B, self.Q, self.R))
        P = Q.clone()
        for _ in range(iterations):
            gain = torch.linalg.solve(R + gamma * B.T @ P @ B, gamma * B.T @ P @ A)
            P = Q + gamma * A.T @ P @ A - gamma * A.T @ P @ B @ gain
        gain = torch.linalg.solve(R + gamma * B.T @ P @ B, gamma * B.T @ P @ A)
        return P.float(), gain.float()

    def optimal_q(self, gamma: float):
        """Q*(s, a) of the discounted problem, as a planner's terminal value."""
        P, _ = self.riccati(gamma)

        def q_value(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            next_obs, reward, _ = self(obs, action)
            return reward - gamma * ((next_obs @ P) * next_obs).sum(-1)

        return q_value


KNOWN_MODELS = {"Pendulum": pendulum_step}


def known_model(env_id: str):
    """The exact step function for `env_id`, or None when lit_rl has none."""
    return KNOWN_MODELS.get(env_id.split("-v")[0])
