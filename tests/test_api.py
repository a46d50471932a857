"""The public API: ``from spikegym.training import train, load`` works, stays cheap to import, and
the README's "Python API" example runs as written."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    code = readme_example()
    assert 8 <= len(code.strip().splitlines()) <= 14  # a short example
    assert code.count('"runs/api-example"') == 1
    monkeypatch.chdir(ROOT)  # the example names configs/cartpole.yaml
    code = code.replace('"runs/api-example"', repr(str(tmp_path / "api-example")))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert re.fullmatch(r"agent 0 kept the pole up for \d+ steps\n", out.getvalue()), out.getvalue()
    assert (tmp_path / "api-example" / "result.json").is_file()


def test_load_gives_a_policy_that_acts_like_the_checkpoint(tmp_path):
    from spikegym.training import load, load_config, train

    cfg = load_config(ROOT / "configs" / "cartpole.yaml", ["run.steps=300", "env.num_agents=3", "run.progress=off"])
    result = train(cfg, run_dir=tmp_path / "run")
    a, b = load(result["run_dir"], agent=2), load(result["run_dir"], agent=2)
    assert (a.num_agents, a.index, a.step) == (3, 2, 300)
    obs = np.array([0.01, 0.2, -0.03, -0.1], np.float32)
    acts = [a.predict(obs) for _ in range(5)]
    assert all(int(x) in (0, 1) for x in acts)
    assert acts == [b.predict(obs) for _ in range(5)]  # learning off, same noise stream: same actions
    a.reset()  # a new episode: fast state cleared (the noise stream goes on)
    assert int(a.predict(obs)) in (0, 1)
    with pytest.raises(ValueError, match="agent must be in 0..2"):
        load(result["run_dir"], agent=3)
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        load(result["run_dir"], "best")


def test_package_import_is_cheap_and_names_are_lazy():
    code = ("import sys, spikegym.training as t; heavy = [m for m in ('torch', 'gymnasium') if m in sys.modules]; "
            "print(heavy, 'train' in dir(t), sorted(t.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] True [") and "'load'" in out and "'train'" in out
    from spikegym.training import load, train

    assert callable(train) and callable(load)
