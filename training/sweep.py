"""Grid sweeps: every setting of a few config keys x a few seeds, each point its own run of :func:`train`.

::

    spikegym sweep configs/cartpole.yaml --grid plasticity.actor_lr=0.002,0.005,0.01 --seeds 4

A *point* is one setting of the grid keys and one seed. Each point is a separate, ordinary run of
:func:`spikegym.training.loop.train` in its own run folder, ``OUT/<key>=<value>[,<key>=<value>]-seed<S>``,
with ``run.threads=1``; the points are spread over Ray workers (a local Ray by default, ``address``
joins a cluster started with ``ray start --head``), or with ``workers=0`` run one after another in
this process (no Ray needed). Packing several points into one batch of agents would need per-agent
settings in the engine, which does not exist yet: every point is its own run.

Resumable: a point whose folder holds ``result.json`` is done and skipped; one with checkpoints
continues from the newest (``resume=True``). Every grid value is checked by the config pipeline
before anything runs (a bad key: one line, file:line, nearest valid key). Results: ``OUT/sweep.csv``
(one row per point), ``OUT/curves.png`` (median learning curve and interquartile band per setting,
see :mod:`spikegym.training.sweep_plot`) and a table of the settings, best first (:func:`sweep_table`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from spikegym.training.config import Config, ConfigError, load_config
from spikegym.training.files import atomic_write_text, write_json

__all__ = ["Point", "parse_grid", "plan_sweep", "run_point", "run_sweep", "sweep_rows", "sweep_settings",
           "sweep_table", "SWEEP_CSV", "CURVES_PNG"]

SWEEP_CSV = "sweep.csv"
CURVES_PNG = "curves.png"
SPEC = "sweep.json"          # the sweep's own description in OUT: a rerun must be the same sweep
POINT_RECORD = "sweep_point.json"  # in each run folder: the wall time of the point and whether it resumed
RAY_EXTRA = 'pip install -e ".[sweep]"'


@dataclass(frozen=True)
class Point:
    """One setting of the grid keys (``((key, value text), ...)``) and one seed."""

    setting: tuple[tuple[str, str], ...]
    seed: int

    @property
    def setting_name(self) -> str:
        return ",".join(f"{k}={_safe(v)}" for k, v in self.setting)

    @property
    def name(self) -> str:
        return f"{self.setting_name}-seed{self.seed}"


def _safe(text: str) -> str:
    """A value as it may stand in a folder name (no slashes, spaces or quotes)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text) or "_"


def _split_values(text: str) -> list[str]:
    """``"0.1,0.2"`` -> ``["0.1", "0.2"]``; commas inside ``[...]`` or ``{...}`` stay (YAML lists)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def parse_grid(texts: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["a.b=1,2", "c.d=x"]`` -> ``[("a.b", ["1", "2"]), ("c.d", ["x"])]``; one-line :class:`ConfigError`
    for a malformed entry, an empty value or a key given twice (whether a key exists is the config's check)."""
    grid: list[tuple[str, list[str]]] = []
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {text}: expected KEY=V1,V2,... (e.g. --grid plasticity.actor_lr=0.002,0.005)")
        vals = _split_values(values)
        if any(v == "" for v in vals):
            raise ConfigError(f"--grid {text}: an empty value (values are separated by commas)")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"--grid {text}: a value is given twice")
        if key in (k for k, _ in grid):
            raise ConfigError(f"--grid {key}: the key is given twice; list all its values in one --grid")
        if key in ("run.seed", "run.steps", "run.run_dir"):
            raise ConfigError(f"--grid {key}: use --seeds, --steps and --out for these")
        grid.append((key, vals))
    if not grid:
        raise ConfigError("sweep needs at least one --grid KEY=V1,V2,...")
    return grid


