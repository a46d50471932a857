"""The cue-response world (envs/cue_response.py) and the few-shot benchmark (benchmarks/fewshot.py)."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
from conftest import load_benchmark

from spikegym.envs import make_vector_env, reset_seeds
from spikegym.envs.cue_response import ID, CueResponseEnv


def test_one_trial_per_episode_and_only_the_paired_action_pays():
    env = gym.make(ID, n_cues=5, n_actions=3, pairing=[2, 1, 0, 2, 1], wrong_reward=-0.5)
    seen = set()
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        cue = int(obs.argmax())
        assert obs.sum() == 1 and info["cue"] == cue
        seen.add(cue)
        for action in range(3):
            env.reset(seed=seed)
            final, reward, term, trunc, info = env.step(action)
            assert term and not trunc and final.sum() == 0
            assert reward == (1.0 if action == [2, 1, 0, 2, 1][cue] else -0.5) and info["correct"] == (reward == 1.0)
    assert seen == set(range(5))


def test_set_task_on_a_vector_env_applies_from_the_next_reset():
    envs = make_vector_env(ID, 3, 0, kwargs={"n_cues": 6, "n_actions": 4}, vectorization="sync")
    obs, _ = envs.reset(seed=reset_seeds(0, 3))
    envs.unwrapped.call("set_task", cues=[4], pairing=[0, 0, 0, 0, 3, 0])
    _, reward, term, _, _ = envs.step(np.zeros(3, np.int64))  # the trial already shown keeps its cue...
    assert term.all()
    np.testing.assert_array_equal(reward, np.where(obs.argmax(1) == 4, 0.0, 1.0))  # ...and takes the new pairing
    obs, reward, term, _, _ = envs.step(np.zeros(3, np.int64))  # the reset step: cue 4 everywhere
    assert (obs.argmax(1) == 4).all() and not term.any() and (reward == 0).all()
    _, reward, _, _, _ = envs.step(np.full(3, 3))
    assert (reward == 1).all()
    envs.close()


def test_bad_tasks_are_refused():
    env = CueResponseEnv(n_cues=3, n_actions=2)
    with pytest.raises(ValueError, match="pairing"):
        env.set_task(pairing=[0, 1])
    with pytest.raises(ValueError, match="pairing"):
        env.set_task(pairing=[0, 1, 2])
    with pytest.raises(ValueError, match="cues"):
        env.set_task(cues=[3])
    with pytest.raises(ValueError, match="cues"):
        env.set_task(cues=[])


def test_trials_to_criterion():
    bench = load_benchmark("fewshot")
    assert bench.trials_to_criterion([1] * 10) == 10
    assert bench.trials_to_criterion([0, 0] + [1] * 8) == 10  # 8 of the first 10
    assert bench.trials_to_criterion([0, 0, 0] + [1] * 8) == 11
    assert bench.trials_to_criterion([1, 0] * 20) == math.inf
    assert bench.trials_to_criterion([1] * 9) == math.inf  # a window needs 10 trials


SUMMARY = (r"summary: world=CueResponse agents=4 pretrain=60 pretrain_accuracy=\S+ new_median_trials=\S+ "
           r"reversal_median_trials=\S+ target_new_within_10=(reached|not reached)")


def test_fewshot_quick_run_prints_the_summary(capsys):
    bench = load_benchmark("fewshot")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(SUMMARY, out[-1]), out[-1]
    assert len([line for line in out if re.match(r"\s+\d+\s+(>?\d+)\s", line)]) == 4  # one row per agent


def test_spiking_agents_learn_the_cue_pairings():
    """Pre-training moves the agents well above chance (0.25 with 4 actions): the world can be learned."""
    bench = load_benchmark("fewshot")
    args = bench.argparse.Namespace(config=str(bench.ROOT / "configs" / "cue_response.yaml"), agents=8, pretrain=300,
                                    max_trials=10, seed=0, threads=1, set=[])
    res = bench.spiking(args)
    assert res["pretrain_curve"][:50].mean() < 0.4 and res["pretrain_accuracy"] > 0.5
