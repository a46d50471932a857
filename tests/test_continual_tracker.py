"""ContinualTracker: per-phase numbers from synthetic info streams, labels from real scheduled envs,
TensorBoard scalars, checkpoint state, and a short scheduled train() run that writes continual.json."""

import json

import numpy as np
import pytest
import torch

from spikegym.agents.step import StepInfo
from spikegym.envs import TaskSchedule, make_vector_env, reset_seeds
from spikegym.training import tags as T
from spikegym.training.continual import ContinualTracker, continual_summary, episode_phases

# Phases A [0, 40), B [40, 80), A [80, 120). Two agents; (end step, phase label, return) of each episode and
# the step at which each agent's info first shows the next phase (its reset step after its first episode
# end at or after the schedule's switch).
SCHEDULE = {"cycle": True, "phases": [{"name": "A", "steps": 40}, {"name": "B", "steps": 40}]}
EPISODES = [
    [(10, 0, 1), (20, 0, 2), (30, 0, 3), (40, 0, 4), (50, 1, 0), (60, 1, 5), (70, 1, 5), (80, 1, 5),
     (90, 2, 2), (100, 2, 4), (110, 2, 4), (120, 2, 3)],
    [(15, 0, 1), (30, 0, 3), (45, 0, 5), (60, 1, 5), (75, 1, 5), (90, 1, 5), (105, 2, 5), (120, 2, 5)],
]
ENTERED = [{0: 0, 1: 41, 2: 81}, {0: 0, 1: 46, 2: 91}]
SURPRISE_WINDOW = 5


def step_info(novelty):
    """The agent step's record as the loop passes it: only the novelty signal is set (curiosity on)."""
    return StepInfo(*[None] * len(StepInfo._fields))._replace(novelty=torch.tensor(novelty))


def novelty_at(step, b):
    """0.8 during the first SURPRISE_WINDOW steps after each of the agent's switches, else 0.2."""
    since = [step - s for occ, s in ENTERED[b].items() if occ > 0 and step >= s]
    return 0.8 if since and min(since) < SURPRISE_WINDOW else 0.2


def stream(until=120):
    """``(step, info, novelty [B])`` as the vector env and the agent would give them, steps 1..until."""
    for step in range(1, until + 1):
        task = np.array([max(o for o, s in e.items() if s <= step) for e in ENTERED])
        info = {"task": task, "_task": np.ones(2, bool)}
        ends = [next(((r, lab) for s, lab, r in eps if s == step), None) for eps in EPISODES]
        if any(e is not None for e in ends):
            info["episode"] = {"r": np.array([e[0] if e else 0.0 for e in ends], dtype=float)}
            info["_episode"] = np.array([e is not None for e in ends])
            for e, t in zip(ends, task):  # an episode's last step carries its own phase
                assert e is None or e[1] == t
        yield step, info, np.array([novelty_at(step, b) for b in range(2)])


def fed(until=120, **kw):
    tr = ContinualTracker(SCHEDULE, 2, total_steps=120, env_id="CartPole-v1", window=1,
                          surprise_window=SURPRISE_WINDOW, **kw)
    for step, info, nov in stream(until):
        tr.update(step, info, step_info(nov))
    return tr


