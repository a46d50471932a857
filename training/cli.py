"""The ``spikegym`` command line (shaped like rl-baselines3-zoo)::

    spikegym train CONFIG [--steps N] [--seed S] [--device cpu|cuda] [--run-dir DIR]
                          [--set key=value ...] [--resume RUN_DIR] [--json]
    spikegym eval RUN_DIR [--episodes N] [--seed S] [--checkpoint latest|best|STEP|DIR] [--json]
    spikegym record RUN_DIR [--episodes N] [--agents N] [--seed S] [--max-steps N]
                            [--checkpoint latest|best|STEP|DIR] [--out DIR]
    spikegym config --reference | CONFIG [--set key=value ...]
    spikegym sweep CONFIG --grid KEY=V1,V2,... [--grid ...] [--seeds N] [--steps N] [--out DIR]
                          [--set key=value ...] [--workers N] [--address ADDR]

``train`` prints its run folder at the start, progress while it runs (a bar on a terminal, log
lines off it) and a readable summary at the end; ``--json`` prints the result as one JSON line
instead (``eval --json`` likewise).

``--steps/--seed/--device/--run-dir`` are shorthands for ``--set run.steps=...`` etc.; ``--set``
values are read with ``yaml.safe_load`` (never ``eval``). With ``--resume RUN_DIR`` the CONFIG may
be left out: the run folder's ``config.yaml`` is used. A bad config or a missing folder prints one
line, ``spikegym: error: <message>``, and exits with status 2. The heavy parts (torch, gymnasium,
the training loop) are imported only when a command runs, so ``spikegym --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from spikegym.training.config import ConfigError, load_config
from spikegym.training.files import dumps_json

__all__ = ["main", "build_parser"]

PROG = "spikegym"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _int(text: str) -> int:
    """An integer that may be written ``200000``, ``2e5`` or ``200_000``."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(number)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Spiking-network agents that learn while they act (local plasticity, no backprop).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,record,config,sweep}")

    train = sub.add_parser(
        "train",
        help="train agents from a YAML config",
        description="Train a population of agents from a YAML config; writes a run folder.",
        epilog="examples:\n"
        "  spikegym train configs/cartpole.yaml --steps 2e5 --seed 1\n"
        "  spikegym train configs/cartpole.yaml --set brain.substeps=10 plasticity.actor_lr=3e-4\n"
        "  spikegym train --resume runs/CartPole-v1-20250101-120000 --steps 4e5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", nargs="?", metavar="CONFIG", help="YAML config file (optional with --resume)")
    train.add_argument("--steps", type=_int, metavar="N", help="env steps per agent (run.steps)")
    train.add_argument("--seed", type=_int, metavar="S", help="seed (run.seed)")
    train.add_argument("--device", metavar="{cpu,cuda,auto}",
                       help="torch device, e.g. cpu, cuda, cuda:1; auto: cuda when available, else cpu (run.device)")
    train.add_argument("--run-dir", metavar="DIR", help="run folder (run.run_dir); default runs/<env>-<time>")
    train.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. --set brain.substeps=10 env.num_agents=32 (values read as YAML)",
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    train.add_argument("--json", action="store_true", help="print the result as one JSON line, not a summary")

    ev = sub.add_parser("eval", help="evaluate the agents of a run folder",
                        description="Evaluate a trained run: every agent, learning off, on fresh envs.")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=_positive_int, default=10, metavar="N", help="episodes per agent (default 10)")
    ev.add_argument("--seed", type=_int, metavar="S", help="seed of the evaluation envs (default: the run's seed + 10000)")
    ev.add_argument("--checkpoint", metavar="WHICH", help=CHECKPOINT_HELP)
    ev.add_argument("--json", action="store_true", help="print the result as one JSON line, not a table")

    rec = sub.add_parser("record", help="record videos of a run's agents", description="Record videos of a trained run.")
    rec.add_argument("run_dir", metavar="RUN_DIR")
    rec.add_argument("--episodes", type=_positive_int, default=1, metavar="N",
                     help="episodes in agent 0's video (default 1; the grid plays one per agent)")
    rec.add_argument("--agents", type=_positive_int, default=4, metavar="N",
                     help="agents in the grid video (default 4; 1: agent 0's video only)")
    rec.add_argument("--seed", type=_int, metavar="S", help="seed of the first reset (default: the run's seed)")
    rec.add_argument("--max-steps", type=_positive_int, metavar="N",
                     help="steps per episode at most (default: the env's time limit, or 1000)")
    rec.add_argument("--checkpoint", metavar="WHICH", help=CHECKPOINT_HELP)
    rec.add_argument("--out", metavar="DIR", help="video folder (default RUN_DIR/videos)")
    _add_config_parser(sub)
    _add_sweep_parser(sub)
    return parser


