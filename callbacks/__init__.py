"""Lightning callbacks for lit_rl runs (installed as `lit_rl.callbacks`).

Each holds logic that can be removed without changing learning.
"""

from lit_rl.callbacks.evaluation import EvalCallback, evaluate_episodes, evaluate_policy
from lit_rl.callbacks.interrupt import GracefulInterrupt
from lit_rl.callbacks.progress import EnvStepProgressBar

__all__ = [
    "EnvStepProgressBar",
    "EvalCallback",
    "GracefulInterrupt",
    "evaluate_episodes",
    "evaluate_policy",
]
