"""`lit-rl run|eval|collect|export|plot|recipes` and the `lightning run` shim.

    lit-rl run RECIPE [key=value ...]                 RECIPE: a file or a shipped name
    lit-rl run RECIPE seed=0,1,2 [--jobs N]           one run per seed (or --seeds 0-4)
    lit-rl run --resume RUN_DIR|CKPT [key=value ...]   (continues in place)
    lit-rl run RECIPE --init-from CKPT                 (offline checkpoint, online run)
    lit-rl eval CKPT [--episodes N] [--seed S]
    lit-rl collect random|CKPT --env ID --steps N --out FILE.hdf5 [--noise S] [--seed K]
                                                      [--minari NAME]
    lit-rl export CKPT --out policy.pt2
    lit-rl plot RUN_DIR_OR_GLOB... [--metric M] [--out FILE] [--aggregate]
    lit-rl recipes
    lightning run RECIPE ...   (same as lit-rl run; other subcommands go to lightning-sdk)

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


EPILOG = """\
recipes: RECIPE is a YAML file, or the name of a recipe shipped with lit_rl
  (`lit-rl recipes` lists them; `lit-rl run sac_pendulum` works from any folder).
  A recipe's `defaults:` are paths relative to the recipe file.

exit codes: 0 done; 2 bad input (one line on stderr); 3 a NaN/inf loss; 4 a file could
  not be written; 130 Ctrl-C and 143 SIGTERM (both after writing last.ckpt).