def plan_sweep(config: str | Path, grid: Sequence[tuple[str, Sequence[str]]], *, seeds: int = 1,
               steps: Optional[int] = None, out: str | Path, overrides: Sequence[str] = ()) -> list[tuple[Point, Config]]:
    """Every point of the grid with its checked config (``run.seed`` = the config's seed + 0..seeds-1).

    Each grid value goes through the config pipeline (``yaml.safe_load``, types, ranges, the world), so
    a bad key or value raises its one-line :class:`ConfigError` here, before anything is written.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    settings: list[tuple[tuple[str, str], ...]] = [()]
    for key, values in grid:
        settings = [(*s, (key, v)) for s in settings for v in values]
    out = Path(out)
    base = list(overrides) + ([(f"run.steps={steps}", f"--steps {steps}")] if steps is not None else [])
    first = load_config(config, base)
    plan = []
    for setting in settings:
        for i in range(seeds):
            point = Point(setting, first.run.seed + i)
            cfg = load_config(config, [*base, *((f"{k}={v}", f"--grid {k}={v}") for k, v in setting),
                                       f"run.seed={point.seed}", "run.threads=1", "run.progress=off",
                                       f"run.run_dir={json.dumps(str(out / point.name))}"])
            plan.append((point, cfg))
    names = [p.name for p, _ in plan]
    if len(set(names)) != len(names):  # values that differ only in characters a folder name cannot hold
        raise ConfigError("two grid values give the same run folder name; write them differently")
    return plan


# ---------------------------------------------------------------------------- one point


def run_point(cfg: Config, run_dir: str) -> dict:
    """Run (or finish, or skip) one point; returns its record ``{"status", "wall_s", "resumed", "error"}``.

    Done (``result.json`` present): skipped. Checkpoints present: resumed. A point that fails (a brain gone
    non-finite, a folder it cannot use) is reported, not raised: the other points go on.
    """
    from spikegym.training.checkpoint import RunFolderError, RunStopped, checkpoint_step, list_checkpoints
    from spikegym.training.loop import train

    path = Path(run_dir)
    if (path / "result.json").is_file():
        return {"status": "done", **_read_json(path / POINT_RECORD)}
    checkpoints = list_checkpoints(path)
    resume = bool(checkpoints)
    if resume and checkpoint_step(checkpoints[-1]) >= cfg.run.steps:  # killed while it wrote its result
        return {"status": "failed", "resumed": False, "error": f"'{path}' has run all its steps but has no "
                "result.json (stopped while writing it): remove the folder to run the point again"}
    t0 = time.perf_counter()
    try:
        train(cfg, run_dir=path, resume=resume, command_line=f"spikegym sweep (point {shlex.quote(path.name)})")
    except (RunFolderError, RunStopped, FileExistsError, FileNotFoundError) as err:
        return {"status": "failed", "error": " ".join(str(err).split()), "resumed": resume}
    record = {"wall_s": round(time.perf_counter() - t0, 3), "resumed": resume}
    write_json(path / POINT_RECORD, record)
    return {"status": "ran", **record}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------- the sweep


def _check_spec(out: Path, spec: dict) -> None:
    """A rerun into the same OUT must be the same sweep: its finished points are reused as they are."""
    old = _read_json(out / SPEC)
    if old and old != spec:
        changed = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        raise ConfigError(f"'{out}' holds a different sweep ({', '.join(changed)} differ); continue it with the "
                          "same arguments or pick another --out")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"sweeps on Ray need the 'sweep' extra: {RAY_EXTRA} (or run the points one after "
                          "another here with --workers 0)") from None
    return ray


def run_sweep(config: str | Path, grid_texts: Sequence[str], *, seeds: int = 1, steps: Optional[int] = None,
              out: str | Path | None = None, overrides: Sequence[str] = (), workers: Optional[int] = None,
              address: Optional[str] = None, echo: Callable[[str], None] = print) -> dict:
    """Plan, check, run and summarise a sweep; returns ``{"out", "points", "runs", "failed", "wall_s",
    "settings", "rows"}`` (``runs``: points that ran now, skipped ones excluded). ``workers=0``: one after
    another in this process; otherwise Ray (``workers`` CPUs of a local Ray, or the cluster at ``address``)."""
    grid = parse_grid(grid_texts)
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    if workers == 0 and address:
        raise ConfigError("--workers 0 runs the points here, --address on a Ray cluster: give one of them")
    out = Path(out) if out is not None else Path("runs") / f"sweep-{Path(config).stem}"
    plan = plan_sweep(config, grid, seeds=seeds, steps=steps, out=out, overrides=overrides)  # all checked first
    ray = _import_ray() if workers != 0 else None
    spec = {"config": str(Path(config).resolve()), "grid": [[k, list(v)] for k, v in grid], "seeds": seeds,
            "steps": plan[0][1].run.steps, "set": list(overrides)}
    _check_spec(out, spec)
    started = _start_ray(ray, workers, address) if ray is not None else False  # a bad --address: nothing written
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / SPEC, spec, indent=2)
        t0 = time.perf_counter()
        records: dict[str, dict] = {}

        def finished(point: Point, record: dict) -> None:
            records[point.name] = record
            what = {"done": "already done", "failed": f"FAILED: {record.get('error')}"}.get(
                record["status"], f"{'resumed, ' if record.get('resumed') else ''}{record.get('wall_s', 0):.1f} s")
            echo(f"[{len(records)}/{len(plan)}] {point.name}: {what}")

        echo(f"sweep: {len(plan)} points ({len(plan) // seeds} settings x {seeds} seeds) in {out}")
        if ray is None:
            for point, cfg in plan:
                finished(point, run_point(cfg, str((out / point.name).resolve())))
        else:
            _run_on_ray(ray, plan, out, workers=workers, finished=finished)
    finally:
        if started and ray is not None:
            ray.shutdown()
    wall = time.perf_counter() - t0

    rows = sweep_rows(out, plan, [k for k, _ in grid], records)
    atomic_write_text(out / SWEEP_CSV, _csv_text(rows))
    settings = sweep_settings(rows, [k for k, _ in grid])
    from spikegym.training.sweep_plot import curves_figure_for

    curves = curves_figure_for(out, plan, out / CURVES_PNG)
    echo(sweep_table(settings))
    echo(f"wrote {out / SWEEP_CSV}" + (f" and {curves}" if curves else ""))
    return {"out": str(out), "points": len(plan), "runs": sum(r["status"] == "ran" for r in records.values()),
            "failed": sum(r["status"] == "failed" for r in records.values()), "wall_s": wall,
            "settings": settings, "rows": rows}


def _start_ray(ray, workers: Optional[int], address: Optional[str]) -> bool:
    """Start a local Ray (``workers`` CPUs; None: all) or join the cluster at ``address``; False if one was
    already running in this process (the caller's, left as it is)."""
    if ray.is_initialized():
        return False
    kwargs = {"address": address} if address else {"num_cpus": workers}
    try:
        ray.init(include_dashboard=False, configure_logging=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:  # no cluster there, a bad address
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or join {where}: {' '.join(str(err).split())[:300]}") from None
    return True


def _run_on_ray(ray, plan, out: Path, *, workers, finished) -> None:
    """Each point a Ray task of one CPU; at most ``workers`` at a time (default: as many as Ray has CPUs)."""
    task = ray.remote(num_cpus=1, max_retries=0)(run_point)
    queue = list(plan)
    limit = workers or len(queue)
    pending: dict = {}
    while queue or pending:
        while queue and len(pending) < limit:
            point, cfg = queue.pop(0)
            pending[task.remote(cfg, str((out / point.name).resolve()))] = point
        ready, _ = ray.wait(list(pending), num_returns=1)
        point = pending.pop(ready[0])
        try:
            record = ray.get(ready[0])
        except ray.exceptions.RayError as err:  # the worker died (out of memory, killed) or raised
            lines = [line for line in str(err).splitlines() if line.strip()]
            record = {"status": "failed", "error": lines[-1] if lines else type(err).__name__}
        finished(point, record)


# ---------------------------------------------------------------------------- results

COLUMNS = ("seed", "steps_to_solve", "final_median_return", "solved", "agents", "wall_s", "resumed", "status",
           "run_dir")


def _setting_value(cfg: Config, key: str, text: str):
    """The value a grid key took in the resolved config (``text`` if it cannot be read back)."""
    obj = cfg
    for part in key.split("."):
        obj = obj.get(part, text) if isinstance(obj, dict) else getattr(obj, part, text)
    return obj


def sweep_rows(out: Path, plan, keys: Sequence[str], records: dict) -> list[dict]:
    """One row per point from its run folder's ``result.json`` and ``sweep_point.json``."""
    rows = []
    for point, cfg in plan:
        run_dir = out / point.name
        result = _read_json(run_dir / "result.json")
        record = {**_read_json(run_dir / POINT_RECORD), **records.get(point.name, {})}
        row = {k: _setting_value(cfg, k, v) for k, v in point.setting}
        row["setting"] = point.setting_name
        steps = result.get("median_steps_to_solve")
        row.update(seed=point.seed, steps_to_solve=steps if isinstance(steps, int) else None,
                   final_median_return=result.get("median_return_last100"), solved=result.get("solved"),
                   agents=result.get("agents"), wall_s=record.get("wall_s"), resumed=bool(record.get("resumed")),
                   status="done" if result else record.get("status", "missing"), run_dir=point.name)
        rows.append(row)
    return rows


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        fields = [k for k in rows[0] if k not in COLUMNS and k != "setting"] + list(COLUMNS)
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return buf.getvalue()


def _median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values)) if values else float("nan")


