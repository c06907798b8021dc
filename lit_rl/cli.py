"""`lit-rl run|eval` and the `lightning run` shim.

    lit-rl run RECIPE.yaml [key=value ...]
    lit-rl run --resume RUN_DIR|CKPT [key=value ...]   (continues in place)
    lit-rl run RECIPE.yaml --init-from CKPT            (offline checkpoint, online run)
    lit-rl eval CKPT [--episodes N] [--seed S]
    lit-rl collect random|CKPT --env ID --steps N --out FILE.hdf5 [--noise S] [--seed K]
                                                      [--minari NAME]
    lightning run RECIPE.yaml ...   (same as lit-rl run; other subcommands go to lightning-sdk)

Bad input exits with code 2 and one line on stderr; a NaN/inf loss exits with code 3; a
file that cannot be written (disk full, quota, read-only) exits with code 4;
Ctrl-C exits with 130 and SIGTERM with 143, both after writing `last.ckpt`.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lit_rl.errors import ConfigError, NonFiniteLossError

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
EXIT_WRITE_FAILED = 4  # a file could not be written (disk full, quota, permissions)
EXIT_INTERRUPTED = 130
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}
EXIT_TERMINATED = 143


def _quiet_third_party() -> None:
    """Keep the terminal for the progress bar: hide library banners and tips."""
    import logging
    import warnings

    os.environ.setdefault("RL_WARNINGS", "False")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
    # lit_rl saves after the update on purpose: counters and weights then agree.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message=".*Box (low|high)'s precision lowered.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    import torchrl  # noqa: F401 - configures its logger on import; quiet it afterwards

    for name in (
        "torchrl",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lit-rl", description="Train and evaluate lit_rl recipes."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a recipe")
    run.add_argument(
        "recipe", nargs="?", help="path to a recipe YAML file (not needed with --resume)"
    )
    run.add_argument("overrides", nargs="*", help="dot-list overrides such as algo.batch_size=512")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR|CKPT",
        help="continue a run in its own folder, from its newest checkpoint or from CKPT; "
        "its config.yaml is the recipe (overrides apply on top, e.g. a larger max_env_steps)",
    )
    run.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start this (online) recipe from an offline run's checkpoint: its weights, and "
        "its dataset in the replay buffer (same as the recipe key init_from=CKPT)",
    )
    run.add_argument(
        "--print-config", action="store_true", help="print the resolved recipe and exit"
    )
    ev = sub.add_parser("eval", help="evaluate a checkpoint with deterministic episodes")
    ev.add_argument("checkpoint")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument(
        "--seed",
        type=int,
        default=None,
        help="eval env seed (default: the run's own eval stream, as during training)",
    )
    col = sub.add_parser(
        "collect", help="roll a policy out and write a D4RL-layout HDF5 (or Minari) dataset"
    )
    col.add_argument("policy", help="'random' or a lit_rl checkpoint (its acting policy)")
    col.add_argument("--env", help="Gymnasium env id (default: the checkpoint's)")
    col.add_argument("--steps", type=int, required=True, help="env steps to record")
    col.add_argument("--out", help="the HDF5 file to write (D4RL layout)")
    col.add_argument("--minari", metavar="NAME", help="write a local Minari dataset instead")
    col.add_argument("--noise", type=float, default=0.0, help="Gaussian action noise std")
    col.add_argument("--seed", type=int, default=0)
    col.add_argument("--ref-random", type=float, help="reference return of a random policy")
    col.add_argument("--ref-expert", type=float, help="reference return of an expert")
    return parser


def load_run_config(args: argparse.Namespace) -> tuple[dict, str | None]:
    """The recipe to run and the checkpoint to resume (None for a fresh run).

    A resumed run's recipe is its own `config.yaml` (overrides included), with this
    command's overrides on top; its run folder stays where it is.
    """
    from lit_rl.config import load_recipe

    if not args.resume:
        if args.recipe is None:
            raise ConfigError("give a recipe file (lit-rl run RECIPE.yaml) or --resume RUN_DIR")
        init = [f"init_from={args.init_from}"] if args.init_from else []
        return load_recipe(args.recipe, [*args.overrides, *init]), None
    from lit_rl.modules.state import load_plain
    from lit_rl.run import resume_target

    run_dir, checkpoint = resume_target(args.resume)
    # refuses a foreign or code-carrying file in one line, before any work
    load_plain(checkpoint, "lit_rl checkpoint to resume")
    overrides = list(args.overrides)
    if args.recipe is not None:
        if "=" not in args.recipe:
            raise ConfigError(
                f"--resume continues {run_dir} with its own config.yaml; drop {args.recipe} "
                "(change settings with key=value overrides)"
            )
        overrides.insert(0, args.recipe)  # `lit-rl run --resume DIR max_env_steps=N`
    if any(item.split("=", 1)[0] == "run_dir" for item in overrides):
        raise ConfigError("a resumed run stays in its own folder; run_dir cannot be overridden")
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"{run_dir} has no config.yaml; is it a lit_rl run folder?")
    return load_recipe(config, [*overrides, f"run_dir={run_dir}"]), str(checkpoint)


def cmd_run(args: argparse.Namespace) -> int:
    from lit_rl.config import to_yaml

    cfg, resume = load_run_config(args)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    if "experiment" in cfg:
        return run_experiment(cfg)
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lit_rl.run import fit, resolve_run_dir

    run_dir = resolve_run_dir(cfg)
    resume_hint = f"resume with: lit-rl run --resume {run_dir}"
    try:
        trainer, module, run_dir = fit(cfg, resume=resume)
    except SIGTERMException:
        print(f"lit-rl: terminated (SIGTERM); checkpoint written; {resume_hint}", file=sys.stderr)
        return EXIT_TERMINATED
    interrupt = next((c for c in trainer.callbacks if hasattr(c, "interrupted")), None)
    if trainer.is_global_zero:
        print(
            f"lit-rl: {module.env_steps} env steps, {module.updates} updates; run folder {run_dir}",
            flush=True,
        )
    if interrupt is not None and interrupt.interrupted == "SIGTERM":
        print(f"lit-rl: terminated (SIGTERM); checkpoint written; {resume_hint}", file=sys.stderr)
        return EXIT_TERMINATED
    if interrupt is not None and interrupt.interrupted:
        what = "Ctrl-C" if interrupt.interrupted == "SIGINT" else interrupt.interrupted
        print(f"lit-rl: interrupted ({what}); checkpoint written; {resume_hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run_experiment(cfg: dict) -> int:
    """Run a recipe with `experiment: NAME` (no training loop, no Trainer)."""
    from lit_rl.experiments import EXPERIMENTS
    from lit_rl.run import resolve_run_dir

    name = cfg["experiment"]
    run_dir = resolve_run_dir(cfg)
    EXPERIMENTS[name](run_dir=str(run_dir), **cfg.get(name, {}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lit_rl.callbacks.evaluation import evaluate_episodes
    from lit_rl.modules.loading import module_from_checkpoint
    from lit_rl.seeding import eval_env_seed

    path = Path(args.checkpoint)
    module, checkpoint = module_from_checkpoint(path)
    seed = args.seed if args.seed is not None else eval_env_seed(module.hparams.seed)
    env = module.make_env(seed)
    episodes = evaluate_episodes(env, module.make_policy(), args.episodes)
    result = {
        "checkpoint": str(path),
        "env_steps": checkpoint.get("lit_rl", {}).get("env_steps"),
        "episodes": args.episodes,
    }
    for kind, values in episodes.items():  # return, and cost on an env with costs
        result[f"{kind}_mean"] = float(values.mean())
        result[f"{kind}_std"] = float(values.std(unbiased=False))
    print(json.dumps(result))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from lit_rl.data.collect import (
        module_actor,
        random_actor,
        rollout_steps,
        write_hdf5,
        write_minari,
    )
    from lit_rl.data.datasets import action_bounds

    if (args.out is None) == (args.minari is None):
        raise ConfigError("give exactly one of --out FILE.hdf5 and --minari NAME")
    if args.noise < 0:
        raise ConfigError(f"--noise must be >= 0, got {args.noise}")
    if args.policy == "random":
        if args.env is None:
            raise ConfigError("collecting with a random policy needs --env ID")
        env_id = args.env
        actor = random_actor(len(action_bounds(env_id)[0]), args.seed)
        max_episode_steps = None
    else:
        from lit_rl.modules.loading import module_from_checkpoint

        module, _ = module_from_checkpoint(Path(args.policy))
        env_id = args.env or module.hparams.env_id
        if env_id != module.hparams.env_id:
            raise ConfigError(f"{args.policy} acts in {module.hparams.env_id}, not in {env_id}")
        actor = module_actor(module, args.noise, args.seed)
        max_episode_steps = module.hparams.max_episode_steps
    if args.policy == "random" and args.noise:
        raise ConfigError("--noise applies to a checkpoint's policy, not to 'random'")
    table = rollout_steps(env_id, actor, args.steps, args.seed, max_episode_steps)
    metadata = {
        "policy": args.policy,
        "noise": args.noise,
        "seed": args.seed,
        "ref_random_return": args.ref_random,
        "ref_expert_return": args.ref_expert,
    }
    where = (
        write_minari(table, args.minari, env_id, metadata)
        if args.minari
        else str(write_hdf5(table, args.out, env_id, metadata))
    )
    returns = table.episode_returns
    mean = sum(returns) / len(returns) if returns else float("nan")
    print(
        json.dumps(
            {
                "dataset": where,
                "env": env_id,
                "steps": len(table),
                "episodes": len(returns),
                "return_mean": mean,
            }
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Overrides may also follow options (`--resume CKPT seed=3`): collect the leftovers.
    args, extra = parser.parse_known_args(argv)
    unknown = [item for item in extra if item.startswith("-") or args.command != "run"]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    _quiet_third_party()
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "collect":
            return cmd_collect(args)
        return cmd_eval(args)
    except ConfigError as err:
        print(f"lit-rl: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteLossError as err:
        print(f"lit-rl: error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"lit-rl: error: {err.strerror}{where}", file=sys.stderr)
        return EXIT_WRITE_FAILED


RECIPE_SUFFIXES = (".yaml", ".yml")
LIT_RL_RUN_OPTIONS = ("--resume", "--print-config", "--init-from")


def is_lit_rl_run(argv: Sequence[str]) -> bool:
    """`run RECIPE.yaml ...` or `run --resume ...` is ours; lightning-sdk has its own
    `run` subcommands (`lightning run job`, `lightning run mmt`), which go to it."""
    if len(argv) < 2 or argv[0] != "run":
        return False
    first = argv[1]
    return first.endswith(RECIPE_SUFFIXES) or first.split("=", 1)[0] in LIT_RL_RUN_OPTIONS


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """`lightning run RECIPE ...` runs lit_rl; anything else goes to lightning-sdk's CLI.

    Lightning 2.5+ ships no `lightning` command and the lightning-sdk package owns the
    name for its cloud CLI, so this shim keeps both working side by side.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if is_lit_rl_run(argv):
        return main(argv)
    if importlib.util.find_spec("lightning_sdk") is None:
        print(
            "lightning: only 'lightning run RECIPE.yaml [key=value ...]' (and 'run --resume') "
            "is provided by lit_rl; "
            "other subcommands belong to the lightning-sdk cloud CLI, which is not installed "
            "(pip install lightning-sdk)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return subprocess.call([sys.executable, "-m", "lightning_sdk.cli.entrypoint", *argv])


if __name__ == "__main__":
    sys.exit(main())
