"""Bad configs fail before anything is written: one line naming file:line and key, exit status 2, fast.

Item 2 of issue 19 (bounded YAML: size, depth, aliases) and item 5 (devices, seeds, env keywords, schedule
typos, population size, non-finite floats, unsupported spaces): each is checked by ``load_config``, so the
CLI refuses them before the run folder exists.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from spikegym.training import cli
from spikegym.training.config import ConfigError, load_config

# 9 aliases of 9 aliases of ... 10 levels: 9**10 (3.5e9) values once expanded, in about 500 bytes.
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(path, overrides=()) -> str:
    """The one-line error of ``load_config``, which must come in well under a second."""
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert time.perf_counter() - start < 1.0
    text = str(info.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------------
# Item 2: YAML bounds
# ---------------------------------------------------------------------------------------------


def test_alias_bomb_through_the_cli_fails_at_once_and_writes_nothing(tmp_path):
    assert len(BOMB) < 600
    bomb = write(tmp_path, BOMB, "bomb.yaml")
    run_dir = tmp_path / "run"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "spikegym.training.cli", "train", str(bomb), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 30  # the interpreter's start and imports included; the old code never ended
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"spikegym: error: {bomb}:")
    assert "limit 100000" in done.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "text, line, words",
    [
        # (the bomb itself: through the CLI above, in a subprocess, since the old code never returned)
        (BOMB.split("a5:")[0] + "a5: [*a4, *a4]\n", 6, "more than 100000 values once YAML aliases are expanded"),
        ("env:\n  kwargs:\n    x: " + "[" * 5000 + "]" * 5000 + "\n", 3, "nested more than 64 levels deep (limit 64)"),
        ("".join("  " * i + f"k{i}:\n" for i in range(200)), 64, "nested more than 64 levels deep (limit 64)"),
        ("env:\n  kwargs:\n    x: &a [1, *a]\n", 3, "alias *a is used inside the value it names"),
        ("x: &x 1\ny: [" + ", ".join(["*x"] * 1001) + "]\n", 2, "more than 1000 YAML aliases (*name) in one file (limit 1000)"),
        # deep values reached only through aliases count too
        ("a: &a " + "[" * 40 + "]" * 40 + "\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n", 2,
         "nested more than 64 levels deep"),
    ],
    ids=["many-values", "deep-flow", "deep-block", "recursive", "aliases", "deep-alias"],
)
def test_yaml_bounds(tmp_path, text, line, words):
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.startswith(f"{path}:{line}: ") and words in err, err


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 110_000)  # 1.1 MB of comments
    assert load_error(path) == f"{path}: the file is 1100000 bytes; a config file may be at most 1048576 bytes"


def test_deep_override_value_is_refused():
    err = load_error(None, ["env.kwargs.x=" + "[" * 5000 + "]" * 5000])
    assert err.startswith("--set env.kwargs.x=[[[") and "nested more than 64 levels deep (limit 64)" in err


def test_aliases_still_work_and_errors_inside_them_name_the_line_that_uses_them(tmp_path):
    path = write(tmp_path, """
        encoder:
          normalize: fixed
          low: &low [-2.4, -2.0, -0.21, -2.5]
          high: *low
        """)
    assert load_error(path) == f"{path}:4: 'encoder.high' must be greater than 'low' in every dimension"
    path = write(tmp_path, "plasticity: &p {actor_lr: 0.01}\nrun: {steps: 1000}\n")
    assert load_config(path).plasticity.actor_lr == 0.01


# ---------------------------------------------------------------------------------------------
# Item 5: checked before anything is written
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("env:\n  num_agents: 1e9\n", 2, "'env.num_agents' must be between 1 and 1048576, got 1e9"),
        ("run:\n  seed: -1\n", 2, "'run.seed' must be between 0 and 4294967295, got -1"),
        ("run:\n  seed: 1e30\n", 2, "'run.seed' must be between 0 and 4294967295, got 1e30"),
        ("plasticity:\n  actor_lr: .inf\n", 2, "'plasticity.actor_lr' must be a finite number, got .inf"),
        ("dopamine:\n  gamma: -.inf\n", 2, "'dopamine.gamma' must be a finite number, got -.inf"),
        ("brain:\n  dt: 1e400\n", 2, "'brain.dt' must be a finite number, got 1e400"),
        ("encoder:\n  low: [0, 0, 0, .inf]\n", 2, "'encoder.low[3]' must be a finite number, got .inf"),
        ("plasticity:\n  critic_lr: .nan\n", 2, "'plasticity.critic_lr' must be a finite number, got .nan"),
        ("env:\n  kwargs:\n    sutton_barto_rewrd: true\n", 3,
         "unknown keyword 'env.kwargs.sutton_barto_rewrd' for CartPole-v1 (did you mean 'sutton_barto_reward'?)"),
        ("env:\n  kwargs: {max_episode_steps: 10}\n", 2, "use env.max_episode_steps"),
        ("env:\n  id: FrozenLake-v1\n  kwargs: {map_name: 9x9}\n", 3,
         "cannot make FrozenLake-v1 with 'env.kwargs': KeyError: '9x9'"),
        ("env:\n  id: Blackjack-v1\n", 2,
         "Blackjack-v1 has a Tuple observation space; spikegym agents take Box or Discrete observations"),
        ("env:\n  schedule:\n    phases:\n      - {name: A, steps: 100}\n      - name: B\n        steps: 100\n"
         "        changes:\n          gravty: 3.0\n", 8,
         "'env.schedule.phases[1].changes.gravty': unknown change; did you mean 'gravity'?"),
        ("env:\n  schedule:\n    cycles: true\n    phases: [{name: A, steps: 100}]\n", 3,
         "'env.schedule.cycles': unknown key; did you mean 'cycle'?"),
        ("env:\n  schedule:\n    phases: [{name: A, stepz: 100}]\n", 3,
         "'env.schedule.phases[0].stepz': unknown key; did you mean 'steps'?"),
        ("env:\n  schedule:\n    phases:\n      - {name: A, steps: 100, changes: {gravity: {uniform: [1]}}}\n", 4,
         "'env.schedule.phases[0].changes.gravity'"),
        ("env:\n  schedule:\n    phases:\n      - {name: A, steps: 100, changes: {action_map: [0, 1, 2]}}\n", 4,
         "'env.schedule.phases[0].changes.action_map'"),
        ("env:\n  id: Pendulum-v1\n  schedule:\n    phases:\n      - {name: A, steps: 100, changes: {length: 2.0}}\n",
         5, "'env.schedule.phases[0].changes.length': does not apply to Pendulum-v1"),
        ("env:\n  id: Pendulum-v1\n  vectorization: native\n", 3, "Pendulum-v1 has no native vector env"),
        ("env:\n  vectorization: native\n  schedule: {phases: [{name: A, steps: 10}]}\n", 2,
         "'env.vectorization' native cannot carry a task schedule"),
        ("run:\n  device: cuda:0\n", 2, "'run.device' 'cuda:0'"),
        ("run:\n  device: mps\n", 2, "'run.device' 'mps'"),
    ],
)
def test_checked_at_load(tmp_path, monkeypatch, text, line, words):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.startswith(f"{path}:{line}: ") and words in err, err


def test_cuda_device_index_is_checked(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert load_config(None, ["run.device=cuda:1"]).run.device == "cuda:1"
    err = load_error(None, [("run.device=cuda:99", "--device cuda:99")])
    assert err == "--device cuda:99: 'run.device' 'cuda:99': there are 2 CUDA devices (cuda:0 .. cuda:1)"


@pytest.mark.parametrize("available, device", [(False, "cpu"), (True, "cuda")])
def test_device_auto(monkeypatch, available, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert load_config(None, ["run.device=auto"]).run.device == device


def test_allowed_infinity_and_valid_kwargs_still_load():
    assert load_config(None, ["plasticity.w_max=.inf"]).plasticity.w_max == float("inf")  # the field allows it
    assert load_config(None, ["env.kwargs={sutton_barto_reward: true}"]).env.kwargs == {"sutton_barto_reward": True}


@pytest.fixture
def fake_train(monkeypatch):
    """spikegym.training.loop with a train() that writes its run folder, as the real one does first."""
    calls = []
    module = types.ModuleType("spikegym.training.loop")

    def train(cfg, *, run_dir=None, resume=False, command_line=None):
        calls.append(cfg)
        Path(run_dir).mkdir(parents=True)
        return {"run_dir": str(run_dir)}

    module.train = train
    monkeypatch.setitem(sys.modules, "spikegym.training.loop", module)
    return calls


@pytest.mark.parametrize(
    "args, words",
    [
        (["--device", "cuda"], "spikegym: error: --device cuda: 'run.device' 'cuda': this torch"),
        (["--device", "cuda:99"], "spikegym: error: --device cuda:99: 'run.device' 'cuda:99'"),
        (["--device", "mps"], "spikegym: error: --device mps: 'run.device' 'mps'"),
        (["--seed", "-1"], "spikegym: error: --seed -1: 'run.seed' must be between 0 and 4294967295, got -1"),
        (["--seed", "1e30"], "spikegym: error: --seed 1000000000000000019884624838656: 'run.seed' must be between"),
        (["--set", "env.num_agents=1e9"], "'env.num_agents' must be between 1 and 1048576, got 1e9"),
        (["--set", "env.kwargs.gravty=1"], "unknown keyword 'env.kwargs.gravty' for CartPole-v1"),
        (["--set", "env.schedule={phases: [{name: A, steps: 10, changes: {gravty: 1}}]}"],
         "'env.schedule.phases[0].changes.gravty': unknown change; did you mean 'gravity'?"),
        (["--set", "env.id=Blackjack-v1"], "Tuple observation space"),
        (["--set", "dopamine.gamma=.inf"], "'dopamine.gamma' must be a finite number, got .inf"),
        (["--set", "env.kwargs.x=" + "[" * 3000 + "]" * 3000], "nested more than 64 levels deep (limit 64)"),
    ],
)
def test_cli_refuses_before_writing(tmp_path, monkeypatch, capsys, fake_train, args, words):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    config = write(tmp_path, "run:\n  steps: 100\n")
    code = cli.main(["train", str(config), "--run-dir", str(run_dir), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert words in err, err
    assert not fake_train and not run_dir.exists()


def test_a_cuda_run_folder_still_loads_for_evaluation_on_a_cpu_machine(tmp_path, monkeypatch):
    """load_run evaluates on the device it is given: the run's own device need not exist here."""
    import torch

    from spikegym.training.evaluate import load_run
    from spikegym.training.loop import train

    cartpole = Path(__file__).resolve().parents[1] / "configs" / "cartpole.yaml"
    cfg = load_config(cartpole, ["env.num_agents=2", "brain.substeps=3", "encoder.fields=3", "brain.motor_size=4",
                                 "brain.critic_size=4", "run.progress=off", "run.steps=20", "run.threads=1"])
    train(cfg, run_dir=tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "'run.device' 'cuda'" in load_error(config)
    loaded, agent, envs, step = load_run(tmp_path / "run")
    envs.close()
    assert step == 20 and loaded.run.device == "cpu" and agent.device.type == "cpu"


def test_kwargs_typo_for_a_constructor_that_takes_star_kwargs(tmp_path):
    """HalfCheetah's constructor passes **kwargs on to MujocoEnv: the typo is caught when the env is made."""
    path = write(tmp_path, "env:\n  id: HalfCheetah-v5\n  kwargs:\n    forward_reward_weigth: 2.0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}:4: unknown keyword 'env.kwargs.forward_reward_weigth' for HalfCheetah-v5 "
                               "(did you mean 'forward_reward_weight'?)")
