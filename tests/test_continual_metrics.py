"""Continual-learning metrics on synthetic learning curves, against hand-computed numbers."""

import json

import numpy as np
import pytest
import torch

from spikegym.envs import TaskSchedule
from spikegym.training.continual import (REF_MIN, continual_summary, episode_phases, forgetting, forward_transfer,
                                         normalized_auc, phase_return_slope, phase_returns, plasticity_health,
                                         recovery_steps, running_mean)

# One agent, episodes of 10 steps (ends at 10, 20, ..., 400), phases A B A B of 100 steps each.
# With assign="start" the episode ending at 10(e+1) began at 10e, so phase p holds episodes 10p .. 10p+9.
STEPS = np.arange(10, 401, 10)
A1 = [0, 20, 40, 60, 80, 100, 100, 100, 100, 100]
B1 = [0, 0, 0, 0, 0, 50, 50, 50, 50, 50]
A2 = [40, 60, 80, 100, 100, 100, 100, 100, 100, 100]
B2 = [50] * 10
RETURNS = np.array(A1 + B1 + A2 + B2, dtype=float)
BOUNDS = [0, 100, 200, 300, 400]
TASKS = ["A", "B", "A", "B"]


def test_episode_phases_start_and_end_attribution():
    ph = episode_phases(STEPS, BOUNDS)
    assert ph.tolist() == [0] * 10 + [1] * 10 + [2] * 10 + [3] * 10
    # by end step, the episode ending exactly at a boundary still belongs to the phase before it
    assert episode_phases([100, 110], BOUNDS, assign="end").tolist() == [0, 1]
    assert episode_phases([100, 110], BOUNDS).tolist() == [0, 1]
    assert episode_phases([90, 130], BOUNDS).tolist() == [0, 0]  # began at 90: played in phase 0's world
    assert episode_phases([450, 500], BOUNDS).tolist() == [0, -1]  # the first began at 0
    assert episode_phases([450, 500], BOUNDS, assign="end").tolist() == [-1, -1]
    parts = phase_returns(STEPS, RETURNS, BOUNDS)
    assert [p.tolist() for p in parts] == [A1, B1, A2, B2]
    # the three ways to give phases agree
    spans = TaskSchedule.from_dict({"cycle": True, "phases": [{"name": "A", "steps": 100},
                                                             {"name": "B", "steps": 100}]}).spans(400)
    pairs = [(0, 100), (100, 200), (200, 300), (300, 400)]
    for bounds in (spans, pairs):
        assert [p.tolist() for p in phase_returns(STEPS, RETURNS, bounds)] == [A1, B1, A2, B2]


def test_running_mean_is_trailing_and_expanding():
    np.testing.assert_allclose(running_mean(A1, 2), [0, 10, 30, 50, 70, 90, 100, 100, 100, 100])
    np.testing.assert_allclose(running_mean([1, 2, 3], 10), [1, 1.5, 2])


def test_recovery_steps_hand_computed():
    # phase 0, new task A: level = last-2 mean 100, target 90; running mean reaches 90 at episode 5
    #   (end step 60)                                                        -> 60
    # phase 1, new task B: level 50, target 45; running mean [0,0,0,0,0,25,50] -> episode 16, step 170 -> 70
    # phase 2, A again: level of phase 0 = 100, target 90; [40,50,70,90] -> episode 23, step 240 -> 40
    # phase 3, B again: level 50, target 45; first running mean 50 -> episode 30, step 310 -> 10
    assert recovery_steps(STEPS, RETURNS, BOUNDS, TASKS, window=2) == [60, 70, 40, 10]
    # a phase that never gets back is None
    flat = RETURNS.copy()
    flat[20:30] = 10.0
    assert recovery_steps(STEPS, flat, BOUNDS, TASKS, window=2)[2] is None