def test_tracker_per_phase_numbers_hand_computed():
    tr = fed()
    assert tr.entered == ENTERED and tr.current.tolist() == [2, 2]
    s = tr.summary()
    json.dumps(s, allow_nan=False)
    ph = s["phases"]
    assert [(p["task"], p["start"], p["end"], p["revisit"]) for p in ph] == [
        ("A", 0, 40, False), ("B", 40, 80, False), ("A", 80, 120, True)]
    # mean return per agent: phase 0 (2.5, 3), phase 1 (3.75, 5), phase 2 (3.25, 5) -> medians
    assert [p["mean_return"] for p in ph] == pytest.approx([2.75, 4.375, 4.125])
    assert [p["final_return"] for p in ph] == pytest.approx([4.5, 5.0, 4.0])  # window 1: last return
    # Recovery from each agent's own switch (ref_min 0 for CartPole, threshold 0.9, window 1):
    #   agent 0: A new, level 4 -> 3.6 at step 40 -> 40; B new, level 5 -> 4.5 at 60, entered 41 -> 19;
    #            A again, level of its last visit 4 -> 3.6 at 100, entered 81 -> 19
    #   agent 1: level 5 -> 4.5 at 45 -> 45; 60 - 46 = 14; 105 - 91 = 14
    assert [p["recovery_steps"] for p in ph] == [42.5, 16.5, 16.5]
    assert [p["switch_lag"] for p in ph] == [0.0, 3.5, 6.0]  # (41-40, 46-40), (81-80, 91-80)
    # forgetting at the revisit, over A's level 5: agent 0 (4 - 2) / 5, agent 1 (5 - 5) / 5 -> median 0.2
    assert ph[2]["forgetting"] == pytest.approx(0.2) and s["forgetting"] == pytest.approx(0.2)
    # headline: recovery ratio 19/40 and 14/45; slope of A's final returns over its visits / level 5:
    # agent 0 (4 -> 3) -0.2, agent 1 (5 -> 5) 0
    assert s["median_recovery_ratio"] == pytest.approx((19 / 40 + 14 / 45) / 2)
    assert s["phase_return_slope"] == pytest.approx(-0.1)
    assert s["switches"] == 2 and s["revisits"] == 1
    # novelty 0.2 before each switch, 0.8 for the SURPRISE_WINDOW steps after it
    assert "surprise" not in ph[0]
    for p in ph[1:]:
        assert p["novelty_before"] == pytest.approx(0.2) and p["novelty_after"] == pytest.approx(0.8)
        assert p["surprise"] == pytest.approx(4.0)
    assert s["entered"] == [{str(k): v for k, v in e.items()} for e in ENTERED]


def test_tracker_agrees_with_metrics_on_the_same_curves():
    """Labels from info["task"] give what assign="start" gives; origins shift recovery by each agent's lag."""
    tr = fed()
    steps = [np.array([e[0] for e in eps]) for eps in EPISODES]
    rets = [np.array([e[2] for e in eps], dtype=float) for eps in EPISODES]
    spans = TaskSchedule.from_dict(SCHEDULE).spans(120)
    plain = continual_summary(steps, rets, spans, window=1, env_id="CartPole-v1")
    mine = tr.summary()
    for a, b in zip(plain["phases"], mine["phases"]):
        assert a["mean_return"] == b["mean_return"] and a["forgetting"] == b["forgetting"]
        assert a["auc"] is not None and b["auc"] is not None
    # measured from the schedule's switch instead: agent 0 +1 and agent 1 +6 in phase 1 (+1, +11 in phase 2)
    assert [p["recovery_steps"] for p in plain["phases"]] == [42.5, 20.0, 22.5]


def test_labels_from_a_real_scheduled_vector_env_match_start_attribution():
    """The wrapper's info["task"] on an episode's last step is the phase in force when it began."""
    sched = {"cycle": True, "phases": [{"name": "A", "steps": 37}, {"name": "B", "steps": 23,
                                                                    "changes": {"gravity": 15.0}}]}
    B, steps = 4, 400
    envs = make_vector_env("CartPole-v1", B, 0, schedule=sched, max_episode_steps=15)
    envs.reset(seed=reset_seeds(0, B))
    tr = ContinualTracker(sched, B, total_steps=steps)
    rng = np.random.default_rng(0)
    for step in range(1, steps + 1):
        *_, info = envs.step(rng.integers(0, 2, B))
        tr.update(step, info)
    envs.close()
    spans = TaskSchedule.from_dict(sched).spans(steps)
    for b in range(B):
        assert len(tr.ep_steps[b]) > 20
        expect = episode_phases(tr.ep_steps[b], spans, assign="start")
        assert tr.ep_labels[b] == expect.tolist()
        for occ, s in tr.entered[b].items():  # an agent switches after the schedule, within one episode
            assert 0 <= s - spans[occ].start <= 16


class Writer:
    def __init__(self):
        self.scalars, self.hists = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, float(value), int(step)))

    def add_histogram(self, tag, values, step):
        self.hists.append((tag, list(values), int(step)))

    def get(self, tag):
        return [(s, v) for t, v, s in self.scalars if t == tag]


