"""Config loading and validation, the CLI front-end, and the TensorBoard tag table."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml

from spikegym.training import cli, tags
from spikegym.training.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_reference,
    config_to_dict,
    load_config,
    save_resolved_config,
    section,
    setting,
)


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    text = str(info.value)
    assert "\n" not in text
    return info.value


# ---------------------------------------------------------------------------------------------
# Defaults and schema
# ---------------------------------------------------------------------------------------------


def test_defaults_match_schema():
    cfg = load_config(None)
    assert cfg == Config() == config_from_dict({})
    assert cfg.env.id == "CartPole-v1" and cfg.env.num_agents == 16
    assert cfg.brain.substeps == 20 and cfg.brain.neuron == "escape"
    assert cfg.plasticity.actor_trace_decay == 0.95 and cfg.plasticity.critic_trace_decay == 0.8
    assert cfg.dopamine.gamma == 0.99 and cfg.run.steps == 200_000
    assert cfg.encoder.adaptation.tau_adapt == 0.2 and cfg.brain.stp.U == 0.2
    assert cfg.novelty.hash_bits == 16 and cfg.run.keep_checkpoints == 2
    # mutable defaults are not shared between instances
    a, b = Config(), Config()
    a.env.kwargs["x"] = 1
    assert b.env.kwargs == {}


def test_every_field_has_help_and_valid_default():
    def walk(obj, prefix=""):
        for f in dataclasses.fields(obj):
            key = prefix + f.name
            assert f.metadata.get("help"), f"{key} has no help text"
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")

    walk(Config())
    # Re-validating the defaults exercises every range limit on every default.
    assert config_from_dict(config_to_dict(Config())) == Config()
    table = config_reference()
    assert "| brain.substeps | an integer | 20 |" in table and "[min 1]" in table
    assert table.count("\n") > 80


# ---------------------------------------------------------------------------------------------
# Each kind of error names file, line, key and (where it can) the fix
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, key, suggestion",
    [
        ("brain:\n  dt: 1.0\n  substep: 10\n", 3, "brain.substep", "brain.substeps"),
        ("env:\n  id: CartPole-v1\nbrian:\n  substeps: 3\n", 3, "brian", "brain"),
        ("brain:\n  stp:\n    enable: true\n", 3, "brain.stp.enable", "brain.stp.enabled"),
        ("# a comment\nbrain:\n  gamma: 0.9\n", 3, "brain.gamma", "dopamine.gamma"),  # right name, wrong section
        ("plasticity:\n  stdp:\n    tau_plu: 3\n", 3, "plasticity.stdp.tau_plu", "plasticity.stdp.tau_plus"),
    ],
)
def test_unknown_key_names_file_line_and_nearest(tmp_path, text, line, key, suggestion):
    path = write(tmp_path, text)
    err = error_of(path)
    assert str(err) == f"{path}:{line}: unknown key '{key}' (did you mean '{suggestion}'?)"
    assert err.line == line and err.key == key and err.source == str(path)


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    err = error_of(write(tmp_path, "dopamine:\n  zzzzqqq: 1\n"))
    assert "unknown key 'dopamine.zzzzqqq'" in str(err)
    assert "valid keys here: mode, gamma, baseline_decay, clip" in str(err)


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "brain:\n  substeps: 3\n  dt: [1, 2\nrun:\n  steps: 5\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:4:")  # where the parser gave up
    assert err.line == 4 and err.column is not None
    assert "YAML syntax error" in str(err) and "started on line 3" in str(err)

    err = error_of(write(tmp_path, "brain:\n\tsubsteps: 3\n", "tab.yaml"))
    assert err.line == 2 and err.column == 1 and "cannot start any token" in str(err)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("dopamine:\n  gamma: abc\n", 2, "'dopamine.gamma' expected a float, got 'abc'"),
        ("run:\n  steps: many\n", 2, "'run.steps' expected an integer, got 'many'"),
        ("run:\n  steps: '2.5'\n", 2, "'run.steps' expected an integer, got '2.5'"),
        ("run:\n  steps: 2.5\n", 2, "'run.steps' expected an integer, got 2.5"),
        ("novelty:\n  enabled: 1\n", 2, "'novelty.enabled' expected true or false, got 1"),
        ("novelty:\n  enabled: 'true'\n", 2, "'novelty.enabled' expected true or false, got 'true'"),
        ("run:\n  steps: true\n", 2, "'run.steps' expected an integer, got true"),
        ("run:\n  device: 3\n", 2, "'run.device' expected a string, got 3 (put it in quotes)"),
        ("env:\n  max_episode_steps: lots\n", 2, "'env.max_episode_steps' expected an integer or null, got 'lots'"),
        ("encoder:\n  low: 3\n", 2, "'encoder.low' expected a list of numbers or null, got 3"),
        ("encoder:\n  low:\n    - 1.0\n    - x\n", 4, "'encoder.low[1]' expected a float, got 'x'"),
        ("brain: 7\n", 1, "'brain' must be a section (a mapping of keys), got 7"),
        ("env:\n  kwargs: [1, 2]\n", 2, "'env.kwargs' expected a mapping, got a list"),
        ("brain:\n  motor_bias: .nan\n", 2, "'brain.motor_bias' must be a finite number, got .nan"),
    ],
)
def test_wrong_type(tmp_path, text, line, message):
    path = write(tmp_path, text)
    assert str(error_of(path)) .startswith(f"{path}:{line}: {message}")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("dopamine:\n  gamma: 1.5\n", 2, "'dopamine.gamma' must be between 0.0 and 1.0, got 1.5"),
        ("env:\n  num_agents: 0\n", 2, "'env.num_agents' must be between 1 and 1048576, got 0"),
        ("brain:\n  dt: 0\n", 2, "'brain.dt' must be > 0.0, got 0"),
        ("novelty:\n  hash_bits: 31\n", 2, "'novelty.hash_bits' must be between 1 and 30, got 31"),
        ("brain:\n  homeostasis:\n    target_rate: -0.1\n", 3, "'brain.homeostasis.target_rate' must be between"),
        ("run:\n  eval_every: 0\n", 2, "'run.eval_every' must be >= 1, got 0"),  # limits apply inside Optional
        ("dopamine:\n  clip: -1\n", 2, "'dopamine.clip' must be > 0.0, got -1"),
    ],
)
def test_out_of_range(tmp_path, text, line, message):
    path = write(tmp_path, text)
    assert str(error_of(path)).startswith(f"{path}:{line}: {message}")


def test_literal_choices_and_yaml_on_off(tmp_path):
    path = write(tmp_path, "brain:\n  neuron: lif2\n")
    assert str(error_of(path)) == (
        f"{path}:2: 'brain.neuron' must be one of 'escape', 'lif', 'alif'; got 'lif2' (did you mean 'lif'?)"
    )
    # YAML 1.1 reads on/off as booleans; a Literal with those choices takes them back.
    assert load_config(write(tmp_path, "run:\n  progress: off\n")).run.progress == "off"
    assert load_config(write(tmp_path, "run:\n  progress: on\n")).run.progress == "on"
    # ... but not for a Literal without such choices
    assert "must be one of" in str(error_of(write(tmp_path, "brain:\n  engine: on\n")))


def test_cross_field_check(tmp_path):
    path = write(tmp_path, "encoder:\n  low: [1, 2]\n  high: [3]\n")
    assert str(error_of(path)) == f"{path}:3: 'encoder.high' has 1 values but 'low' has 2"
    path = write(tmp_path, "run:\n  device: gpu\n")
    assert "'run.device' is not a torch device" in str(error_of(path))
    assert config_from_dict({}, overrides=["run.device=cuda:1"]).run.device == "cuda:1"  # (load_config also checks it exists)
    path = write(tmp_path, "encoder:\n  pairs: [[0, 2], [1, 1]]\n")
    assert str(error_of(path)).startswith(f"{path}:2: 'encoder.pairs' must be pairs of two different")
    path = write(tmp_path, "encoder:\n  angles: [[0, 0]]\n")
    assert str(error_of(path)).startswith(f"{path}:2: 'encoder.angles' must be (cos, sin) pairs")
    # dimensions the env's observations do not have (CartPole: 4; with one angle, 5 coded dimensions)
    path = write(tmp_path, "encoder:\n  angles: [[0, 1]]\n  pairs:\n    - [0, 4]\n    - [2, 5]\n")
    assert str(error_of(path)) == (f"{path}:5: 'encoder.pairs' names dimension 5, but CartPole-v1 has 5 coded "
                                   "dimensions (4 observed + 1 angles)")
    path = write(tmp_path, "env:\n  id: Pendulum-v1\nencoder:\n  angles: [[0, 3]]\n")
    assert str(error_of(path)) == f"{path}:4: 'encoder.angles' names dimension 3, but Pendulum-v1 observations have 3 (0 .. 2)"
    path = write(tmp_path, "encoder:\n  low: [0, 0]\n  high: [1, 1]\n")
    assert str(error_of(path)) == f"{path}:2: 'encoder.low' has 2 values but CartPole-v1 observations have 4 dimensions"
    assert load_config(None, ["env.id=Pendulum-v1", "encoder.angles=[[0, 1]]", "encoder.pairs=[[3, 2]]"]).encoder.pairs
    path = write(tmp_path, "novelty:\n  neurons: 16\n  active: 32\n")
    assert str(error_of(path)) == f"{path}:3: 'novelty.active' must be at most 'neurons' (16)"
    # the critic's starting value: strictly inside its range (the default range with failure_reward -1 is [-1, 0])
    path = write(tmp_path, "env:\n  failure_reward: -1.0\ndopamine:\n  value_init: -1.0\n")
    assert str(error_of(path)) == (f"{path}:4: 'dopamine.value_init' must lie strictly between the critic's value "
                                   "range ends -1 and 0 (dopamine.value_low/high)")
    path = write(tmp_path, "brain:\n  critic_bias: -1.0\ndopamine:\n  value_low: -2.0\n  value_init: -1.0\n")
    assert str(error_of(path)).startswith(f"{path}:5: 'dopamine.value_init' sets the critic's bias: leave 'brain.critic_bias' out")
    # STDP centred on the firing probability needs noisy motor neurons
    path = write(tmp_path, "brain:\n  neuron: lif\nplasticity:\n  rule: stdp\n  stdp:\n    center: expected\n")
    assert str(error_of(path)) == (f"{path}:6: 'plasticity.stdp.center: expected' needs noisy motor neurons: set "
                                   "'brain.lif_escape_slope' > 0, or use center: rate")
    assert load_config(path, ["brain.lif_escape_slope=4"]).plasticity.stdp.center == "expected"


def test_duplicate_key(tmp_path):
    path = write(tmp_path, "brain:\n  dt: 1\n  substeps: 4\n  dt: 2\n")
    assert str(error_of(path)) == f"{path}:4: duplicate key 'brain.dt' (first given on line 2)"


def test_unknown_env_id_suggests_registered_ids(tmp_path):
    path = write(tmp_path, "run:\n  steps: 10\nenv:\n  id: CartPol-v1\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:4: unknown env id 'CartPol-v1' for 'env.id' (did you mean 'CartPole-v1'")
    err = error_of(None, ["env.id=pendulum-v1"])
    assert str(err).startswith("--set env.id=pendulum-v1: unknown env id") and "'Pendulum-v1'" in str(err)
    assert "cannot import module 'no_such_module_xyz'" in str(error_of(None, ["env.id=no_such_module_xyz:Foo-v0"]))


def test_missing_file(tmp_path):
    write(tmp_path, "run:\n  steps: 5\n", "cartpole.yaml")
    err = error_of(tmp_path / "cartpol.yaml")
    assert str(err) == f"{tmp_path / 'cartpol.yaml'}: no such config file (did you mean '{tmp_path / 'cartpole.yaml'}'?)"
    assert str(error_of(tmp_path / "zzz.yaml")) == f"{tmp_path / 'zzz.yaml'}: no such config file"
    assert "is a folder" in str(error_of(tmp_path))


def test_top_level_must_be_mapping(tmp_path):
    path = write(tmp_path, "- 1\n- 2\n")
    assert str(error_of(path)).startswith(f"{path}:1: the top level must be a mapping")
    assert load_config(write(tmp_path, "# only a comment\n")) == Config()  # empty file: defaults
    assert load_config(write(tmp_path, "brain:\n  # all commented out\n")) == Config()


# ---------------------------------------------------------------------------------------------
# Numbers as PyYAML reads them
# ---------------------------------------------------------------------------------------------


def test_numeric_strings_are_coerced(tmp_path):
    path = write(
        tmp_path,
        """
        run:
          steps: 1e6          # PyYAML: the string '1e6'
          checkpoint_every: 1.5e3
          log_every: 1_000
        plasticity:
          actor_lr: 3e-4      # PyYAML: the string '3e-4'
          critic_lr: 1        # an int for a float field
        encoder:
          low: [-2.4, '-2e0', 1, 0.5]  # CartPole's 4 dimensions
        """,
    )
    raw = yaml.safe_load(path.read_text())
    assert raw["run"]["steps"] == "1e6" and raw["plasticity"]["actor_lr"] == "3e-4"  # the quirk is real
    cfg = load_config(path)
    assert cfg.run.steps == 1_000_000 and type(cfg.run.steps) is int
    assert cfg.run.checkpoint_every == 1500 and type(cfg.run.checkpoint_every) is int
    assert cfg.run.log_every == 1000
    assert cfg.plasticity.actor_lr == pytest.approx(3e-4) and type(cfg.plasticity.actor_lr) is float
    assert cfg.plasticity.critic_lr == 1.0 and type(cfg.plasticity.critic_lr) is float
    assert cfg.encoder.low == [-2.4, -2.0, 1.0, 0.5] and all(type(x) is float for x in cfg.encoder.low)
    err = error_of(write(tmp_path, "run:\n  steps: 2.5e0\n"))
    assert "expected an integer, got '2.5e0' (write e.g. 200000 or 2e5)" in str(err)


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_merge_before_validation(tmp_path):
    path = write(tmp_path, "brain:\n  substeps: 10\n  dt: 0.5\nenv:\n  kwargs: {sutton_barto_reward: true}\n")
    data = yaml.safe_load(path.read_text())  # (config_from_dict: load_config would refuse the unknown kwarg 'extra')
    cfg = config_from_dict(data, str(path), ["brain.substeps=7", "run.steps=3e4", "env.kwargs.extra=[1, 2]", "dopamine.clip=null"])
    assert cfg.brain.substeps == 7 and cfg.brain.dt == 0.5  # the override wins, siblings stay
    assert cfg.run.steps == 30_000
    assert cfg.env.kwargs == {"sutton_barto_reward": True, "extra": [1, 2]}
    assert cfg.dopamine.clip is None
    assert load_config(path, ["brain.substeps=7", "brain.substeps=8"]).brain.substeps == 8  # last wins


def test_override_values_are_yaml_not_python(tmp_path):
    cfg = config_from_dict(None, overrides=["env.kwargs.x=__import__('os').getcwd()", "run.run_dir=runs/a b"])
    assert cfg.env.kwargs["x"] == "__import__('os').getcwd()"
    assert cfg.run.run_dir == "runs/a b"


@pytest.mark.parametrize(
    "override, message",
    [
        ("brain.substep=3", "--set brain.substep=3: unknown key 'brain.substep' (did you mean 'brain.substeps'?)"),
        ("run.steps=abc", "--set run.steps=abc: 'run.steps' expected an integer, got 'abc'"),
        ("dopamine.gamma=2", "--set dopamine.gamma=2: 'dopamine.gamma' must be between 0.0 and 1.0, got 2"),
        ("run.steps", "--set run.steps: expected key=value"),
        ("brain..dt=1", "--set brain..dt=1: expected key=value"),
        ("brain.substeps.x=1", "--set brain.substeps.x=1: cannot set 'brain.substeps.x': 'brain.substeps' is not a section"),
        ("brain.dt=[1", "--set brain.dt=[1: cannot read the value '[1' as YAML"),
    ],
)
def test_override_errors_name_the_override(tmp_path, override, message):
    path = write(tmp_path, "brain:\n  substeps: 10\n")
    err = error_of(path, [override])
    assert str(err).startswith(message)
    assert err.line is None


def test_override_of_section_points_at_override_not_file(tmp_path):
    path = write(tmp_path, "brain:\n  substeps: 10\n")
    err = error_of(path, ["brain={stp: {U: 5}}"])
    assert str(err) == "--set brain={stp: {U: 5}}: 'brain.stp.U' must be between 0.0 and 1.0, got 5"


# ---------------------------------------------------------------------------------------------
# Round trip and generic schema
# ---------------------------------------------------------------------------------------------


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(
        None,
        [
            "env.id=Pendulum-v1",
            "env.kwargs={g: 9.81}",
            "env.failure_reward=-1",
            "env.schedule={phases: [{name: A, steps: 1000}, {name: B, steps: 1000, changes: {gravity: 12.0}}]}",
            "encoder.low=[-1, -1e-5, 0]",
            "encoder.high=[1, 1e-5, 1e20]",
            "plasticity.actor_lr=1e-5",
            "plasticity.w_max=.inf",
            "run.progress=off",
            "run.run_dir=runs/123",
            "brain.structural.enabled=true",
        ],
    )
    path = save_resolved_config(cfg, tmp_path / "run" / "config.yaml")
    assert path.read_text().startswith("#")
    again = load_config(path)
    assert again == cfg
    assert again.run.run_dir == "runs/123" and again.plasticity.w_max == float("inf")
    assert list(config_to_dict(cfg)) == ["env", "encoder", "brain", "plasticity", "dopamine", "novelty", "modules", "run"]
    assert list(yaml.safe_load(path.read_text())["brain"])[:3] == ["substeps", "dt", "neuron"]


@dataclass
class _Inner:
    rate: float = setting(0.5, "a rate", min=0.0, max=1.0)
    names: list[str] = setting(["a"], "names")


@dataclass
class _NewSection:
    mode: Optional[Literal["x", "y"]] = setting(None, "a mode")
    counts: dict[str, int] = setting({}, "per-key counts")
    sizes: list[int] = setting([1], "sizes, each at least 1", min=1)
    inner: _Inner = section(_Inner, "an inner section")
    extra: Optional[_Inner] = setting(None, "an optional section")
    free: Any = setting(None, "anything")


@dataclass
class _Root:
    new: _NewSection = section(_NewSection, "a section the validator has never seen")


def test_validator_is_generic_over_new_sections():
    ok = config_from_dict(
        {"new": {"mode": "y", "counts": {"a": "2e3"}, "sizes": [1, "1e1"], "extra": {"rate": 1}, "free": {"q": [1]}}},
        schema=_Root,
    )
    assert ok.new.mode == "y" and ok.new.counts == {"a": 2000} and ok.new.sizes == [1, 10]
    assert ok.new.extra == _Inner(rate=1.0) and ok.new.inner == _Inner() and ok.new.free == {"q": [1]}

    def err(d):
        with pytest.raises(ConfigError) as info:
            config_from_dict(d, source="t.yaml", schema=_Root)
        return str(info.value)

    assert err({"new": {"sizes": [1, 0]}}) == "t.yaml: 'new.sizes[1]' must be >= 1, got 0"
    assert err({"new": {"counts": {"a": 1.5}}}) == "t.yaml: 'new.counts.a' expected an integer, got 1.5"
    assert err({"new": {"extra": {"rat": 1}}}) == "t.yaml: unknown key 'new.extra.rat' (did you mean 'new.extra.rate'?)"
    assert err({"new": {"mode": "z"}}).startswith("t.yaml: 'new.mode' must be one of 'x', 'y'; got 'z'")
    assert err({"new": {"inner": {"names": ["a", 3]}}}) == (
        "t.yaml: 'new.inner.names[1]' expected a string, got 3 (put it in quotes)"
    )


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake_loop(monkeypatch):
    """Stand-ins for spikegym.training.loop / evaluate / record: record their calls."""
    calls = {}
    modules = {name: types.ModuleType(f"spikegym.training.{name}") for name in ("loop", "evaluate", "record")}

    def train(cfg, *, run_dir=None, resume=False, command_line=None):
        calls["train"] = dict(cfg=cfg, run_dir=run_dir, resume=resume, command_line=command_line)
        return {"run_dir": str(run_dir or "runs/auto"), "solved": 3, "median": 1.5}

    def evaluate(run_dir, episodes=10, seed=None, checkpoint=None):
        calls["evaluate"] = dict(run_dir=run_dir, episodes=episodes, seed=seed, checkpoint=checkpoint)
        return {"mean_reward": 500.0}

    def record(run_dir, episodes=1, out=None, agents=4, seed=None, max_steps=None, checkpoint=None):
        calls["record"] = dict(run_dir=run_dir, episodes=episodes, out=out, agents=agents, seed=seed,
                               max_steps=max_steps, checkpoint=checkpoint)
        return [Path("videos/a.mp4"), Path("videos/b.mp4")]

    modules["loop"].train, modules["evaluate"].evaluate, modules["record"].record = train, evaluate, record
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, f"spikegym.training.{name}", module)
    return calls


def test_cli_train_maps_flags_to_config(tmp_path, fake_loop, capsys):
    path = write(tmp_path, "brain:\n  substeps: 10\n")
    run_dir = tmp_path / "run 1"
    code = cli.main(
        ["train", str(path), "--steps", "2e3", "--seed", "7", "--device", "cpu", "--run-dir", str(run_dir),
         "--set", "brain.dt=0.5", "env.num_agents=4", "--set", "run.seed=1"]
    )
    assert code == 0
    call = fake_loop["train"]
    cfg = call["cfg"]
    assert (cfg.run.steps, cfg.run.seed, cfg.run.device, cfg.run.run_dir) == (2000, 7, "cpu", str(run_dir))
    assert (cfg.brain.substeps, cfg.brain.dt, cfg.env.num_agents) == (10, 0.5, 4)
    assert call["run_dir"] == run_dir and call["resume"] is False
    assert call["command_line"].startswith("spikegym train ") and "'--run-dir'" not in call["command_line"]
    out = capsys.readouterr().out
    assert "spikegym: done:" in out and f"run folder:  {run_dir}" in out  # a readable summary, not JSON
    assert cli.main(["train", str(path), "--run-dir", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run_dir": str(run_dir), "solved": 3, "median": 1.5}


def test_cli_resume_uses_run_folder_config(tmp_path, fake_loop):
    run_dir = tmp_path / "run"
    save_resolved_config(load_config(None, ["brain.substeps=5", "run.steps=100"]), run_dir / "config.yaml")
    assert cli.main(["train", "--resume", str(run_dir), "--steps", "400"]) == 0
    call = fake_loop["train"]
    assert call["resume"] is True and call["run_dir"] == run_dir
    assert call["cfg"].brain.substeps == 5 and call["cfg"].run.steps == 400


def test_cli_eval_and_record(tmp_path, fake_loop, capsys):
    assert cli.main(["eval", str(tmp_path), "--episodes", "3", "--seed", "5", "--checkpoint", "best", "--json"]) == 0
    assert fake_loop["evaluate"] == {"run_dir": tmp_path, "episodes": 3, "seed": 5, "checkpoint": "best"}
    assert json.loads(capsys.readouterr().out) == {"mean_reward": 500.0}
    assert cli.main(["record", str(tmp_path), "--out", str(tmp_path / "v")]) == 0
    assert fake_loop["record"] == {"run_dir": tmp_path, "episodes": 1, "out": tmp_path / "v", "agents": 4,
                                   "seed": None, "max_steps": None, "checkpoint": None}
    assert capsys.readouterr().out.split() == [str(Path("videos/a.mp4")), str(Path("videos/b.mp4"))]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "{bad}", "--set", "brain.substep=3"], "spikegym: error: --set brain.substep=3: unknown key"),
        (["train", "{bad}"], "spikegym: error: {bad}:2: 'brain.dt' must be > 0.0, got -1"),
        (["train", "{missing}"], "spikegym: error: {missing}: no such config file"),
        (["train"], "spikegym: error: train needs a CONFIG file (or --resume RUN_DIR)"),
        (["train", "--resume", "{missing}"], "spikegym: error: no such run folder: {missing}"),
        (["eval", "{missing}"], "spikegym: error: no such run folder: {missing}"),
        (["record", "{missing}"], "spikegym: error: no such run folder: {missing}"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, fake_loop, capsys, argv, message):
    bad = write(tmp_path, "brain:\n  dt: -1\n", "bad.yaml")
    names = {"bad": str(bad), "missing": str(tmp_path / "missing")}
    code = cli.main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(message.format(**names))
    assert not fake_loop


def test_cli_subprocess_no_traceback(tmp_path):
    bad = write(tmp_path, "env:\n  num_agents: 4\nbrain:\n  substep: 3\n", "bad.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "spikegym.training.cli", "train", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == f"spikegym: error: {bad}:4: unknown key 'brain.substep' (did you mean 'brain.substeps'?)\n"
    proc = subprocess.run(
        [sys.executable, "-m", "spikegym.training.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "train" in proc.stdout and "record" in proc.stdout


def test_cli_usage_errors_return_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["train", "x.yaml", "--steps", "1.5"]) == 2
    assert "expected a whole number" in capsys.readouterr().err
    assert cli.main(["eval", "run", "--episodes", "0"]) == 2


# ---------------------------------------------------------------------------------------------
# TensorBoard tags
# ---------------------------------------------------------------------------------------------


def test_tags_follow_sb3_cleanrl_and_are_unique():
    assert tags.EP_REW_MEAN == "rollout/ep_rew_mean"
    assert tags.EP_LEN_MEAN == "rollout/ep_len_mean"
    assert tags.FPS == "time/fps"
    assert tags.EVAL_MEAN_REWARD == "eval/mean_reward"
    assert tags.EPISODIC_RETURN == "charts/episodic_return"
    every = tags.all_tags()
    assert len(set(every.values())) == len(every) > 40
    assert all(value.startswith(tags.PREFIXES) for value in every.values())
    assert all(any(v.startswith(p) for v in every.values()) for p in tags.PREFIXES)
    assert tags.tag(tags.BRAIN_RATE, pop="motor") == "brain/rate/motor"
    with pytest.raises(KeyError):
        tags.tag(tags.BRAIN_RATE)
    with pytest.raises(ValueError):
        tags.tag(tags.FPS, pop="motor")