def test_forgetting_hand_computed():
    # levels (max 2-episode running mean): A 100, B 50; ref_min (worst return) 0 for both.
    # phase 2: end of phase 0 = 100, start of phase 2 = mean(40, 60) = 50 -> (100 - 50) / 100 = 0.5
    # phase 3: end of phase 1 = 50, start of phase 3 = 50                  -> 0
    assert forgetting(STEPS, RETURNS, BOUNDS, TASKS, window=2) == [None, None, 0.5, 0.0]
    # with an explicit task level of 200 for A the same drop is a quarter of it
    assert forgetting(STEPS, RETURNS, BOUNDS, TASKS, window=2, ref_max={"A": 200.0})[2] == 0.25
    # better on return than before = negative forgetting
    better = RETURNS.copy()
    better[30:40] = 60.0
    assert forgetting(STEPS, better, BOUNDS, TASKS, window=2)[3] == pytest.approx((50 - 60) / 60)


def test_negative_returns_keep_their_meaning():
    # The same curves shifted by -200 (a MountainCar-like scale): a naive "90 % of the level"
    # (0.9 * -100 = -90) would ask for more than the level itself. Relative to the min reference
    # every metric is unchanged.
    neg = RETURNS - 200.0
    assert recovery_steps(STEPS, neg, BOUNDS, TASKS, window=2) == [60, 70, 40, 10]
    assert recovery_steps(STEPS, neg, BOUNDS, TASKS, window=2, ref_min=-200.0) == [60, 70, 40, 10]
    assert forgetting(STEPS, neg, BOUNDS, TASKS, window=2) == [None, None, 0.5, 0.0]
    assert phase_return_slope([-110.0, -130.0, -150.0], ref_min=-200.0) == pytest.approx(-20.0 / 90.0)
    with pytest.raises(ValueError, match="ref_min"):
        phase_return_slope([-110.0, -130.0, -150.0])  # the default ref_min=0 would flip the sign


def test_normalized_auc_and_forward_transfer():
    # durations 100, 100, 200; scores 0, 1, 0.5 -> (0 + 100 + 100) / 400
    assert normalized_auc([100, 200, 400], [0.0, 1.0, 0.5], 0, 400, ref_min=0.0, ref_max=1.0) == 0.5
    # window [150, 300): episode 2 counts 50 steps, episode 3 counts 100 -> (50 + 50) / 150
    assert normalized_auc([100, 200, 400], [0.0, 1.0, 0.5], 150, 300, ref_min=0, ref_max=1) == pytest.approx(2 / 3)
    assert normalized_auc([100, 200], [-200.0, -110.0], 0, 200, ref_min=-200.0, ref_max=-110.0) == 0.5
    assert normalized_auc([100], [5.0], 0, 100, ref_min=0, ref_max=1) == 1.0  # clipped to [0, 1]
    assert forward_transfer(0.75, 0.5) == 0.5
    assert forward_transfer(0.2, 0.5) == pytest.approx(-0.6)
    assert forward_transfer(1.0, 1.0) == 0.0


def test_phase_return_slope():
    assert phase_return_slope([500, 400, 300]) == pytest.approx(-0.2)
    # y = 1, 3, 2: slope = sum((x - 1)(y - 2)) / sum((x - 1)^2) = 1 / 2, over the best value 3
    assert phase_return_slope([1, 3, 2]) == pytest.approx(1 / 6)
    assert phase_return_slope([1, 3, 2], ref_max=10.0) == pytest.approx(0.05)
    assert phase_return_slope([7, 7, 7, 7]) == 0.0
    with pytest.raises(ValueError, match="two visits"):
        phase_return_slope([1.0])


