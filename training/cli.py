"""The ``spikegym`` command line (shaped like rl-baselines3-zoo)::

    spikegym train CONFIG [--steps N] [--seed S] [--device cpu|cuda] [--run-dir DIR]
                          [--set key=value ...] [--resume RUN_DIR]
    spikegym eval RUN_DIR [--episodes N]
    spikegym record RUN_DIR [--episodes N] [--out DIR]

``--steps/--seed/--device/--run-dir`` are shorthands for ``--set run.steps=...`` etc.; ``--set``
values are read with ``yaml.safe_load`` (never ``eval``). With ``--resume RUN_DIR`` the CONFIG may
be left out: the run folder's ``config.yaml`` is used. A bad config or a missing folder prints one
line, ``spikegym: error: <message>``, and exits with status 2. The heavy parts (torch, gymnasium,
the training loop) are imported only when a command runs, so ``spikegym --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

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
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,record}")

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
    train.add_argument("--device", metavar="{cpu,cuda}", help="torch device, e.g. cpu, cuda, cuda:1 (run.device)")
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

    ev = sub.add_parser("eval", help="evaluate the agents of a run folder", description="Evaluate a trained run.")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=_positive_int, default=10, metavar="N", help="episodes per agent (default 10)")

    rec = sub.add_parser("record", help="record videos of a run's agents", description="Record videos of a trained run.")
    rec.add_argument("run_dir", metavar="RUN_DIR")
    rec.add_argument("--episodes", type=_positive_int, default=1, metavar="N", help="episodes to record (default 1)")
    rec.add_argument("--out", metavar="DIR", help="video folder (default RUN_DIR/videos)")
    return parser


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
    overrides = list(args.set)
    # Flags win over --set. Strings go through json.dumps: a JSON string is a YAML string, so a
    # folder called "123" or "null" stays a string.
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.device is not None:
        overrides.append(f"run.device={json.dumps(args.device)}")
    if args.run_dir is not None:
        overrides.append(f"run.run_dir={json.dumps(args.run_dir)}")

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
    folder = (result or {}).get("run_dir") or run_dir
    if folder is not None:
        print(f"run folder: {folder}")
    print(dumps_json(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    run_dir = _need_run_dir(args.run_dir)
    from spikegym.training.loop import evaluate

    print(dumps_json(evaluate(run_dir, episodes=args.episodes)))
    return 0


def _record(args: argparse.Namespace) -> int:
    run_dir = _need_run_dir(args.run_dir)
    from spikegym.training.loop import record

    for path in record(run_dir, episodes=args.episodes, out=Path(args.out) if args.out else None):
        print(path)
    return 0


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
