"""Goal navigation among hazards (Safety Gym's Goal task), as MuJoCo robots of our own.

A robot on a flat floor drives to a goal; reaching it (centre within `goal_radius`)
pays `goal_reward` and places a new goal, so an episode (1000 steps by default) can
reach many goals. The dense reward is the progress `distance_reward * (previous distance
- distance)`. Circular hazards lie on the floor: the robot may drive through them, at a
cost. The floor ends `0.5` beyond the arena: the robot stops at its edge (a wall), so no
policy can drive off to where observations grow without bound.

Cost (Safety Gym's hazards): the penetration `sum_i max(0, hazard_radius - d_i)` over
hazards at distance `d_i` from the robot's centre; with `cost_indicator` (default, as
Safety Gym's `constrain_indicator`) the cost is 1 at each step inside any hazard, else 0,
so an episode's cost counts the steps spent in hazards.

Observation (ego-centric, so a planner computes the cost of a predicted observation with
`cost_from_observation`): the robot's velocity in its own frame (forward, left), its
turn rate, the goal's position in the robot's frame, then each hazard's position in the
robot's frame (`2 * num_hazards` numbers, in a fixed order).

Robots (2 actions each, in [-1, 1]):
- point: a sphere on two slide joints and a hinge; action = (forward force, turn rate).
- car: a body pushed by two thrusters beside its axis (a differential drive); action =
  (left, right) thrust: equal thrusts drive straight, unequal ones turn it.

Layouts (hazards, robot start, goal) are drawn from the env's RNG at each reset, inside
`[-arena, arena]^2`, with hazards apart from each other and from the start and goal.
`randomize_layout=False` (Safety Gym's flag of that name) keeps one layout, the hazards,
start and heading drawn from `layout_seed`, for every episode; goals stay random.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

ROBOT_XML = {
    "point": """
    <body name="robot" pos="0 0 0.1">
      <joint name="x" type="slide" axis="1 0 0" damping="5.0"/>
      <joint name="y" type="slide" axis="0 1 0" damping="5.0"/>
      <joint name="heading" type="hinge" axis="0 0 1" damping="0.02"/>
      <geom name="body" type="sphere" size="0.1" mass="1" rgba="0.8 0.3 0.3 1"/>
      <geom name="nose" type="box" pos="0.1 0 0" size="0.04 0.02 0.02" mass="0.01"/>
      <site name="robot" pos="0 0 0" size="0.01"/>
    </body>""",
    "car": """
    <body name="robot" pos="0 0 0.1">
      <joint name="x" type="slide" axis="1 0 0" damping="5.0"/>
      <joint name="y" type="slide" axis="0 1 0" damping="5.0"/>
      <joint name="heading" type="hinge" axis="0 0 1" damping="0.02"/>
      <geom name="body" type="box" size="0.12 0.08 0.04" mass="1" rgba="0.3 0.3 0.8 1"/>
      <site name="robot" pos="0 0 0" size="0.01"/>
      <site name="left" pos="0 0.08 0" size="0.01"/>
      <site name="right" pos="0 -0.08 0" size="0.01"/>
    </body>""",
}
ACTUATOR_XML = {
    "point": """
    <motor name="forward" site="robot" gear="5 0 0 0 0 0" ctrlrange="-1 1" ctrllimited="true"/>
    <velocity name="turn" joint="heading" gear="1" kv="0.05" ctrlrange="-3 3"
              ctrllimited="true"/>""",
    "car": """
    <motor name="left" site="left" gear="2.5 0 0 0 0 0" ctrlrange="-1 1" ctrllimited="true"/>
    <motor name="right" site="right" gear="2.5 0 0 0 0 0" ctrlrange="-1 1"
           ctrllimited="true"/>""",
}
# the point's turn actuator takes a turn rate in [-3, 3] rad/s from an action in [-1, 1]
ACTION_SCALE = {"point": np.array([1.0, 3.0]), "car": np.array([1.0, 1.0])}
VELOCITY_SCALE = 1.0  # observations are O(1) without normalisation
# Slides are damped to a 0.2 s (5-step) time constant with a top speed of 1 m/s: a robot
# that coasts for a second (damping 1, as first built) cannot brake within a planner's
# 8-step horizon, and safe LOOP drove into hazards it saw only once no plan avoided them.


def _model_xml(
    robot: str, num_hazards: int, arena: float, hazard_radius: float, goal_radius: float
) -> str:
    hazards = "".join(
        f'<site name="hazard{i}" type="cylinder" size="{hazard_radius} 0.002" '
        f'pos="0 0 0.002" rgba="0.2 0.2 1 0.6"/>'
        for i in range(num_hazards)
    )
    return f"""
