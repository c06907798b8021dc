"""lit_rl: deep reinforcement learning with expressive policies on PyTorch Lightning."""

from lit_rl import registration  # noqa: F401  (registers the lit_rl/Safe* env ids)
from lit_rl.errors import ConfigError, NonFiniteLossError

__version__ = "0.1.0"
__all__ = ["ConfigError", "NonFiniteLossError", "__version__"]