def _add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="run a grid of settings x seeds, each point its own run (on Ray, or here with --workers 0)",
        description="Run every setting of the --grid keys with --seeds seeds, each point a run of its own in "
        "OUT/<key>=<value>-seed<S>; write OUT/sweep.csv and OUT/curves.png and print the settings, best first. "
        "Rerun the same command to continue a stopped sweep. Points run on Ray (pip install -e \".[sweep]\"): "
        "a local Ray by default, or a cluster started with `ray start --head` (--address).",
        epilog="examples:\n"
        "  spikegym sweep configs/cartpole.yaml --grid plasticity.actor_lr=0.002,0.005,0.01 --seeds 4\n"
        "  spikegym sweep configs/cartpole.yaml --grid brain.substeps=10,20 --steps 5e4 --workers 0\n"
        "  ray start --head && spikegym sweep configs/cartpole.yaml --grid plasticity.actor_lr=0.002,0.005 "
        "--address auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("config", metavar="CONFIG", help="YAML config file")
    sweep.add_argument("--grid", action="append", default=[], required=True, metavar="KEY=V1,V2,...",
                       help="a config key and its values (read as YAML); several --grid: every combination")
    sweep.add_argument("--seeds", type=_positive_int, default=1, metavar="N",
                       help="seeds per setting: run.seed, run.seed+1, ... (default 1)")
    sweep.add_argument("--steps", type=_int, metavar="N", help="env steps per agent (run.steps)")
    sweep.add_argument("--out", metavar="DIR", help="sweep folder (default runs/sweep-<config name>)")
    sweep.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="override config keys for every point")
    sweep.add_argument("--workers", type=_int, metavar="N",
                       help="points at a time on a local Ray (default: one per CPU); 0: one after another "
                       "in this process, without Ray")
    sweep.add_argument("--address", metavar="ADDR", help="join a running Ray cluster (e.g. auto, or host:6379)")


