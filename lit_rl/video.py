"""Evaluation videos: one deterministic episode rendered to an MP4 in the run folder.

The episode starts from the evaluation's first initial state (the same env seed) and acts
with the same policy, so the video shows the first evaluation episode. MuJoCo renders
headless through EGL (`import lit_rl` sets `MUJOCO_GL=egl` on a Linux machine without a
display unless the user chose a backend);
MP4 encoding uses the ffmpeg that the `imageio-ffmpeg` package ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from lit_rl.errors import ConfigError


@torch.no_grad()
def record_episode(module: Any, seed: int, path: Path, max_steps: int = 100_000) -> Path:
    """Roll out `module`'s acting policy for one episode and write its frames to `path`."""
    import imageio

    from lit_rl.envs.make import make_gym_env

    hp = module.hparams
    try:
        env = make_gym_env(hp.env_id, hp.max_episode_steps, render_mode="rgb_array")
    except Exception as err:  # noqa: BLE001 - renderers fail in many ways
        raise ConfigError(f"eval.video: env '{hp.env_id}' cannot render: {err}") from None
    policy = module.make_policy()
    try:
        observation, _ = env.reset(seed=seed)
        frames = [env.render()]
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            for step in range(max_steps):
                td = TensorDict(
                    {
                        "observation": torch.as_tensor(observation, dtype=torch.float32),
                        "is_init": torch.tensor([step == 0]),
                    },
                    batch_size=[],
                )
                action = policy(td.to(module.device)).get("action").cpu().numpy()
                observation, _, terminated, truncated, _ = env.step(action)
                frames.append(env.render())
                if terminated or truncated:
                    break
        fps = int(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        imageio.mimwrite(path, np.stack(frames), fps=fps, codec="libx264", macro_block_size=1)
    except Exception as err:  # noqa: BLE001 - a missing encoder reports many types
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"eval.video: cannot write {path}: {first_line}") from None
    return path


def send_video(loggers: list, key: str, path: Path, step: int) -> None:
    """Hand the MP4 to the loggers that take videos (W&B's `log_video`); TensorBoard's
    video summaries need moviepy and are skipped (the MP4 stays in the run folder)."""
    for logger in loggers:
        log_video = getattr(logger, "log_video", None)
        if callable(log_video):
            log_video(key, [str(path)], step=step)
