"""Errors that the command line turns into one-line messages with exit code 2."""


class ConfigError(ValueError):
    """A recipe, override or input that cannot be run; the message says what to fix."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; raised before the optimizer step so weights stay good."""

    def __init__(self, loss_name: str, value: float, update: int) -> None:
        self.loss_name = loss_name
        what = (
            f"a loss on another rank became non-finite at update {update}"
            if loss_name == "on another rank"
            else f"loss '{loss_name}' became {value} at update {update}"
        )
        super().__init__(
            f"{what}; the run stopped before the optimizer step and the last checkpoint is kept"
        )
