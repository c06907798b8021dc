"""The offline source: a fixed dataset in a replay buffer, no env steps.

Every rank loads the whole dataset (`lit_rl.data.datasets.load_dataset`) into TorchRL
storage on the module's device and samples its own batches from it with its own
sampling stream, so DDP ranks see different batches of the same data. The run's clock
is the update count; it ends after `max_updates` updates. Nothing but the RNG is
checkpointed per rank: the dataset is read again from its file on resume (its size and
first rows are checked, so a resume with another file is refused).
"""

from __future__ import annotations

import math
from typing import Any

from lit_rl.data.datasets import OfflineDataset, load_dataset
from lit_rl.data.replay import make_replay_buffer
from lit_rl.errors import ConfigError
from lit_rl.sources.base import DataSource


def dataset_fingerprint(dataset: OfflineDataset) -> dict[str, Any]:
    """Size and a checksum of the first rows: enough to notice a different file."""
    head = dataset.transitions[: min(len(dataset), 1000)]
    checksum = float(head.get("observation").double().sum() + head.get("action").double().sum())
    return {"rows": len(dataset), "checksum": checksum}


class DatasetSource(DataSource):
    """Sample updates from `module.hparams.dataset` until `max_updates` are done."""

    clock = "updates"

    def __init__(self, module, dataset: OfflineDataset | None = None) -> None:
        super().__init__(module)
        self.dataset = dataset

    def load(self) -> OfflineDataset:
        if self.dataset is None:
            hp = self.module.hparams
            self.dataset = load_dataset(hp.dataset, hp.env_id)
        return self.dataset

    def start(self) -> None:
        module, hp = self.module, self.module.hparams
        transitions = self.load().transitions
        keys = [key for key in module.dataset_keys() if key in transitions.keys(True)]
        buffer = make_replay_buffer(len(transitions), hp.batch_size, device=module.device)
        buffer.extend(transitions.select(*keys))
        module.replay_buffer = buffer

    def ready_for_update(self) -> bool:
        return self.module.updates < self.module.hparams.max_updates

    def finished(self) -> bool:
        return self.module.updates >= self.module.hparams.max_updates

    def progress(self) -> int:
        return self.module.updates

    def total(self) -> int:
        return self.module.hparams.max_updates

    def total_updates(self, world_size: int = 1) -> int:
        return self.module.hparams.max_updates

    def rank_state(self) -> dict[str, Any]:
        return {"dataset": dataset_fingerprint(self.load())}

    def load_rank_state(self, saved: dict[str, Any]) -> None:
        expected, found = saved.get("dataset"), dataset_fingerprint(self.load())
        same_sum = expected is None or math.isclose(
            expected["checksum"], found["checksum"], rel_tol=1e-9, abs_tol=1e-6
        )
        if expected is not None and (expected["rows"] != found["rows"] or not same_sum):
            raise ConfigError(
                f"dataset {self.module.hparams.dataset} differs from the one this run was "
                f"trained on ({found['rows']} rows, the run had {expected['rows']})"
            )