"""


def _parser() -> argparse.ArgumentParser:
    from lit_rl import __version__

    parser = argparse.ArgumentParser(
        prog="lit-rl",
        description="Train, evaluate, export and compare lit_rl runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lit_rl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command("run", "train a recipe")
    run.add_argument(
        "recipe",
        nargs="?",
        help="a recipe YAML file or a shipped recipe's name (not needed with --resume)",
    )
    run.add_argument(
        "overrides",
        nargs="*",
        help="dot-list overrides such as algo.batch_size=512; seed=0,1,2 runs each seed",
    )
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
    run.add_argument(
        "--seeds",
        metavar="SPEC",
        help="one run per seed, each in its own folder: 0-4 or 0,1,2 (same as seed=0,1,2)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="with several seeds: run N of them at a time as separate processes (default 1)",
    )
    ev = command("eval", "evaluate a checkpoint with deterministic episodes (prints JSON)")
    ev.add_argument("checkpoint", help="a .ckpt file written by a lit_rl run")
    ev.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    ev.add_argument(
        "--seed",
        type=int,
        default=None,
        help="eval env seed (default: the run's own eval stream, as during training)",
    )
    col = command("collect", "roll a policy out and write a D4RL-layout HDF5 (or Minari) dataset")
    col.add_argument("policy", help="'random' or a lit_rl checkpoint (its acting policy)")
    col.add_argument("--env", help="Gymnasium env id (default: the checkpoint's)")
    col.add_argument("--steps", type=int, required=True, help="env steps to record")
    col.add_argument("--out", help="the HDF5 file to write (D4RL layout)")
    col.add_argument("--minari", metavar="NAME", help="write a local Minari dataset instead")
    col.add_argument("--noise", type=float, default=0.0, help="Gaussian action noise std")
    col.add_argument("--seed", type=int, default=0, help="env and noise seed (default 0)")
    col.add_argument("--ref-random", type=float, help="reference return of a random policy")
    col.add_argument("--ref-expert", type=float, help="reference return of an expert")
    exp = command(
        "export",
        "write a checkpoint's deterministic acting policy as a torch.export program",
    )
    exp.add_argument("checkpoint", help="a .ckpt file written by a lit_rl run")
    exp.add_argument(
        "--out",
        required=True,
        help="the .pt2 file to write; load it with torch.export.load(PATH).module() "
        "(observation batch in, action in the env's own bounds out; needs only torch)",
    )
    plot = command("plot", "draw learning curves of runs, grouped by recipe across seeds")
    plot.add_argument(
        "runs", nargs="+", metavar="RUN_DIR_OR_GLOB", help="run folders (or glob patterns)"
    )
    plot.add_argument(
        "--metric",
        default="eval/return_mean",
        help="metrics.csv column to draw (default eval/return_mean)",
    )
    plot.add_argument(
        "--out",
        default="curves.png",
        help="image to write; an .svg is written beside a .png (default curves.png)",
    )
    plot.add_argument(
        "--aggregate",
        action="store_true",
        help="also draw IQM and optimality gap per algorithm across tasks and seeds "
        "(stratified bootstrap 95%% CIs), to OUT's stem + _aggregate",
    )
    plot.add_argument(
        "--gap-threshold",
        type=float,
        default=100.0,
        help="score the optimality gap counts up to (default 100: normalised scores)",
    )
    command("recipes", "list the recipes shipped with lit_rl")
    return parser


def load_run_config(args: argparse.Namespace) -> tuple[dict, str | None]:
    """The recipe to run and the checkpoint to resume (None for a fresh run).

    A resumed run's recipe is its own `config.yaml` (overrides included), with this
    command's overrides on top; its run folder stays where it is.
    """
    from lit_rl.config import load_recipe

    if not args.resume:
        from lit_rl.recipe_paths import find_recipe

        if args.recipe is None:
            raise ConfigError("give a recipe file (lit-rl run RECIPE.yaml) or --resume RUN_DIR")
        init = [f"init_from={args.init_from}"] if args.init_from else []
        return load_recipe(find_recipe(args.recipe), [*args.overrides, *init]), None
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
    from lit_rl.seeds import parse_seeds, run_seeds, split_seed_override

    overrides, seeds = split_seed_override(args.overrides)
    if args.seeds is not None:
        if seeds is not None:
            raise ConfigError("give the seeds once: --seeds or seed=..., not both")
        seeds = parse_seeds(args.seeds)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if seeds is not None and len(seeds) > 1:
        if args.resume or args.print_config:
            raise ConfigError("several seeds start fresh runs; drop --resume/--print-config")
        if args.recipe is None:
            raise ConfigError("give a recipe file (lit-rl run RECIPE.yaml) to run seeds of")
        extra = [f"init_from={args.init_from}"] if args.init_from else []
        return run_seeds(args.recipe, [*overrides, *extra], seeds, args.jobs)
    if seeds is not None:
        overrides = [*overrides, f"seed={seeds[0]}"]
    args.overrides = overrides
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
        max_episode_steps, env_kwargs = None, None
    else:
        from lit_rl.modules.loading import module_from_checkpoint

        module, _ = module_from_checkpoint(Path(args.policy))
        env_id = args.env or module.hparams.env_id
        if env_id != module.hparams.env_id:
            raise ConfigError(f"{args.policy} acts in {module.hparams.env_id}, not in {env_id}")
        actor = module_actor(module, args.noise, args.seed)
        max_episode_steps = module.hparams.max_episode_steps
        env_kwargs = module.hparams.get("env_kwargs")
    if args.policy == "random" and args.noise:
        raise ConfigError("--noise applies to a checkpoint's policy, not to 'random'")
    table = rollout_steps(env_id, actor, args.steps, args.seed, max_episode_steps, env_kwargs)
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


def cmd_recipes(args: argparse.Namespace) -> int:
    from lit_rl.recipe_paths import recipe_summary, shipped_recipes

    recipes = shipped_recipes()
    width = max(map(len, recipes))
    for name, path in recipes.items():
        print(f"{name:<{width}}  {recipe_summary(path)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lit_rl.api import export_policy

    path = export_policy(args.checkpoint, args.out)
    print(json.dumps({"checkpoint": args.checkpoint, "program": str(path)}))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from lit_rl.plotting import plot_command

    for path in plot_command(
        args.runs, args.metric, Path(args.out), args.aggregate, args.gap_threshold
    ):
        print(path)
    return 0


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "collect": cmd_collect,
    "export": cmd_export,
    "plot": cmd_plot,
    "recipes": cmd_recipes,
}


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
        return COMMANDS[args.command](args)
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
LIT_RL_RUN_OPTIONS = ("--resume", "--print-config", "--init-from", "--seeds", "--jobs")


def is_lit_rl_run(argv: Sequence[str]) -> bool:
    """`run RECIPE.yaml ...` or `run --resume ...` is ours; lightning-sdk has its own
    `run` subcommands (`lightning run job`, `lightning run mmt`), which go to it."""
    if len(argv) < 2 or argv[0] != "run":
        return False
    first = argv[1]
    if first.endswith(RECIPE_SUFFIXES) or first.split("=", 1)[0] in LIT_RL_RUN_OPTIONS:
        return True
    from lit_rl.recipe_paths import shipped_recipes

    return first in shipped_recipes()  # `lightning run sac_pendulum`


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
