"""lit_rl: deep reinforcement learning with expressive policies on PyTorch Lightning."""

import ctypes.util as _ctypes_util
import os as _os
import sys as _sys

# Headless Linux (servers, clusters, CI): MuJoCo renders through EGL (eval videos). MuJoCo
# picks its OpenGL backend once, when first imported, so this must come before it. Only
# where libEGL exists: without it, `import mujoco` itself fails under MUJOCO_GL=egl
# (PyOpenGL raises AttributeError, not ImportError), so training could not even start.
if (
    _sys.platform.startswith("linux")
    and "MUJOCO_GL" not in _os.environ
    and not (_os.environ.get("DISPLAY") or _os.environ.get("WAYLAND_DISPLAY"))
    and _ctypes_util.find_library("EGL") is not None
):
    _os.environ["MUJOCO_GL"] = "egl"

from lit_rl import registration  # noqa: E402, F401  (registers the lit_rl/Safe* env ids)
from lit_rl.errors import ConfigError, NonFiniteLossError  # noqa: E402

__version__ = "0.1.0"
_API = ("train", "load_policy", "export_policy", "TrainResult")


def __getattr__(name: str):
    """`lit_rl.train`, `lit_rl.load_policy`, ... (lit_rl.api, imported on first use)."""
    if name in _API:
        from lit_rl import api

        return getattr(api, name)
    raise AttributeError(f"module 'lit_rl' has no attribute {name!r}")


__all__ = ["ConfigError", "NonFiniteLossError", "__version__", *_API]
