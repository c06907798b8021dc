"""Build everything a recipe describes and fit it: env dims -> module -> callbacks -> Trainer."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lit_rl.callbacks import EnvStepProgressBar, EvalCallback, GracefulInterrupt
from lit_rl.callbacks.interrupt import LAST_CHECKPOINT
from lit_rl.config import RUN_DIR_ENV, to_yaml
from lit_rl.data.datasets import dataset_env_id
from lit_rl.envs.make import env_dims, make_env
from lit_rl.errors import ConfigError
from lit_rl.loggers import METRICS_FILE, make_loggers
from lit_rl.modules import OffPolicyModule, algorithm_class, algorithm_name
from lit_rl.modules.state import checkpoint_counters

DEFAULT_LOGGERS = ["csv", "tensorboard"]
BEST_CHECKPOINT = "best"  # best.ckpt: the best evaluation so far (for eval/export)
DEFAULT_TRAINER: dict[str, Any] = {"accelerator": "auto", "devices": 1, "log_every_n_steps": 1}


def is_ddp_child() -> bool:
    """A process Lightning launched for rank > 0: it joins the parent's run folder.

    torchrun also sets LOCAL_RANK, and its processes may inherit a stale LIT_RL_RUN_DIR
    from the shell; they are not Lightning's children and resolve the folder themselves.
    """
    return (
        "LOCAL_RANK" in os.environ
        and RUN_DIR_ENV in os.environ
        and "TORCHELASTIC_RUN_ID" not in os.environ
    )


def launcher_rank() -> int:
    """This process's global rank when torchrun or SLURM started every rank (0 otherwise)."""
    if "RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return int(os.environ.get("SLURM_PROCID", "0"))
    return 0


def is_primary_process() -> bool:
    """The one process that checks, prepares and (on resume) trims the run folder."""
    return not is_ddp_child() and launcher_rank() == 0


def resolve_run_dir(cfg: dict[str, Any]) -> Path:
    """The run folder; DDP children (LOCAL_RANK set by Lightning) reuse the parent's."""
    if is_ddp_child():
        return Path(os.environ[RUN_DIR_ENV])
    run_dir = Path(cfg.get("run_dir") or f"runs/{cfg['name']}")
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return run_dir


def ensure_fresh_run_dir(run_dir: Path) -> None:
    """Refuse to start a new run in a folder that holds files: it would mix two runs."""
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"run folder {run_dir} is not empty; continue that run with "
            f"`lit-rl run --resume {run_dir}` or choose another run_dir"
        )


def newest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint of `run_dir` with the most updates (`last.ckpt` on a tie)."""
    candidates = sorted(run_dir.glob("*.ckpt"), key=lambda p: p.name != LAST_CHECKPOINT)
    if not candidates:
        raise ConfigError(f"no checkpoint (*.ckpt) in run folder {run_dir} to resume")
    return max(candidates, key=lambda p: checkpoint_counters(p).get("updates", -1))


def resume_target(path: str | Path) -> tuple[Path, Path]:
    """(run folder, checkpoint) for `--resume PATH`, PATH a run folder or a checkpoint."""
    path = Path(path)
    if path.is_dir():
        return path, newest_checkpoint(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint to resume not found: {path}")
    return path.parent, path


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop CSV rows logged after the checkpoint a run resumes from: the resumed run
    logs those updates again, and the curve must not hold them twice."""
    metrics = run_dir / METRICS_FILE
    if not metrics.is_file():
        return
    with metrics.open(newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [row for row in rows if not row.get("step") or float(row["step"]) <= last_step]
    if len(kept) == len(rows):
        return
    with metrics.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


def build_module(cfg: dict[str, Any], run_dir: Path) -> OffPolicyModule:
    """The algorithm's LightningModule with the recipe's hyperparameters."""
    env_cfg = cfg.get("env", {})
    env_id = env_cfg.get("id") or dataset_env_id(cfg["dataset"])
    env_kwargs = dict(env_cfg.get("kwargs") or {}) or None
    probe = make_env(
        env_id, cfg.get("seed", 0), env_cfg.get("max_episode_steps"), env_kwargs=env_kwargs
    )
    obs_dim, act_dim = env_dims(probe)
    probe.close()
    algo = dict(cfg["algo"])
    algo_cls = algorithm_class(algo.pop("name"))
    return algo_cls(
        env_id=env_id,
        obs_dim=obs_dim,
        act_dim=act_dim,
        max_env_steps=cfg.get("max_env_steps", 0),
        seed=cfg.get("seed", 0),
        max_episode_steps=env_cfg.get("max_episode_steps"),
        env_kwargs=env_kwargs,
        run_dir=str(run_dir),
        dataset=cfg.get("dataset"),
        max_updates=cfg.get("max_updates"),
        init_from=cfg.get("init_from"),
        cost_limit=cfg.get("cost_limit"),
        **algo,
    )


def build_callbacks(
    cfg: dict[str, Any], module: OffPolicyModule, run_dir: Path
) -> list[pl.Callback]:
    # periods count the run's clock: env steps online, updates offline
    clock = "every_updates" if module.source.clock == "updates" else "every_env_steps"
    eval_cfg = {clock: 5000, "episodes": 5, **cfg.get("eval", {})}
    ckpt_cfg = {clock: 10_000, "keep": 1, **cfg.get("checkpoint", {})}
    per_tick = module.source.updates_per_clock_tick()
    per_step = module.hparams.updates_per_step
    # global_step moves updates_per_step at a time: keep the period a multiple of it
    every_updates = max(1, round(ckpt_cfg[clock] * per_tick / per_step)) * per_step
    callbacks: list[pl.Callback] = [
        EvalCallback(eval_cfg[clock], eval_cfg["episodes"], eval_cfg.get("video", False)),
        ModelCheckpoint(
            dirpath=run_dir,
            filename="{step}",
            every_n_train_steps=every_updates,
            save_top_k=ckpt_cfg["keep"],
            monitor="step",
            mode="max",
            save_last=False,
        ),
        GracefulInterrupt(run_dir),
    ]
    best = ckpt_cfg.get("best", "eval/return_mean")
    if best is not None:
        # updated after each evaluation (EvalCallback.evaluate_and_publish), never per step
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir,
                filename=BEST_CHECKPOINT,
                monitor=best,
                mode=ckpt_cfg.get("best_mode", "max"),
                save_top_k=1,
                save_last=False,
                enable_version_counter=False,
                auto_insert_metric_name=False,
                every_n_train_steps=0,
                save_on_train_epoch_end=False,
            )
        )
    if cfg.get("early_stopping") is not None:
        stopping = {"mode": "max", **cfg["early_stopping"]}
        callbacks.append(
            EarlyStopping(check_on_train_epoch_end=False, strict=False, verbose=True, **stopping)
        )
    if cfg.get("progress_bar", True):
        callbacks.append(EnvStepProgressBar())
    return callbacks