def _add_config_parser(sub: Any) -> None:
    conf = sub.add_parser(
        "config",
        help="print every config key (--reference) or a config file resolved",
        description="Print the reference of every config key (its type, default and meaning), or a config "
        "file resolved (extends: chain, --set overrides and defaults applied; checked as train checks it).",
        epilog="examples:\n"
        "  spikegym config --reference\n"
        "  spikegym config configs/continual/cartpole_cycle.yaml --set run.steps=1e5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conf.add_argument("config", nargs="?", metavar="CONFIG", help="YAML config file to resolve")
    conf.add_argument("--reference", action="store_true", help="every key: type, default, meaning (Markdown table)")
    conf.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override config keys")


def _config(args: argparse.Namespace) -> int:
    from spikegym.training.config import config_reference, config_to_yaml

    if args.reference:
        if args.config or args.set:
            raise ConfigError("--reference takes no CONFIG or --set")
        text = config_reference() + "\n"
    elif args.config is None:
        raise ConfigError("config needs a CONFIG file, or --reference")
    else:
        text = config_to_yaml(load_config(Path(args.config), args.set))
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `spikegym config --reference | head`: the reader left early, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


CHECKPOINT_HELP = ("which checkpoint: latest (default), best (the best periodic evaluation, run.eval_every), "
                   "a step such as 50000, or a checkpoint folder")


def _checkpoint(text):
    return None if text in (None, "latest") else text


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("spikegym")
    except metadata.PackageNotFoundError:
        return "unknown"


def _need_run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(2, "no such run folder", path)
    return run_dir


def _train(args: argparse.Namespace, command_line: str) -> int:
    overrides: list[str | tuple[str, str]] = list(args.set)
    # Flags win over --set; errors name the flag. Strings go through json.dumps: a JSON string is a YAML
    # string, so a folder called "123" or "null" stays a string.
    if args.steps is not None:
        overrides.append((f"run.steps={args.steps}", f"--steps {args.steps}"))
    if args.seed is not None:
        overrides.append((f"run.seed={args.seed}", f"--seed {args.seed}"))
    if args.device is not None:
        overrides.append((f"run.device={json.dumps(args.device)}", f"--device {args.device}"))
    if args.run_dir is not None:
        overrides.append((f"run.run_dir={json.dumps(args.run_dir)}", f"--run-dir {args.run_dir}"))

    resume = args.resume is not None
    if resume:
        run_dir: Path | None = _need_run_dir(args.resume)
        if args.run_dir is not None and Path(args.run_dir).resolve() != run_dir.resolve():
            raise ConfigError(f"--run-dir {args.run_dir} and --resume {args.resume} name different folders")
        config_path = Path(args.config) if args.config else run_dir / "config.yaml"
    elif args.config is None:
        raise ConfigError("train needs a CONFIG file (or --resume RUN_DIR)")
    else:
        config_path = Path(args.config)

    cfg = load_config(config_path, overrides)
    if resume:
        cfg.run.run_dir = str(run_dir)
    else:
        run_dir = Path(cfg.run.run_dir) if cfg.run.run_dir else None

    from spikegym.training.loop import train

    result = train(cfg, run_dir=run_dir, resume=resume, command_line=command_line)
    if args.json:
        print(dumps_json(result))
    else:
        from spikegym.training.progress import summary_text

        print(summary_text(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    run_dir = _need_run_dir(args.run_dir)
    from spikegym.training.evaluate import evaluate

    result = evaluate(run_dir, episodes=args.episodes, seed=args.seed, checkpoint=_checkpoint(args.checkpoint))
    if args.json:
        print(dumps_json(result))
    else:
        from spikegym.training.progress import eval_table

        print(eval_table(result))
    return 0


def _record(args: argparse.Namespace) -> int:
    run_dir = _need_run_dir(args.run_dir)
    from spikegym.training.record import record

    paths = record(run_dir, episodes=args.episodes, out=Path(args.out) if args.out else None, agents=args.agents,
                   seed=args.seed, max_steps=args.max_steps, checkpoint=_checkpoint(args.checkpoint))
    for path in paths:
        print(path)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from spikegym.training.sweep import run_sweep

    try:
        result = run_sweep(args.config, args.grid, seeds=args.seeds, steps=args.steps, out=args.out,
                           overrides=args.set, workers=args.workers, address=args.address)
    except KeyboardInterrupt as err:  # the point that ran saved a checkpoint (RunInterrupted): say how to go on
        print(f"{PROG}: sweep stopped{f' at step {err.step} of a point' if hasattr(err, 'step') else ''}; finished "
              "points are kept: run the same command again to continue", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    return 1 if result["failed"] else 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 the run stopped on a fault, 2 usage, config or run
    folder error, 130/143 stopped by SIGINT/SIGTERM after saving a checkpoint)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: --help, --version, usage errors
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command_line = shlex.join([PROG, *argv])
    try:
        if args.command == "train":
            return _train(args, command_line)
        if args.command == "eval":
            return _eval(args)
        if args.command == "config":
            return _config(args)
        if args.command == "sweep":
            return _sweep(args)
        return _record(args)
    except ConfigError as err:
        return _fail(str(err))
    except (FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        if err.filename is not None and err.strerror:
            return _fail(f"{err.strerror}: {err.filename}")
        return _fail(str(err))
    except Exception as err:  # the run folder's and the run's own one-line errors (imported lazily: torch)
        from spikegym.training.checkpoint import RunFolderError, RunStopped

        if isinstance(err, RunFolderError):  # locked, not a run folder, unwritable, no intact checkpoint
            return _fail(str(err))
        if isinstance(err, RunStopped):  # non-finite values, a failed checkpoint write: the last good one is kept
            _fail(str(err))
            return 1
        raise
    except KeyboardInterrupt as err:  # RunInterrupted: SIGINT/SIGTERM, after a checkpoint was saved
        print(f"{PROG}: {' '.join(str(err).split()) or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 130)

if __name__ == "__main__":
    sys.exit(main())
