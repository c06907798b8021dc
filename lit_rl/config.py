"""Recipes: YAML read with OmegaConf, composed from base recipes, validated before anything runs.

A recipe is a mapping with these top-level keys (see docs/recipes.md):

    defaults: [base/sac.yaml, ...]   recipes merged first, paths relative to this file
    name, seed, max_env_steps, run_dir
    dataset, max_updates             an offline run (instead of max_env_steps)
    init_from                        start online from an offline checkpoint
    cost_limit                       episodic cost limit of a safe run (env with costs)
    env:        {id, max_episode_steps, kwargs}
    algo:       {name, <constructor arguments of the algorithm>}
    trainer:    {<lightning.Trainer arguments>}
    logger:     [csv, tensorboard, {name: wandb, project: ...}]
    eval:       {every_env_steps, episodes}
    checkpoint: {every_env_steps, keep}
    progress_bar: true

A recipe with `experiment: NAME` instead runs one of `lit_rl.experiments` (no env, no
training): its keys are name, seed, run_dir, experiment and a section NAME.

Every error here is a `ConfigError` with a one-line message naming the key.
"""

from __future__ import annotations

import collections.abc
import datetime as _dt
import difflib
import inspect
import os
import secrets
import types
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lit_rl.errors import ConfigError

TOP_LEVEL: dict[str, Any] = {
    "name": str,
    "seed": int,
    "max_env_steps": int,
    "dataset": str,
    "max_updates": int,
    "run_dir": str,
    "env": dict,
    "algo": dict,
    "trainer": dict,
    "logger": list,
    "eval": dict,
    "checkpoint": dict,
    "progress_bar": bool,
    "experiment": str,
    "init_from": str,
    "cost_limit": float | None,
    "early_stopping": dict | None,
}
# kwargs: keyword arguments of gymnasium.make (an env's own options)
ENV_KEYS = {"id": str, "max_episode_steps": int | None, "kwargs": dict | None}
EVAL_KEYS = {"every_env_steps": int, "every_updates": int, "episodes": int, "video": bool}
CHECKPOINT_KEYS = {
    "every_env_steps": int,
    "every_updates": int,
    "keep": int,
    "best": str | None,  # the eval metric best.ckpt follows (null: no best.ckpt)
    "best_mode": str,  # max or min
}
# Lightning's EarlyStopping arguments a recipe may set (it watches an eval metric)
EARLY_STOPPING_KEYS = {
    "monitor": str,
    "mode": str,
    "patience": int,
    "min_delta": float,
    "stopping_threshold": float | None,
    "divergence_threshold": float | None,
}
# Trainer arguments the engine owns: the run's length comes from max_env_steps, and
# run_dir, logger and callbacks have their own recipe keys.
RESERVED_TRAINER_KEYS = {
    "max_epochs",
    "max_steps",
    "min_epochs",
    "min_steps",
    "max_time",
    "callbacks",
    "logger",
    "default_root_dir",
    "enable_checkpointing",
    "enable_progress_bar",
    "limit_train_batches",
    "val_check_interval",
    "check_val_every_n_epoch",
}
# Trainer arguments Lightning refuses under manual optimization (a traceback otherwise).
MANUAL_OPTIMIZATION_TRAINER_KEYS = {
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "accumulate_grad_batches",
}
# Algorithm arguments filled in from elsewhere in the recipe or from the env.
ENGINE_FILLED_KEYS = {
    "env_id",
    "obs_dim",
    "act_dim",
    "max_env_steps",
    "seed",
    "max_episode_steps",
    "env_kwargs",
    "run_dir",
    "dataset",
    "max_updates",
    "init_from",
    "cost_limit",
}


def _now(fmt: str = "%Y-%m-%d_%H-%M-%S") -> str:
    return _dt.datetime.now().strftime(fmt)


def _unique_suffix() -> str:
    """Six hex digits, fresh for every recipe load: runs started in the same second
    (a shell loop over seeds, a job array) get different folders."""
    return secrets.token_hex(3)


RUN_DIR_ENV = "LIT_RL_RUN_DIR"  # lets DDP child processes share the parent's run folder


def launch_id() -> str | None:
    """An id every process of one externally launched multi-process job shares: torchrun's
    `--rdzv-id` (TORCHELASTIC_RUN_ID) or the SLURM job (and step) id; None when this
    process was not started by such a launcher for several processes."""
    if int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))) <= 1:
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return run_id
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        step = os.environ.get("SLURM_STEP_ID")
        return f"{job}.{step}" if step else job
    return None


def _run_id() -> str:
    """The default run folder's own part: time and a random suffix, or, for processes of
    one torchrun/SLURM job (started separately, so their clocks and random suffixes
    differ), the job's shared id, so that every rank picks the same folder."""
    shared = launch_id()
    if shared is not None:
        return f"job-{shared}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and RUN_DIR_ENV not in os.environ:
        raise ConfigError(
            "several processes were launched without a shared job id: give torchrun "
            "--rdzv-id ID (or set run_dir) so every rank writes to the same run folder"
        )
    return f"{_now()}_{_unique_suffix()}"