def test_plasticity_health_hand_computed():
    rates = np.array([[0.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    w = np.array([[[-2.0, 1.0], [0.0, 1.0]]])
    h = plasticity_health(w, rates, eps=1e-3)
    assert h["dormant_fraction"] == 0.75 and h["dormant_fraction_per_agent"] == [0.5, 1.0]
    assert h["weight_abs_mean"] == 1.0 and h["weight_abs_max"] == 2.0
    assert h["rate_mean"] == pytest.approx(1.5 / 8)
    assert h["rate_std"] == pytest.approx((0.171875 ** 0.5 + 0.0) / 2)  # std over neurons, mean over agents
    # dicts of populations / projections, torch tensors
    h2 = plasticity_health({"in->motor": torch.tensor(w), "critic": torch.zeros(1, 3, 3)},
                           {"motor": torch.tensor(rates[:, :2]), "critic": torch.tensor(rates[:, 2:])})
    assert h2["dormant_fraction"] == 0.75 and h2["weight_abs_max"] == 2.0
    assert h2["weight_abs_mean"] == pytest.approx(4.0 / 13)
    assert h2["rates"]["motor"]["dormant_fraction"] == 0.75 and h2["weights"]["critic"]["abs_max"] == 0.0
    json.dumps(h2, allow_nan=False)


def test_continual_summary_population():
    never = RETURNS.copy()
    never[20:30] = 0.0  # agent 2 does not get back to A in phase 2
    curves = [STEPS, STEPS, STEPS]
    s = continual_summary(curves, [RETURNS, RETURNS, never], BOUNDS, TASKS, window=2,
                          weights=np.ones((3, 2, 2)), rates=np.ones((3, 4)))
    json.dumps(s, allow_nan=False)
    ph = s["phases"]
    assert [p["task"] for p in ph] == TASKS and [p["revisit"] for p in ph] == [False, False, True, True]
    assert [p["recovery_steps"] for p in ph] == [60, 70, 40, 10]
    assert ph[2]["recovered_fraction"] == pytest.approx(2 / 3) and ph[3]["recovered_fraction"] == 1.0
    assert [p["forgetting"] for p in ph] == [None, None, 0.5, 0.0]  # agent 2 forgot all: median [0.5, 0.5, 1]
    assert s["mean_forgetting"] == 0.25
    assert s["median_recovery_steps"] == 25 and s["median_learning_steps"] == 65
    assert ph[0]["mean_return"] == 70.0 and ph[0]["episodes"] == 10
    # AUC (10-step episodes, equal weights): phase 0 scores 0 .2 .4 .6 .8 1 1 1 1 1 -> 0.7;
    # phase 2 .4 .6 .8 1 1 1 1 1 1 1 -> 0.88; phase 1 -> 0.5; phase 3 -> 1.
    # Relearning transfer: A (0.88 - 0.7) / 0.3 = 0.6, B (1 - 0.5) / 0.5 = 1; agent 2's A revisit
    # (all 0): -0.7 / 0.3. Median of [0.6, 1, 0.6, 1, -2.33, 1] = 0.8
    assert [p["auc"] for p in ph] == pytest.approx([0.7, 0.5, 0.88, 1.0])
    assert s["relearning_transfer"] == pytest.approx(0.8)
    assert s["tasks"]["A"] == {"ref_min": 0.0, "ref_max": 100.0, "visits": 2, "slope": 0.0}
    assert s["plasticity"]["dormant_fraction"] == 0.0
    ft = continual_summary(STEPS, RETURNS, BOUNDS, TASKS, window=2, scratch_auc={"A": 0.2})["forward_transfer"]
    assert ft == {"A": pytest.approx((0.7 - 0.2) / 0.8)}


def test_continual_summary_uses_the_env_min_reference():
    s = continual_summary(STEPS, RETURNS - 200.0, BOUNDS, TASKS, window=2, env_id="MountainCar-v0")
    assert REF_MIN["MountainCar-v0"] == -200.0 and s["tasks"]["A"]["ref_min"] == -200.0
    assert [p["recovery_steps"] for p in s["phases"]] == [60, 70, 40, 10]
    # summary from a schedule's spans: names come with them
    spans = TaskSchedule.from_dict({"cycle": True, "phases": [{"name": "A", "steps": 100},
                                                             {"name": "B", "steps": 100}]}).spans(400)
    assert continual_summary(STEPS, RETURNS, spans, window=2)["phases"][2]["forgetting"] == 0.5


def test_labels_and_origins_replace_the_schedule_attribution():
    labels = [0] * 10 + [1] * 10 + [2] * 10 + [3] * 10
    assert episode_phases(STEPS, BOUNDS, assign=labels).tolist() == labels
    assert episode_phases([5, 6], BOUNDS, assign=[-1, 7]).tolist() == [-1, -1]  # outside every phase
    with pytest.raises(ValueError, match="labels"):
        episode_phases(STEPS, BOUNDS, assign=[0, 1])
    # label an episode by hand into the next phase: it moves
    moved = list(labels)
    moved[9] = 1
    assert [len(p) for p in phase_returns(STEPS, RETURNS, BOUNDS, assign=moved)] == [9, 11, 10, 10]
    # recovery counted from the agent's own switch (105 and 310 instead of 100 and 300)
    assert recovery_steps(STEPS, RETURNS, BOUNDS, TASKS, window=2, origins=[0, 105, None, 310]) == [60, 65, 40, 0]
    s = continual_summary([STEPS], [RETURNS], BOUNDS, TASKS, window=2, labels=[labels],
                          origins=[[0, 105, 200, 310]])
    assert [p["recovery_steps"] for p in s["phases"]] == [60, 65, 40, 0]
    plain = continual_summary([STEPS], [RETURNS], BOUNDS, TASKS, window=2)
    assert [p["mean_return"] for p in s["phases"]] == [p["mean_return"] for p in plain["phases"]]
    # each phase's AUC window starts at the agent's switch: B's first visit loses the 5 steps 100..105
    # of its first episode (score 0) -> (0 * 5 + 0 * 40 + 1 * 50) / 95
    assert s["phases"][1]["auc"] == pytest.approx(50 / 95)
    with pytest.raises(ValueError, match="origins"):
        continual_summary([STEPS], [RETURNS], BOUNDS, TASKS, origins=[[0, 100]])


def test_headline_figures_of_the_summary():
    never = RETURNS.copy()
    never[20:30] = 0.0  # agent 2 does not get back to A in phase 2
    s = continual_summary([STEPS] * 3, [RETURNS, RETURNS, never], BOUNDS, TASKS, window=2)
    assert s["switches"] == 3 and s["revisits"] == 2
    assert [p["final_return"] for p in s["phases"]] == [100.0, 50.0, 100.0, 50.0]
    # recovery ratios per agent and revisit: A 40 / 60, B 10 / 70; agent 2's A revisit never (inf)
    # -> median of [2/3, 1/7, 2/3, 1/7, inf, 1/7] = (1/7 + 2/3) / 2
    assert s["median_recovery_ratio"] == pytest.approx((1 / 7 + 2 / 3) / 2)
    assert s["recovery_ratio_count"] == 6 and s["unrecovered_fraction"] == pytest.approx(1 / 6)
    # B's revisit is at the level with its first episode ("instant"), A's is not
    assert [p["instant_fraction"] for p in s["phases"]] == [0.0, 0.0, 0.0, 1.0]
    assert s["instant_recovery_fraction"] == 0.5 and s["recovery_ratio_skipped"] == 0
    # a task met at its level right away (B here: 50 from the first episode) needed no learning, so
    # its revisits have no ratio: only A's revisit counts, 40 / 60
    easy_b = RETURNS.copy()
    easy_b[10:20] = 50.0
    e = continual_summary([STEPS], [easy_b], BOUNDS, TASKS, window=2)
    assert e["phases"][1]["instant_fraction"] == 1.0 and e["phases"][1]["recovery_steps"] == 10
    assert e["recovery_ratio_skipped"] == 1 and e["recovery_ratio_count"] == 1
    assert e["median_recovery_ratio"] == pytest.approx(40 / 60)
    assert s["forgetting"] == s["mean_forgetting"] == 0.25
    # final returns over visits: agents 0, 1 flat (0); agent 2: A 100 -> 0 over level 100 = -1, B 0 -> mean -0.5
    assert s["phase_return_slope"] == 0.0
    worse = continual_summary([STEPS] * 3, [never] * 3, BOUNDS, TASKS, window=2)
    assert worse["phase_return_slope"] == pytest.approx(-0.5)
    assert worse["median_recovery_ratio"] is None  # every A revisit fails: the median is infinite
    assert worse["recovery_ratio_count"] == 6 and worse["unrecovered_fraction"] == 0.5
    alone = continual_summary([STEPS], [RETURNS], [0, 400], window=2)  # no revisit: no ratio at all
    assert alone["median_recovery_ratio"] is None and alone["recovery_ratio_count"] == 0
