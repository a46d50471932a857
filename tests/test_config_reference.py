"""``spikegym config --reference`` covers every schema field; ``spikegym config FILE`` prints it resolved."""

from __future__ import annotations

from pathlib import Path

import yaml

from spikegym.training import cli
from spikegym.training.config import Config, config_reference, load_config
from spikegym.training.config_validate import all_keys, section_paths

ROOT = Path(__file__).resolve().parents[1]


def test_reference_has_a_row_for_every_key_with_its_default_and_meaning(capsys):
    assert cli.main(["config", "--reference"]) == 0
    out = capsys.readouterr().out
    assert out == config_reference() + "\n"
    rows = {}
    for line in out.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("*")] = cells
    sections = section_paths(Config)
    keys = all_keys(Config)
    assert len(keys) > 90 and set(rows) == {".".join(k) for k in keys}
    for key in keys:
        name, kind, default, meaning = rows[".".join(key)]
        assert meaning, name  # every key says what it means
        if key not in sections:
            assert kind and default, name
    assert rows["dopamine.gamma"][2:] == ["0.99", "TD discount [min 0.0, max 1.0]"]
    assert rows["run.seed"][2] == "0" and "max 4294967295" in rows["run.seed"][3]


def test_config_file_prints_the_resolved_config(tmp_path, capsys):
    path = ROOT / "configs" / "continual" / "cartpole_cycle.yaml"
    assert cli.main(["config", str(path), "--set", "run.steps=1e5"]) == 0
    out = capsys.readouterr().out
    assert "extends" not in out and yaml.safe_load(out)["encoder"]["max_prob"] == 0.9  # from cartpole.yaml
    again = tmp_path / "resolved.yaml"
    again.write_text(out)
    cfg = load_config(path, ["run.steps=1e5"])
    assert load_config(again) == cfg and cfg.run.steps == 100_000


def test_config_command_errors(tmp_path, capsys):
    assert cli.main(["config"]) == 2
    assert capsys.readouterr().err == "spikegym: error: config needs a CONFIG file, or --reference\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("brain:\n  substep: 3\n")
    assert cli.main(["config", str(bad)]) == 2
    assert capsys.readouterr().err == f"spikegym: error: {bad}:2: unknown key 'brain.substep' (did you mean 'brain.substeps'?)\n"


def test_new_environment_guide_examples_load(tmp_path):
    """The configs in docs/new_environment.md load (the guide is linked from the README)."""
    guide = (ROOT / "docs" / "new_environment.md").read_text()
    assert "docs/new_environment.md" in (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    full = next(b for b in blocks if b.startswith("# configs/mountaincar_continuous.yaml"))
    variant = next(b for b in blocks if b.startswith("extends:"))
    (tmp_path / "mountaincar_continuous.yaml").write_text(full)
    (tmp_path / "variant.yaml").write_text(variant)
    base, cfg = load_config(tmp_path / "mountaincar_continuous.yaml"), load_config(tmp_path / "variant.yaml")
    assert base.env.id == "MountainCarContinuous-v0" and base.encoder.pairs == [[0, 1]]
    assert cfg.env.kwargs == {"goal_velocity": 0.02} and cfg.brain.action_gain == base.brain.action_gain == 2.0
    first = next(b for b in blocks if b.startswith("env:\n  id: MountainCarContinuous-v0"))
    (tmp_path / "env.yaml").write_text(first)
    assert load_config(tmp_path / "env.yaml").env.max_episode_steps == 999


def test_readme_test_command_is_what_ci_runs():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "ruff check ." in command and "mypy" in command and command.endswith("pytest -q")
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text()
