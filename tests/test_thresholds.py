"""Solved thresholds: one table, Gymnasium's own values (exceptions stated), used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium
import pytest

from spikegym.training.stats import EpisodeStats
from spikegym.training.thresholds import EXCEPTIONS, SOLVED_AT, solved_threshold

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env_id", sorted(SOLVED_AT))
def test_table_is_gymnasiums_reward_threshold_except_where_explained(env_id):
    gym_threshold = gymnasium.spec(env_id).reward_threshold
    if env_id in EXCEPTIONS:
        assert gym_threshold is None or float(gym_threshold) != SOLVED_AT[env_id]
        assert len(EXCEPTIONS[env_id]) > 20  # the reason is written down
    else:
        assert gym_threshold is not None and SOLVED_AT[env_id] == float(gym_threshold)


def test_mujoco_thresholds_are_gymnasiums_not_1000():
    assert (solved_threshold("HalfCheetah-v5"), solved_threshold("Hopper-v5"), solved_threshold("Ant-v5")) == (
        4800.0, 3800.0, 6000.0)
    assert solved_threshold("Walker2d-v5") is None  # Gymnasium gives none: nothing counts as solved
    assert solved_threshold("Swimmer-v4") == float(gymnasium.spec("Swimmer-v4").reward_threshold)  # falls back
    assert solved_threshold("NoSuchEnv-v0") is None


def test_no_other_module_keeps_its_own_threshold_table():
    """The loop, stats, benchmarks and README read the one table; nobody writes env thresholds by hand."""
    entries = "|".join(rf"[\"']{re.escape(e)}[\"']\s*:\s*{t:g}\b" for e, t in SOLVED_AT.items())
    hand_written = re.compile(rf"{entries}|[\"'](HalfCheetah-v5|Hopper-v5|Ant-v5)[\"']\s*:\s*1000\b")
    offenders = [str(p.relative_to(ROOT)) for d in ("training", "agents", "envs", "benchmarks")
                 for p in (ROOT / d).rglob("*.py") if p.name != "thresholds.py" and hand_written.search(p.read_text())]
    assert not offenders
    readme = (ROOT / "README.md").read_text()
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "Ant-v5"):
        assert f"{env_id} {SOLVED_AT[env_id]:g}" in readme


def test_stats_count_solved_at_the_threshold():
    stats = EpisodeStats(2, solved_at=solved_threshold("CartPole-v1"), window=2)
    for step, rets in ((10, [480, 100]), (20, [470, 500])):
        stats.update(step, {"_episode": [True, True], "episode": {"r": rets, "l": [1, 1]}})
    assert stats.solved_step == [20, None]  # agent 0: mean 475 at step 20; agent 1: 300
