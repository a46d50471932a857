"""``extends:``: a config builds on another (relative path, chains, deep override, cycles refused, errors
that name the right file and line); the continual CartPole configs are now their differences only."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from spikegym.training.config import ConfigError, config_to_dict, load_config

ROOT = Path(__file__).resolve().parents[1]

# The tuned CartPole agent that both continual configs copied in full before extends: (comments dropped).
_OLD_AGENT = """
encoder:
  fields: 15
  neurons_per_field: 4
  max_prob: 0.9
  normalize: fixed
  low:  [-2.4, -2.0, -0.21, -2.5]
  high: [ 2.4,  2.0,  0.21,  2.5]
brain:
  substeps: 20
  neuron: escape
  motor_size: 20
  critic_size: 40
plasticity:
  rule: node_perturbation
  actor_lr: 0.005
  actor_trace_decay: 0.95
  critic_lr: 0.005
  critic_trace_decay: 0.8
dopamine:
  mode: td
  gamma: 0.99
  value_low: -1.0
  value_high: 0.5
"""

OLD_FULL = {
    "cartpole_cycle": """
env:
  id: CartPole-v1
  num_agents: 16
  failure_reward: -1.0
  schedule:
    cycle: true
    cycle_from: 1
    phases:
      - {name: A, steps: 100000, changes: {gravity: 9.8, length: 0.5}}
      - {name: B, steps: 25000, changes: {gravity: 9.8, length: 0.25}}
      - {name: A, steps: 25000, changes: {gravity: 9.8, length: 0.5}}
""" + _OLD_AGENT + """
novelty:
  enabled: false
run:
  steps: 400000
  log_every: 2000
  checkpoint_every: 25000
""",
    "cartpole_action_swap": """
env:
  id: CartPole-v1
  num_agents: 16
  failure_reward: -1.0
  schedule:
    cycle: true
    cycle_from: 1
    phases:
      - {name: normal, steps: 100000, changes: {action_map: [0, 1]}}
      - {name: swapped, steps: 25000, changes: {action_map: [1, 0]}}
      - {name: normal, steps: 25000, changes: {action_map: [0, 1]}}
""" + _OLD_AGENT + """
novelty:
  enabled: false
  surprise_gain: 0.0
  surprise_fast_steps: 200
  surprise_slow_steps: 20000
modules:
  count: 2              # context modules (issue 16): the one difference from the old full config
run:
  steps: 400000
  threads: 1
  log_every: 2000
  checkpoint_every: 25000
""",
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(OLD_FULL))
def test_continual_configs_resolve_to_their_old_full_values(tmp_path, name):
    new = ROOT / "configs" / "continual" / f"{name}.yaml"
    text = new.read_text()
    assert "extends: ../cartpole.yaml" in text and "encoder:" not in text  # only the differences
    old = write(tmp_path, f"{name}.yaml", OLD_FULL[name])
    assert config_to_dict(load_config(new)) == config_to_dict(load_config(old))


def test_child_overrides_parent_deeply(tmp_path):
    write(tmp_path, "base.yaml", """
        env: {id: CartPole-v1, num_agents: 8, kwargs: {sutton_barto_reward: true}}
        encoder: {fields: 9, low: [-1, -1, -1, -1], high: [1, 1, 1, 1], normalize: fixed}
        brain: {substeps: 5, stp: {enabled: true, U: 0.3}}
        run: {steps: 1000, threads: 1}
        """)
    child = write(tmp_path, "sub/child.yaml", """
        extends: ../base.yaml
        env: {num_agents: 4}
        encoder:
          low: [-2, -2, -2, -2]       # a list replaces the parent's
          high: [2, 2, 2, 2]
        brain: {stp: {U: 0.5}}
        novelty:                      # an empty section changes nothing
        run: {threads: null}          # null replaces a value
        """)
    cfg = load_config(child)
    assert cfg.env.num_agents == 4 and cfg.env.id == "CartPole-v1" and cfg.env.kwargs == {"sutton_barto_reward": True}
    assert cfg.encoder.fields == 9 and cfg.encoder.low == [-2.0] * 4 and cfg.encoder.normalize == "fixed"
    assert cfg.brain.substeps == 5 and cfg.brain.stp.enabled and cfg.brain.stp.U == 0.5
    assert cfg.run.steps == 1000 and cfg.run.threads is None


def test_chain_and_schedule_null(tmp_path):
    write(tmp_path, "a.yaml", """
        env:
          schedule: {phases: [{name: A, steps: 100, changes: {gravity: 12.0}}]}
        run: {steps: 100}
        """)
    write(tmp_path, "b.yaml", "extends: a.yaml\nrun: {steps: 200}\nbrain: {substeps: 3}\n")
    c = write(tmp_path, "c.yaml", "extends: b.yaml\nrun: {steps: 300}\n")
    cfg = load_config(c)
    assert cfg.run.steps == 300 and cfg.brain.substeps == 3 and cfg.env.schedule["phases"][0]["steps"] == 100
    d = write(tmp_path, "d.yaml", "extends: b.yaml\nenv: {schedule: null}\n")
    assert load_config(d).env.schedule is None


def test_cycles_are_refused_in_one_line(tmp_path):
    a = write(tmp_path, "a.yaml", "extends: b.yaml\n")
    b = write(tmp_path, "b.yaml", "run: {steps: 10}\nextends: ./a.yaml\n")
    assert error_of(a) == (f"{b}:2: 'extends' makes a cycle: {a.resolve()} -> {b.resolve()} -> {a.resolve()}")
    me = write(tmp_path, "me.yaml", "extends: me.yaml\n")
    assert error_of(me) == f"{me}:1: 'extends' makes a cycle: {me.resolve()} -> {me.resolve()}"


def test_errors_name_the_file_and_line_they_come_from(tmp_path):
    base = write(tmp_path, "base.yaml", "brain:\n  substeps: 20\n  dt: -1\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nrun:\n  steps: 100\n")
    assert error_of(child) == f"{base}:3: 'brain.dt' must be > 0.0, got -1"
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nbrain:\n  dt: 0.5\n  substep: 3\n")
    assert error_of(child) == f"{child}:4: unknown key 'brain.substep' (did you mean 'brain.substeps'?)"
    ok = write(tmp_path, "ok.yaml", "extends: base.yaml\n\nbrain:\n  dt: 0.5\n")
    assert load_config(ok).brain.dt == 0.5  # the child's value wins where the parent's was bad
    missing = write(tmp_path, "missing.yaml", "run: {steps: 5}\nextends: bse.yaml\n")
    assert error_of(missing) == (f"{missing}:2: 'extends' {str(tmp_path / 'bse.yaml')!r}: no such config file "
                                 f"(did you mean '{base}'?)")
    bad = write(tmp_path, "bad.yaml", "extends: [base.yaml]\n")
    assert error_of(bad).startswith(f"{bad}:1: 'extends' must be the path of another config file")
    listy = write(tmp_path, "listy.yaml", "- 1\n")
    child = write(tmp_path, "child2.yaml", "extends: listy.yaml\n")
    assert error_of(child) == f"{listy}:1: the top level must be a mapping of sections (env:, brain:, run:, ...), got a list"