def test_tracker_log_writes_task_and_per_phase_scalars_once():
    w = Writer()
    tr = ContinualTracker(SCHEDULE, 2, total_steps=120, env_id="CartPole-v1", window=1)
    logs = {50, 100, 120}
    for step, info, _ in stream():
        tr.update(step, info)
        if step in logs:
            tr.log(w, step)
    assert w.get(T.TASK_INDEX) == [(50, 1), (100, 0), (120, 0)]  # B is task 1, A task 0
    assert w.get(T.TASK_PHASE) == [(50, 1), (100, 2), (120, 2)]
    assert w.get(T.TASK_SWITCHED_FRACTION) == [(50, 1.0), (100, 1.0), (120, 1.0)]
    assert sorted(s for s, v in w.get(T.TASK_SWITCH) if v == 1.0) == [40, 80]
    assert [h[1] for h in w.hists] == [[1, 1], [2, 2], [2, 2]]
    # each phase once, at its end, when both agents have left it (phase 2 at the end of the run)
    assert w.get("continual/phase_return/A") == [(40, 2.75), (120, 4.125)]
    assert w.get("continual/phase_return/B") == [(80, 4.375)]
    assert w.get("continual/recovery_steps/B") == [(80, 16.5)]
    assert w.get("continual/forgetting/A") == [(120, pytest.approx(0.2))]
    assert w.get("continual/recovery_ratio/A") == [(120, pytest.approx(16.5 / 42.5))]
    assert w.get(T.CONTINUAL_PHASE_RETURN_SLOPE) == [(120, pytest.approx(-0.1))]
    assert all(t.startswith((T.TASK, T.CONTINUAL)) for t, _, _ in w.scalars)


def test_tracker_state_round_trip_and_cut_at_a_checkpoint():
    full = fed()
    again = ContinualTracker(SCHEDULE, 2, total_steps=120, env_id="CartPole-v1", window=1,
                             surprise_window=SURPRISE_WINDOW)
    again.load(json.loads(json.dumps(full.state())))
    assert again.summary() == full.summary()
    # resuming from a checkpoint at step 60 forgets what the saved state holds after it
    cut = ContinualTracker(SCHEDULE, 2, total_steps=120, env_id="CartPole-v1", window=1,
                           surprise_window=SURPRISE_WINDOW)
    cut.load(full.state(), step=60)
    upto = fed(until=60)
    assert cut.ep_steps == upto.ep_steps and cut.entered == upto.entered and cut.step == 60
    assert cut.summary()["phases"][:1] == upto.summary()["phases"][:1]


def _cfg(tmp_path, steps, extra=()):
    from spikegym.training.config import load_config

    sched = {"cycle": True, "phases": [{"name": "A", "steps": 60},
                                       {"name": "B", "steps": 40, "changes": {"gravity": 15.0, "length": 1.0}}]}
    return load_config(None, ["env.num_agents=2", "brain.motor_size=4", "brain.critic_size=4", "brain.substeps=4",
                              "encoder.fields=4", f"env.schedule={json.dumps(sched)}", "env.max_episode_steps=12",
                              "env.failure_reward=-1", "novelty.enabled=true", "novelty.beta=0",
                              "novelty.ach_gain=1.0", "run.threads=1", f"run.steps={steps}", "run.log_every=50",
                              "run.progress=off", f"run.run_dir={tmp_path}", *extra])


@pytest.mark.parametrize("surprise", [["novelty.surprise_gain=0.5"], ["novelty.surprise_shrink=0.01"]])
def test_td_surprise_alone_is_followed_around_switches(tmp_path, surprise):
    """Without a novelty detector the tracker follows TD surprise: the gain it drives, or 1 + surprise when it
    drives none (surprise_shrink alone)."""
    from spikegym.training.loop import train

    train(_cfg(tmp_path / "run", 300, ["novelty.enabled=false", "novelty.surprise_errors=punishment",
                                       "novelty.surprise_fast_steps=5", "novelty.surprise_slow_steps=50", *surprise]))
    s = json.loads((tmp_path / "run" / "continual.json").read_text())
    ratios = [p.get("surprise") for p in s["phases"][1:]]
    assert all(r is not None and r > 0 for r in ratios)