def build_trainer(cfg: dict[str, Any], module: OffPolicyModule, run_dir: Path) -> pl.Trainer:
    trainer_kwargs = {**DEFAULT_TRAINER, **cfg.get("trainer", {})}
    loggers = make_loggers(cfg.get("logger", DEFAULT_LOGGERS), run_dir)
    return pl.Trainer(
        max_epochs=-1,  # the engine stops at its budget (the source's); an epoch never ends
        logger=loggers or False,
        callbacks=build_callbacks(cfg, module, run_dir),
        default_root_dir=str(run_dir),
        enable_progress_bar=bool(cfg.get("progress_bar", True)),
        enable_model_summary=False,
        **trainer_kwargs,
    )


def load_initial_weights(module: OffPolicyModule, checkpoint: Path) -> None:
    """Offline-to-online: the weights of `checkpoint` (an offline run of the same
    algorithm); optimizers and counters start fresh."""
    from lit_rl.modules.state import load_plain

    saved = load_plain(checkpoint, "lit_rl checkpoint to start from")
    if saved.get("lit_rl_algo") != algorithm_name(type(module)):
        raise ConfigError(
            f"init_from {checkpoint} holds a {saved.get('lit_rl_algo')!r} run; "
            f"this recipe trains {algorithm_name(type(module))!r}"
        )
    try:
        module.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise ConfigError(f"init_from {checkpoint} does not fit this recipe: {reason}") from None


def fit(cfg: dict[str, Any], resume: str | None = None) -> tuple[pl.Trainer, OffPolicyModule, Path]:
    """Run the recipe `cfg` (already validated) and return the trainer, module and run folder.

    A fresh run (`resume=None`) needs an empty or new run folder. A resumed run continues
    in its folder: metrics logged after the checkpoint are dropped, then appended to.
    """
    run_dir = resolve_run_dir(cfg)
    if is_primary_process():
        if resume is None:
            ensure_fresh_run_dir(run_dir)
        else:
            truncate_metrics(run_dir, checkpoint_counters(Path(resume)).get("updates", 0))
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.get("seed", 0), workers=True, verbose=False)
    module = build_module(cfg, run_dir)
    if cfg.get("init_from") is not None and resume is None:
        load_initial_weights(module, Path(cfg["init_from"]))
    trainer = build_trainer(cfg, module, run_dir)
    if trainer.is_global_zero:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        print(f"lit-rl: run folder {run_dir}", flush=True)
    # weights_only: a checkpoint holds tensors and plain values; loading one never runs code
    trainer.fit(module, ckpt_path=resume, weights_only=True)
    return trainer, module, run_dir
