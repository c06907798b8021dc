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

from lit_rl.errors import ConfigError
from lit_rl.modules.policy import act_on_numpy


@torch.no_grad()
def record_episode(module: Any, seed: int, path: Path, max_steps: int = 100_000) -> np.ndarray:
    """Roll out `module`'s acting policy for one episode, write its frames to `path` and
    return them (`[T, H, W, 3]` uint8)."""
    import imageio

    from lit_rl.envs.make import make_gym_env

    hp = module.hparams
    try:
        env = make_gym_env(
            hp.env_id, hp.max_episode_steps, render_mode="rgb_array", env_kwargs=hp.env_kwargs
        )
    except Exception as err:  # noqa: BLE001 - renderers fail in many ways
        raise ConfigError(f"eval.video: env '{hp.env_id}' cannot render: {err}") from None
    policy = module.make_policy()
    try:
        observation, _ = env.reset(seed=seed)
        frames = [env.render()]
        for step in range(max_steps):
            action = act_on_numpy(policy, observation, step == 0, True, module.device)
            observation, _, terminated, truncated, _ = env.step(action)
            frames.append(env.render())
            if terminated or truncated:
                break
        fps = int(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    video = np.stack(frames)
    try:
        imageio.mimwrite(path, video, fps=fps, codec="libx264", macro_block_size=1)
    except Exception as err:  # noqa: BLE001 - a missing encoder reports many types
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"eval.video: cannot write {path}: {first_line}") from None
    return video


def preview_gif(
    frames: np.ndarray, max_frames: int = 150, width: int = 160
) -> tuple[bytes, int, int]:
    """A small animated GIF of `frames [T, H, W, 3]` (every k-th frame, downscaled by
    striding), what TensorBoard shows as a video: `(gif, height, width)`."""
    import imageio.v3 as iio

    stride = max(1, -(-len(frames) // max_frames))
    pixels = max(1, -(-frames.shape[2] // width))
    small = np.ascontiguousarray(frames[::stride, ::pixels, ::pixels])
    gif = iio.imwrite("<bytes>", small, extension=".gif", duration=50, loop=0)
    return gif, small.shape[1], small.shape[2]


def send_video(loggers: list, key: str, path: Path, frames: np.ndarray, step: int) -> None:
    """Hand the episode to the loggers that take videos: W&B (`log_video`, the MP4) and
    TensorBoard (an animated GIF summary, shown under Images, as its own video
    summaries are; writing them directly spares the moviepy dependency)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            from tensorboard.compat.proto.summary_pb2 import Summary

            gif, height, width = preview_gif(frames)
            image = Summary.Image(
                height=height, width=width, colorspace=3, encoded_image_string=gif
            )
            summary = Summary(value=[Summary.Value(tag=key, image=image)])
            logger.experiment._get_file_writer().add_summary(summary, step)
            continue
        log_video = getattr(logger, "log_video", None)
        if callable(log_video):
            log_video(key, [str(path)], step=step)