def test_scheduled_training_run_writes_continual_json_and_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spikegym.training.loop import train

    result = train(_cfg(tmp_path / "run", 300, ["run.checkpoint_every=1000"]))
    s = json.loads((tmp_path / "run" / "continual.json").read_text())
    assert s["switches"] == 5 and [p["task"] for p in s["phases"]] == list("ABABAB")
    assert all(p["episodes"] >= 2 for p in s["phases"])  # 12-step episodes, labelled by the wrapper
    assert set(ContinualTracker.HEADLINE) <= set(result["continual"])
    assert result["continual"]["switches"] == 5
    assert s["plasticity"]["dormant_fraction"] >= 0 and len(s["plasticity_history"]) == 6
    assert all(p.get("surprise") is not None for p in s["phases"][1:])  # novelty on: averaged around switches
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    want = {T.TASK_INDEX, T.TASK_PHASE, T.TASK_SWITCH, T.TASK_SWITCHED_FRACTION, "task/param/gravity",
            "continual/phase_return/A", "continual/phase_return/B", "continual/recovery_steps/B",
            "continual/forgetting/A", T.CONTINUAL_DORMANT_FRACTION, T.CONTINUAL_WEIGHT_ABS_MEAN,
            T.CONTINUAL_RATE_SPREAD, T.CONTINUAL_NOVELTY, "continual/surprise/B"}
    assert want <= have, want - have
    assert [e.step for e in acc.Scalars(T.TASK_SWITCH) if e.value == 1.0] == [60, 100, 160, 200, 260]
    assert [e.step for e in acc.Scalars("continual/phase_return/B")] == [100, 200, 300]


def test_resumed_scheduled_run_writes_the_same_continual_json(tmp_path):
    from spikegym.training.loop import train

    over = ["run.checkpoint_every=80"]  # the checkpoint falls inside phase B [60, 100)
    train(_cfg(tmp_path / "full", 160, over))
    train(_cfg(tmp_path / "resumed", 80, over))
    train(_cfg(tmp_path / "resumed", 160, over), resume=True)
    full, resumed = (json.loads((tmp_path / d / "continual.json").read_text()) for d in ("full", "resumed"))
    assert full["switches"] == 2 and sum(p["episodes"] for p in full["phases"]) > 8
    # a checkpoint step is a logging step too (step 80), in both runs alike
    steps = lambda s: [h["step"] for h in s.pop("plasticity_history")]  # noqa: E731
    assert steps(full) == [50, 80, 100, 150, 160] and steps(resumed) == [50, 80, 100, 150, 160]
    assert resumed == full


def test_unscheduled_run_has_no_tracker(tmp_path):
    from spikegym.training.config import load_config
    from spikegym.training.loop import train

    cfg = load_config(None, ["env.num_agents=2", "brain.motor_size=4", "brain.critic_size=4", "brain.substeps=4",
                             "encoder.fields=4", "run.threads=1", "run.steps=20", "run.log_every=10",
                             "run.progress=off", f"run.run_dir={tmp_path}"])
    result = train(cfg)
    assert "continual" not in result and not (tmp_path / "continual.json").exists()


@pytest.mark.slow
def test_novelty_rises_when_the_senses_change(tmp_path):
    """novelty.ach_gain with a schedule: the first switch into a world that *looks* new raises the novelty
    signal (so the acetylcholine gain 1 + ach_gain * novelty) over its level just before the switch."""
    from spikegym.training.config import load_config
    from spikegym.training.loop import train

    sched = {"cycle": True, "phases": [{"name": "A", "steps": 300},
                                       {"name": "shifted", "steps": 100, "changes": {"sensor_offset": [2.0, 1.5, 0.2, 2.0]}}]}
    for seed in (0, 1):
        cfg = load_config(None, [
            "env.num_agents=4", "brain.motor_size=4", "brain.critic_size=4", "brain.substeps=4", "encoder.fields=4",
            f"env.schedule={json.dumps(sched)}", "env.failure_reward=-1", "encoder.normalize=fixed",
            "encoder.low=[-2.4,-2.0,-0.21,-2.5]", "encoder.high=[2.4,2.0,0.21,2.5]", "novelty.enabled=true",
            "novelty.beta=0", "novelty.ach_gain=1.0", "run.threads=1", "run.steps=500", "run.log_every=100",
            "run.checkpoint_every=10000", "run.progress=off", f"run.seed={seed}", f"run.run_dir={tmp_path / str(seed)}"])
        train(cfg)
        first = json.loads((tmp_path / str(seed) / "continual.json").read_text())["phases"][1]
        assert first["task"] == "shifted" and first["surprise"] > 1.3, first