def sweep_settings(rows: list[dict], keys: Sequence[str]) -> list[dict]:
    """The points of each setting together, best first: the median over seeds of the median steps to solve
    (a point whose median agent did not solve counts as never), then the final median return (higher first)."""
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["setting"], []).append(row)
    out = []
    for name, group in by.items():
        done = [r for r in group if r["status"] == "done"]
        steps = _median([r["steps_to_solve"] if r["steps_to_solve"] is not None else float("inf") for r in done])
        rets = [r["final_median_return"] for r in done if r["final_median_return"] is not None]
        out.append({"setting": name, **{k: group[0][k] for k in keys}, "points": len(group), "done": len(done),
                    "median_steps_to_solve": steps, "final_median_return": _median(rets),
                    "solved": sum(r["solved"] or 0 for r in done), "agents": sum(r["agents"] or 0 for r in done),
                    "wall_s": sum(r["wall_s"] or 0.0 for r in done)})
    nan_last = lambda x: float("-inf") if x != x else x  # noqa: E731 - NaN (no return yet) sorts last
    out.sort(key=lambda s: (s["median_steps_to_solve"] if s["median_steps_to_solve"] == s["median_steps_to_solve"]
                            else float("inf"), -nan_last(s["final_median_return"])))
    return out


def sweep_table(settings: list[dict]) -> str:
    """The settings as a fixed-width table, best first."""
    head = ("setting", "seeds", "median steps to solve", "final median return", "solved", "wall s")
    body = []
    for s in settings:
        steps = s["median_steps_to_solve"]
        ret = s["final_median_return"]
        body.append((s["setting"], f"{s['done']}/{s['points']}",
                     "never" if steps == float("inf") else ("-" if steps != steps else f"{int(steps)}"),
                     "-" if ret != ret else f"{ret:.1f}", f"{s['solved']}/{s['agents']}", f"{s['wall_s']:.1f}"))
    widths = [max(len(str(r[i])) for r in (head, *body)) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, body)])