# omegaconf 2.4 renamed register_new_resolver; support both spellings.
_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
for _name, _resolver in (("now", _now), ("unique", _unique_suffix), ("run_id", _run_id)):
    if not OmegaConf.has_resolver(_name):
        _register(_name, _resolver, use_cache=True)


def _suggest(key: str, valid: collections.abc.Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; valid keys: {', '.join(valid)}"


def _default_path(recipe: Path, item: str) -> Path:
    """A `defaults:` entry: a path relative to the recipe file, else (when no such file
    exists) a shipped recipe's name, so a user's recipe can build on `sac_pendulum`."""
    relative = recipe.parent / item
    if relative.is_file():
        return relative
    from lit_rl.recipe_paths import find_recipe

    try:
        return find_recipe(item)
    except ConfigError:
        return relative  # reported as "recipe file not found: <relative path>"


def _load_file(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load `path` with its `defaults` merged underneath it, depth first."""
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"recipe {path} includes itself through 'defaults'")
    try:
        raw = OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001 - YAML errors have many types
        first_line = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot parse {path}: {first_line}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"recipe {path} must be a mapping of keys to values")
    defaults = raw.pop("defaults", [])
    if isinstance(defaults, str):
        defaults = [defaults]
    merged = OmegaConf.create({})
    for item in defaults:
        merged = OmegaConf.merge(
            merged, _load_file(_default_path(path, str(item)), (*seen, path.resolve()))
        )
    return OmegaConf.merge(merged, raw)


def load_recipe(path: str | Path, overrides: collections.abc.Sequence[str] = ()) -> dict[str, Any]:
    """Read, compose, override, resolve and validate a recipe; return a plain dict."""
    path = Path(path)
    cfg = _load_file(path)
    if "name" not in cfg:
        cfg.name = path.stem
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (for example seed=3)")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        message = str(err).strip().splitlines()[0]
        raise ConfigError(f"recipe {path}: {message}") from None
    validate(resolved, source=str(path))
    return with_algorithm_defaults(resolved)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")


def matches_type(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits an annotation (int for float is fine, bool for int is not)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return isinstance(value, list | tuple) and all(matches_type(v, item_type) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _check_section(section: str, values: Any, schema: dict[str, Any], source: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{section}' must be a mapping, got {values!r}")
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(f"{source}: unknown key '{section}.{key}'{_suggest(key, schema)}")
        if not matches_type(value, schema[key]):
            raise ConfigError(
                f"{source}: '{section}.{key}' must be {_type_name(schema[key])}, got {value!r}"
            )


def algorithm_schema(algo_cls: type) -> dict[str, Any]:
    """Recipe-settable constructor arguments of an algorithm and its engine, with types."""
    schema: dict[str, Any] = {}
    for cls in reversed(algo_cls.__mro__):
        init = cls.__dict__.get("__init__")
        if init is None or cls.__module__.startswith(("lightning", "torch", "builtins")):
            continue
        hints = typing.get_type_hints(init)
        for name, param in inspect.signature(init).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            schema[name] = hints.get(name, param.annotation)
    for name in ENGINE_FILLED_KEYS:
        schema.pop(name, None)
    return schema


def algorithm_defaults(algo_cls: type) -> dict[str, Any]:
    """The default of every recipe-settable argument of an algorithm (subclass wins).

    The constructor signatures are the one home of every default: base recipes state
    only what departs from them, and a loaded recipe lists them all (so `config.yaml`
    and `--print-config` show every value a run used).
    """
    defaults: dict[str, Any] = {}
    for cls in reversed(algo_cls.__mro__):
        init = cls.__dict__.get("__init__")
        if init is None or cls.__module__.startswith(("lightning", "torch", "builtins")):
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty and name not in ENGINE_FILLED_KEYS:
                value = param.default
                defaults[name] = list(value) if isinstance(value, tuple) else value
    return defaults


def with_algorithm_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with its `algo` section completed by the algorithm's defaults."""
    from lit_rl.modules import algorithm_class

    if "experiment" in cfg:
        return cfg
    algo = dict(cfg["algo"])
    name = algo.pop("name")
    return {**cfg, "algo": {"name": name, **algorithm_defaults(algorithm_class(name)), **algo}}


def trainer_schema() -> dict[str, Any]:
    from lightning.pytorch import Trainer

    params = inspect.signature(Trainer.__init__).parameters
    return {k: Any for k in params if k != "self" and k not in RESERVED_TRAINER_KEYS}


def function_schema(function: Any, filled: set[str]) -> dict[str, Any]:
    """Recipe-settable arguments of a function, with their types."""
    hints = typing.get_type_hints(function)
    return {
        name: hints.get(name, param.annotation)
        for name, param in inspect.signature(function).parameters.items()
        if name not in filled
    }


def validate_experiment(cfg: dict[str, Any], source: str) -> None:
    """Check a recipe with `experiment: NAME` (see `lit_rl.experiments`)."""
    from lit_rl.experiments import EXPERIMENT_TOP_LEVEL, EXPERIMENTS

    name = cfg["experiment"]
    if name not in EXPERIMENTS:
        raise ConfigError(
            f"{source}: unknown experiment {name!r}; available: {', '.join(sorted(EXPERIMENTS))}"
        )
    top_level = {key: Any for key in EXPERIMENT_TOP_LEVEL | {name}}
    _check_section("recipe", cfg, top_level, source)
    schema = function_schema(EXPERIMENTS[name], {"run_dir"})
    _check_section(name, cfg.get(name, {}), schema, source)


def validate(cfg: dict[str, Any], source: str = "recipe") -> None:
    """Raise `ConfigError` for unknown keys, wrong types or missing required keys."""
    from lit_rl.modules import algorithm_class

    if "experiment" in cfg:
        validate_experiment(cfg, source)
        return
    _check_section("recipe", cfg, TOP_LEVEL, source)
    offline = cfg.get("dataset") is not None
    budget = "max_updates" if offline else "max_env_steps"
    for required in (budget, "algo") if offline else (budget, "env", "algo"):
        if required not in cfg:
            raise ConfigError(f"{source}: missing required key '{required}'")
    if cfg[budget] <= 0:
        raise ConfigError(f"{source}: '{budget}' must be positive, got {cfg[budget]}")
    wrong_budget = "max_env_steps" if offline else "max_updates"
    if cfg.get(wrong_budget) is not None:
        kind = (
            "offline runs (dataset=...) count updates" if offline else "online runs count env steps"
        )
        raise ConfigError(f"{source}: '{wrong_budget}' does not apply: {kind}; use '{budget}'")
    _check_section("env", cfg.get("env", {}), ENV_KEYS, source)
    if "id" not in cfg.get("env", {}) and not offline:
        raise ConfigError(f"{source}: missing required key 'env.id'")
    from lit_rl.envs.make import check_env_id

    if "id" in cfg.get("env", {}):
        check_env_id(cfg["env"]["id"])
    if offline and cfg.get("init_from") is not None:
        raise ConfigError(
            f"{source}: 'init_from' continues an offline checkpoint online; drop 'dataset'"
        )
    clock = "every_updates" if offline else "every_env_steps"
    for section in ("eval", "checkpoint"):
        other = ({"every_env_steps", "every_updates"} - {clock}) & set(cfg.get(section, {}))
        if other:
            raise ConfigError(
                f"{source}: '{section}.{other.pop()}' does not apply to "
                f"{'an offline' if offline else 'an online'} run; use '{section}.{clock}'"
            )
    if cfg.get("cost_limit") is not None and cfg["cost_limit"] < 0:
        raise ConfigError(f"{source}: 'cost_limit' must be >= 0, got {cfg['cost_limit']}")
    _check_section("eval", cfg.get("eval", {}), EVAL_KEYS, source)
    _check_section("checkpoint", cfg.get("checkpoint", {}), CHECKPOINT_KEYS, source)
    if cfg.get("checkpoint", {}).get("best_mode", "max") not in ("max", "min"):
        raise ConfigError(f"{source}: 'checkpoint.best_mode' must be max or min")
    stopping = cfg.get("early_stopping")
    if stopping is not None:
        _check_section("early_stopping", stopping, EARLY_STOPPING_KEYS, source)
        if "monitor" not in stopping:
            raise ConfigError(f"{source}: 'early_stopping' needs a monitor (e.g. eval/return_mean)")
        if stopping.get("mode", "max") not in ("max", "min"):
            raise ConfigError(f"{source}: 'early_stopping.mode' must be max or min")
    algo = dict(cfg["algo"])
    name = algo.pop("name", None)
    try:
        algo_cls = algorithm_class(name)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    _check_section("algo", algo, algorithm_schema(algo_cls), source)
    trainer = cfg.get("trainer", {})
    if isinstance(trainer, dict):
        for key in trainer:
            if key in RESERVED_TRAINER_KEYS:
                raise ConfigError(
                    f"{source}: 'trainer.{key}' is set by lit_rl (use max_env_steps, run_dir, "
                    "logger, eval or checkpoint instead)"
                )
    for key in MANUAL_OPTIMIZATION_TRAINER_KEYS & set(trainer):
        raise ConfigError(
            f"{source}: 'trainer.{key}' does not apply: lit_rl optimizes manually and "
            "Lightning clips or accumulates gradients only in automatic optimization"
        )
    _check_section("trainer", trainer, trainer_schema(), source)


def to_yaml(cfg: dict[str, Any]) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(cfg))


__all__ = ["ConfigError", "load_recipe", "matches_type", "to_yaml", "validate"]