<mujoco model="lit_rl_{robot}_goal">
  <option timestep="0.01"><flag contact="disable"/></option>
  <visual><global offwidth="512" offheight="512"/></visual>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="{arena + 0.5} {arena + 0.5} 0.1"
          rgba="0.85 0.85 0.85 1"/>
    <site name="goal" type="cylinder" size="{goal_radius} 0.003" pos="0 0 0.003"
          rgba="0.2 0.9 0.2 0.6"/>
    {hazards}
    {ROBOT_XML[robot]}
  </worldbody>
  <actuator>{ACTUATOR_XML[robot]}</actuator>
</mujoco>"""


def hazard_cost(distances: torch.Tensor | np.ndarray, hazard_radius: float, indicator: bool):
    """Per-step cost from the distances `[..., num_hazards]` to each hazard's centre."""
    if isinstance(distances, np.ndarray):
        distances = torch.from_numpy(distances)
    penetration = (hazard_radius - distances).clamp_min(0.0).sum(-1)
    return (penetration > 0).to(distances.dtype) if indicator else penetration


class SafeGoalEnv(gym.Env):
    """A robot, a goal and hazards; see the module docstring for reward, cost and
    observation. `cost_from_observation` is the cost as a function of an observation
    (torch, any leading shape), which safe planners use on predicted observations."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        robot: str = "point",
        num_hazards: int = 8,
        arena: float = 1.5,
        hazard_radius: float = 0.2,
        goal_radius: float = 0.3,
        goal_reward: float = 1.0,
        distance_reward: float = 1.0,
        cost_indicator: bool = True,
        randomize_layout: bool = True,
        layout_seed: int = 0,
        frame_skip: int = 4,
        render_mode: str | None = None,
    ) -> None:
        if robot not in ROBOT_XML:
            raise ValueError(f"robot must be one of {sorted(ROBOT_XML)}, got {robot!r}")
        for name, flag in (
            ("cost_indicator", cost_indicator),
            ("randomize_layout", randomize_layout),
        ):
            # a YAML typo (`flase`) arrives as a string, which would read as true
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be true or false, got {flag!r}")
        self.robot, self.num_hazards, self.arena = robot, num_hazards, arena
        self.hazard_radius, self.goal_radius = hazard_radius, goal_radius
        self.goal_reward, self.cost_indicator = goal_reward, cost_indicator
        self.distance_reward = distance_reward
        self.randomize_layout, self.layout_seed = randomize_layout, layout_seed
        self.frame_skip, self.render_mode = frame_skip, render_mode
        self.model = mujoco.MjModel.from_xml_string(
            _model_xml(robot, num_hazards, arena, hazard_radius, goal_radius)
        )
        self.data = mujoco.MjData(self.model)
        self._action_scale = ACTION_SCALE[robot]
        obs_dim = 5 + 2 * num_hazards
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._goal_site = self.model.site("goal").id
        self._hazard_sites = [self.model.site(f"hazard{i}").id for i in range(num_hazards)]
        self.hazards = np.zeros((num_hazards, 2))
        self.goal = np.zeros(2)
        self.last_distance = 0.0
        self.goals_reached = 0
        self._renderer = None

    # ------------------------------------------------------------------ layout
    def _free_point(
        self,
        taken: list[tuple[np.ndarray, float]],
        clearance: float,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """A uniform point of the arena at least `clearance + r` from each `(point, r)`."""
        rng = self.np_random if rng is None else rng
        for _ in range(10_000):
            point = rng.uniform(-self.arena, self.arena, size=2)
            if all(np.linalg.norm(point - other) >= clearance + r for other, r in taken):
                return point
        raise RuntimeError("no free place in the arena: fewer or smaller hazards")

    def _hazard_places(self) -> list[tuple[np.ndarray, float]]:
        return [(h, self.hazard_radius) for h in self.hazards]

    def _place_goal(self) -> None:
        robot = self.position()
        taken = [*self._hazard_places(), (robot, 2 * self.goal_radius)]
        self.goal = self._free_point(taken, self.goal_radius)
        self.model.site_pos[self._goal_site, :2] = self.goal
        self.last_distance = float(np.linalg.norm(self.goal - robot))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        # Safety Gym's `randomize_layout=False`: every episode has the same hazards, start
        # and heading (drawn from `layout_seed`); goals still come from the env's RNG
        layout_rng = (
            self.np_random if self.randomize_layout else np.random.default_rng(self.layout_seed)
        )
        taken: list[tuple[np.ndarray, float]] = []
        for i in range(self.num_hazards):
            self.hazards[i] = self._free_point(taken, self.hazard_radius, layout_rng)
            taken.append((self.hazards[i], self.hazard_radius))
            self.model.site_pos[self._hazard_sites[i], :2] = self.hazards[i]
        start = self._free_point(taken, 0.1, layout_rng)
        self.data.qpos[:3] = [start[0], start[1], layout_rng.uniform(-np.pi, np.pi)]
        mujoco.mj_forward(self.model, self.data)
        self.goals_reached = 0
        self._place_goal()
        return self.observation(), {"cost": 0.0, "goals_reached": 0}

    # ------------------------------------------------------------------- step
    def position(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    def _to_robot_frame(self, vectors: np.ndarray) -> np.ndarray:
        heading = self.data.qpos[2]
        cos, sin = np.cos(heading), np.sin(heading)
        rotation = np.array([[cos, sin], [-sin, cos]])  # world -> robot frame
        return vectors @ rotation.T

    def observation(self) -> np.ndarray:
        position = self.position()
        velocity = self._to_robot_frame(self.data.qvel[:2]) * VELOCITY_SCALE
        goal = self._to_robot_frame(self.goal - position)
        hazards = self._to_robot_frame(self.hazards - position).reshape(-1)
        return np.concatenate([velocity, self.data.qvel[2:3], goal, hazards])

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.data.ctrl[:] = action * self._action_scale
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._stop_at_walls()
        position = self.position()
        distance = float(np.linalg.norm(self.goal - position))
        reward = self.distance_reward * (self.last_distance - distance)
        self.last_distance = distance
        if distance <= self.goal_radius:
            reward += self.goal_reward
            self.goals_reached += 1
            self._place_goal()
        distances = np.linalg.norm(self.hazards - position, axis=-1)
        cost = float(hazard_cost(distances, self.hazard_radius, self.cost_indicator))
        info = {"cost": cost, "goals_reached": self.goals_reached}
        return self.observation(), reward, False, False, info

    def _stop_at_walls(self) -> None:
        """Hold the robot on the floor: clamp its position, zero the outward velocity."""
        edge = self.arena + 0.5
        for axis in range(2):
            position = self.data.qpos[axis]
            if abs(position) > edge:
                self.data.qpos[axis] = np.sign(position) * edge
                if self.data.qvel[axis] * position > 0:
                    self.data.qvel[axis] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def cost_from_observation(self, observation: torch.Tensor) -> torch.Tensor:
        """The step cost of being where `observation [..., obs_dim]` says the robot is
        (the hazards' ego-centric positions are its last `2 * num_hazards` numbers)."""
        hazards = observation[..., 5:].unflatten(-1, (self.num_hazards, 2))
        return hazard_cost(hazards.norm(dim=-1), self.hazard_radius, self.cost_indicator)

    # ------------------------------------------------------- checkpoint/render
    def task_state(self) -> dict[str, Any]:
        """What a resumed run needs besides the physics (`lit_rl.envs.snapshot`)."""
        return {
            "hazards": torch.from_numpy(self.hazards.copy()),
            "goal": torch.from_numpy(self.goal.copy()),
            "last_distance": self.last_distance,
            "goals_reached": self.goals_reached,
        }

    def load_task_state(self, state: dict[str, Any]) -> None:
        self.hazards = state["hazards"].numpy().copy()
        self.goal = state["goal"].numpy().copy()
        self.last_distance = float(state["last_distance"])
        self.goals_reached = int(state["goals_reached"])
        self.model.site_pos[self._goal_site, :2] = self.goal
        for site, hazard in zip(self._hazard_sites, self.hazards, strict=True):
            self.model.site_pos[site, :2] = hazard

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 256, 256)
        camera = mujoco.MjvCamera()
        camera.lookat[:] = [0.0, 0.0, 0.0]
        camera.distance, camera.elevation, camera.azimuth = 2.6 * self.arena + 1, -90, 90
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
