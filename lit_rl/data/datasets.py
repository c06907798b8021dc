"""Offline datasets: D4RL's HDF5 layout and local Minari datasets, as TensorDict transitions.

A file holds actions in the env's own units (as D4RL does); the loader maps them to the
[-1, 1] box every lit_rl policy acts in, with the env's bounds. A dataset becomes one
TensorDict of transitions with the engine's replay keys, plus

    ("next", "action")      the action taken at the next state (SARSA-style critics)
    ("next", "has_action")  whether that action exists (False where the episode ended)
    ("next", "truncated")   the episode was cut by a time limit here
    ("next", "cost")        `infos/cost`, when the file has it

D4RL layout (`observations [N, o]`, `actions [N, a]`, `rewards [N]`, `terminals [N]`,
`timeouts [N]`, optional `next_observations [N, o]` and `infos/*`): a transition ends an
episode where `terminals | timeouts`. Without `next_observations`, the next observation
is the following row, and rows whose next observation is unknown (a timeout, the file's
last row) are dropped, as D4RL's `qlearning_dataset` does. lit_rl's own files add a
`metadata` group (env id, policy, steps, returns, reference returns).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from lit_rl.errors import ConfigError

MINARI_PREFIX = "minari:"
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")

# D4RL's published reference returns (d4rl/infos.py: REF_MIN_SCORE, REF_MAX_SCORE) for
# the Gym-MuJoCo tasks, matched by the dataset name's prefix (`hopper-medium-v2`).
D4RL_REFERENCES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


@dataclasses.dataclass
class OfflineDataset:
    """Transitions (actions in [-1, 1]) and what the file says about them."""

    transitions: TensorDict
    env_id: str | None
    name: str
    ref_random_return: float | None = None
    ref_expert_return: float | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.transitions.batch_size[0])

    def normalized_score(self, episode_return: float) -> float | None:
        """`100 * (R - R_random) / (R_expert - R_random)`, or None without references."""
        return normalized_score(episode_return, self.ref_random_return, self.ref_expert_return)


def normalized_score(
    episode_return: float, random_return: float | None, expert_return: float | None
) -> float | None:
    if random_return is None or expert_return is None or expert_return == random_return:
        return None
    return 100.0 * (episode_return - random_return) / (expert_return - random_return)


def d4rl_references(name: str) -> tuple[float, float] | None:
    """D4RL's (random, expert) returns for a D4RL dataset name such as `hopper-medium-v2`."""
    prefix = name.lower().split("-")[0].split("_")[0]
    return D4RL_REFERENCES.get(prefix)


