"""Networks by role. Constructors take dims and sizes, never an env."""

from lit_rl.nets.actors import TanhGaussianActor
from lit_rl.nets.critics import EnsembleQCritic
from lit_rl.nets.mlp import EnsembleLinear, make_mlp

__all__ = ["EnsembleLinear", "EnsembleQCritic", "TanhGaussianActor", "make_mlp"]