def action_bounds(env_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The env's own action bounds (before lit_rl rescales actions to [-1, 1])."""
    import gymnasium as gym

    from lit_rl.envs.make import check_env_id

    check_env_id(env_id)
    env = gym.make(env_id)
    try:
        space = env.action_space
        return np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    finally:
        env.close()


def to_unit_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Env units -> [-1, 1] (clipped: files may hold actions a hair outside the bounds)."""
    return np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)


def to_env_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] -> env units."""
    return low + (np.asarray(actions, np.float64) + 1.0) * 0.5 * (high - low)


def transitions_from_arrays(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    next_observations: np.ndarray | None = None,
    costs: np.ndarray | None = None,
) -> TensorDict:
    """Transitions of a flat D4RL-style step table (actions already in [-1, 1])."""
    n = len(observations)
    terminals, timeouts = terminals.astype(bool), timeouts.astype(bool)
    last = np.zeros(n, bool)
    last[-1] = True
    ends = terminals | timeouts | last
    keep = np.ones(n, bool)
    if next_observations is None:
        next_observations = np.concatenate([observations[1:], observations[-1:]], axis=0)
        keep = ~((timeouts | last) & ~terminals)  # the next observation is unknown there
    next_actions = np.concatenate([actions[1:], actions[-1:]], axis=0)
    data = {
        "observation": observations,
        "action": actions,
        ("next", "observation"): next_observations,
        ("next", "reward"): rewards.reshape(n, 1),
        ("next", "terminated"): terminals.reshape(n, 1),
        ("next", "truncated"): ((timeouts | last) & ~terminals).reshape(n, 1),
        ("next", "done"): ends.reshape(n, 1),
        ("next", "action"): next_actions,
        ("next", "has_action"): (~ends).reshape(n, 1),
    }
    if costs is not None:
        data[("next", "cost")] = costs.reshape(n, 1)
    out = TensorDict({}, batch_size=[int(keep.sum())])
    for key, value in data.items():
        value = np.asarray(value)[keep]
        dtype = torch.bool if value.dtype == bool else torch.float32
        out.set(key, torch.as_tensor(value, dtype=dtype))
    return out


def _fail(path: Path | str, message: str) -> ConfigError:
    return ConfigError(f"dataset {path}: {message}")


def _read_array(file, key: str, path: Path, rows: int | None, width: int | None) -> np.ndarray:
    """`file[key]` checked for presence and shape (`[rows]` or `[rows, width]`)."""
    import h5py

    if key not in file or not isinstance(file[key], h5py.Dataset):
        raise _fail(path, f"missing key '{key}' (D4RL layout: {', '.join(REQUIRED_KEYS)})")
    value = np.asarray(file[key][()])
    if width is None and value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    expected = "[N]" if width is None else f"[N, {width}]"
    if (width is None and value.ndim != 1) or (width is not None and value.ndim != 2):
        raise _fail(path, f"'{key}' has shape {list(value.shape)}, expected {expected}")
    if width is not None and width > 0 and value.shape[1] != width:
        raise _fail(path, f"'{key}' has shape {list(value.shape)}, expected [N, {width}]")
    if rows is not None and len(value) != rows:
        raise _fail(path, f"'{key}' has {len(value)} rows, 'observations' has {rows}")
    if not np.isfinite(value.astype(np.float64)).all():
        raise _fail(path, f"'{key}' holds NaN or inf values")
    return value


def read_metadata(file) -> dict[str, Any]:
    """The `metadata` group's attributes as plain Python values (empty when absent)."""
    group = file.get("metadata")
    if group is None:
        return {}
    out = {}
    for key, value in group.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


def read_d4rl_hdf5(path: str | os.PathLike, env_id: str | None = None) -> OfflineDataset:
    """A D4RL-layout HDF5 file as an `OfflineDataset`.

    Args:
        path: the file.
        env_id: the Gymnasium id its actions belong to; defaults to the file's
            `metadata` env id (D4RL's own files have none: pass `env.id`).

    Raises:
        ConfigError: (one line) the file is missing, not HDF5, lacks a key or has a
            mis-shaped one, or its dimensions do not match the env.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise _fail(path, f"not an HDF5 file ({str(err).splitlines()[0][:120]})") from None
    with file:
        metadata = read_metadata(file)
        env_id = env_id or metadata.get("env_id")
        if not env_id:
            raise _fail(path, "no env id in its metadata; give it with env.id=ID")
        low, high = action_bounds(env_id)
        from lit_rl.envs.make import make_gym_env

        probe = make_gym_env(env_id)
        obs_dim = int(np.prod(probe.observation_space.shape))
        probe.close()
        observations = _read_array(file, "observations", path, None, obs_dim)
        n = len(observations)
        actions = _read_array(file, "actions", path, n, len(low))
        rewards = _read_array(file, "rewards", path, n, None)
        terminals = _read_array(file, "terminals", path, n, None)
        timeouts = _read_array(file, "timeouts", path, n, None)
        next_observations = None
        if "next_observations" in file:
            next_observations = _read_array(file, "next_observations", path, n, obs_dim)
        costs = None
        if "infos" in file and "cost" in file["infos"]:
            costs = _read_array(file["infos"], "cost", path, n, None)
    if n == 0:
        raise _fail(path, "holds no transitions")
    transitions = transitions_from_arrays(
        observations.astype(np.float32),
        to_unit_actions(actions.astype(np.float64), low, high).astype(np.float32),
        rewards.astype(np.float32),
        terminals,
        timeouts,
        None if next_observations is None else next_observations.astype(np.float32),
        None if costs is None else costs.astype(np.float32),
    )
    refs = (metadata.get("ref_random_return"), metadata.get("ref_expert_return"))
    if None in refs:
        refs = d4rl_references(path.stem) or refs
    return OfflineDataset(transitions, env_id, path.stem, refs[0], refs[1], metadata)


def read_minari(name: str, env_id: str | None = None) -> OfflineDataset:
    """A local Minari dataset (`minari.load_dataset`, never downloading) as transitions."""
    try:
        import minari
    except ImportError:  # pragma: no cover - minari is a dependency
        raise ConfigError("minari datasets need the `minari` package") from None
    local = minari.list_local_datasets()
    if name not in local:
        raise ConfigError(
            f"no local Minari dataset '{name}' (local: {', '.join(sorted(local)) or 'none'}; "
            "lit_rl never downloads: make one with `lit-rl collect ... --minari NAME`)"
        )
    dataset = minari.load_dataset(name)
    spec = dataset.spec.env_spec
    env_id = env_id or (spec.id if spec is not None else None)
    if not env_id:
        raise ConfigError(f"minari:{name} names no env; give it with env.id=ID")
    low, high = action_bounds(env_id)
    names = ("obs", "next", "act", "rew", "term", "trunc")
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for episode in dataset.iterate_episodes():
        obs = np.asarray(episode.observations, np.float32)
        columns["obs"].append(obs[:-1])
        columns["next"].append(obs[1:])
        columns["act"].append(np.asarray(episode.actions, np.float64).reshape(len(obs) - 1, -1))
        columns["rew"].append(np.asarray(episode.rewards, np.float32))
        columns["term"].append(np.asarray(episode.terminations, bool))
        trunc = np.asarray(episode.truncations, bool).copy()
        trunc[-1] |= not episode.terminations[-1]  # an episode's last step ends it
        columns["trunc"].append(trunc)
    if not columns["obs"]:
        raise ConfigError(f"minari:{name} holds no episodes")
    arrays = {key: np.concatenate(value) for key, value in columns.items()}
    transitions = transitions_from_arrays(
        arrays["obs"],
        to_unit_actions(arrays["act"], low, high).astype(np.float32),
        arrays["rew"],
        arrays["term"],
        arrays["trunc"],
        arrays["next"],
    )
    refs = (None, None)
    metadata = dict(getattr(dataset.storage, "metadata", {}) or {})
    if "ref_min_score" in metadata and "ref_max_score" in metadata:
        refs = (float(metadata["ref_min_score"]), float(metadata["ref_max_score"]))
    return OfflineDataset(transitions, env_id, name, refs[0], refs[1], metadata)


def load_dataset(spec: str, env_id: str | None = None) -> OfflineDataset:
    """`spec` is a path to a D4RL-layout HDF5 file or `minari:NAME`."""
    if spec.startswith(MINARI_PREFIX):
        return read_minari(spec[len(MINARI_PREFIX) :], env_id)
    return read_d4rl_hdf5(spec, env_id)


def dataset_env_id(spec: str) -> str:
    """The env id a dataset names in its metadata (arrays are not read).

    Raises:
        ConfigError: (one line) the dataset is missing or names no env.
    """
    if spec.startswith(MINARI_PREFIX):
        return read_minari(spec[len(MINARI_PREFIX) :]).env_id
    import h5py

    if not Path(spec).is_file():
        raise _fail(spec, "file not found")
    try:
        with h5py.File(spec, "r") as file:
            env_id = read_metadata(file).get("env_id")
    except OSError as err:
        raise _fail(spec, f"not an HDF5 file ({str(err).splitlines()[0][:120]})") from None
    if not env_id:
        raise _fail(spec, "no env id in its metadata; give it with env.id=ID")
    return env_id
