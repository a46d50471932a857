"""Task schedules: phase arithmetic, reproducible random draws, validation errors, the shipped configs."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from spikegym.envs import Draw, ScheduleError, TaskSchedule

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "continual"

AB = {"cycle": True, "phases": [
    {"name": "A", "steps": 100, "changes": {"gravity": 9.8}},
    {"name": "B", "steps": 50, "changes": {"gravity": 15.0, "length": 1.0}},
]}


def test_phase_at_cycles_with_half_open_boundaries():
    s = TaskSchedule.from_dict(AB)
    expect = {0: 0, 99: 0, 100: 1, 149: 1, 150: 2, 249: 2, 250: 3, 300: 4, 1000: 13}
    for step, occ in expect.items():
        o, phase, values = s.phase_at(step)
        assert o == occ, step
        assert phase.name == "AB"[occ % 2]
        assert values == ({"gravity": 9.8} if occ % 2 == 0 else {"gravity": 15.0, "length": 1.0})
    assert [s.occurrence_start(k) for k in range(5)] == [0, 100, 150, 250, 300]


def test_without_cycle_the_last_phase_holds():
    s = TaskSchedule.from_dict({**AB, "cycle": False})
    assert [s.occurrence_at(t) for t in (0, 100, 149, 150, 10**9)] == [0, 1, 1, 1, 1]
    assert [(x.name, x.start, x.end) for x in s.spans(400)] == [("A", 0, 100), ("B", 100, 400)]


def test_cycle_from_plays_a_warm_up_once():
    s = TaskSchedule.from_dict({"cycle": True, "cycle_from": 1, "phases": [
        {"name": "A", "steps": 1000}, {"name": "B", "steps": 10}, {"name": "A", "steps": 20}]})
    spans = s.spans(1065)
    assert [(x.occurrence, x.name, x.start, x.end) for x in spans] == [
        (0, "A", 0, 1000), (1, "B", 1000, 1010), (2, "A", 1010, 1030), (3, "B", 1030, 1040),
        (4, "A", 1040, 1060), (5, "B", 1060, 1065)]
    for x in spans:  # spans and phase_at agree at every boundary
        assert s.occurrence_at(x.start) == x.occurrence and s.occurrence_at(x.end - 1) == x.occurrence


def test_random_draws_reproducible_per_occurrence_and_in_range():
    d = {"cycle": True, "seed": 7, "phases": [
        {"name": "slippery", "steps": 10, "changes": {"friction": {"log_uniform": [0.02, 2.0]},
                                                      "gravity": {"uniform": [9.0, 11.0]},
                                                      "action_map": {"choice": [[0, 1], [1, 0]]}}}]}
    a, b = TaskSchedule.from_dict(d), TaskSchedule.from_dict(dict(reversed(list(d.items()))))
    draws = [a.resolve(k) for k in range(400)]
    assert draws == [b.resolve(k) for k in range(400)]            # reproducible, key order irrelevant
    assert a.phase_at(35)[2] == a.phase_at(39)[2] == draws[3]      # one draw per occurrence
    f = np.array([x["friction"] for x in draws])
    assert f.min() >= 0.02 and f.max() <= 2.0
    assert len(set(f)) == 400                                      # a new draw every occurrence
    # log-uniform: the median is near the geometric mean 0.2 (half the mass either side)
    assert 0.12 < np.median(f) < 0.33
    assert {x["action_map"] for x in draws} == {(0, 1), (1, 0)}
    other = TaskSchedule.from_dict({**d, "seed": 8})
    assert other.resolve(0) != a.resolve(0)


def test_shared_and_per_agent_draws():
    d = {"phases": [{"name": "s", "steps": 5, "changes": {"friction": {"log_uniform": [0.02, 2.0]}}}]}
    shared = TaskSchedule.from_dict(d)
    assert shared.resolve(0, stream=0) == shared.resolve(0, stream=3)
    per = TaskSchedule.from_dict({**d, "draws": "per_agent"})
    assert per.resolve(0, stream=0) != per.resolve(0, stream=3)
    assert per.resolve(0, stream=3) == per.resolve(0, stream=3)


def test_default_seed_is_used_only_when_the_dict_names_none():
    d = {"phases": [{"name": "s", "steps": 5, "changes": {"friction": {"uniform": [0.1, 1.0]}}}]}
    assert TaskSchedule.from_dict(d, seed=3).seed == 3
    assert TaskSchedule.from_dict({**d, "seed": 0}, seed=3).seed == 0


def test_round_trip_through_dict():
    s = TaskSchedule.from_dict({"cycle": True, "cycle_from": 1, "draws": "per_agent", "seed": 2, "phases": [
        {"name": "w", "steps": 30}, {"name": "x", "steps": 10, "changes": {"sensor_gain": [1, 2, 3, 4],
                                                                           "friction": {"log_uniform": [0.1, 1]}}}]})
    assert TaskSchedule.from_dict(s.to_dict()) == s
    assert TaskSchedule.from_dict(yaml.safe_load(yaml.safe_dump(s.to_dict()))) == s
    assert isinstance(s.phases[1].changes["friction"], Draw)


def test_yaml_numbers_written_as_strings_are_coerced():
    s = TaskSchedule.from_dict(yaml.safe_load("phases: [{name: A, steps: 2e4, changes: {gravity: 1.5e1}}]"))
    assert s.phases[0].steps == 20000 and s.phases[0].changes["gravity"] == 15.0


@pytest.mark.parametrize("d, phase, key, words", [
    ({"phases": [{"name": "A", "steps": 10, "changes": {"gravty": 3.0}}]}, 0, "gravty", "did you mean 'gravity'"),
    ({"phases": [{"steps": 10}, {"name": "B", "steps": 10, "changes": {"frction": 0.5}}]}, 1, "frction",
     "did you mean 'friction'"),
    ({"phases": [{"name": "A", "step": 10}]}, 0, "step", "did you mean 'steps'"),
    ({"phases": [{"name": "A"}]}, 0, "steps", "missing"),
    ({"phases": [{"name": "A", "steps": -5}]}, 0, "steps", "positive whole number"),
    ({"phases": [{"name": "A", "steps": 2.5}]}, 0, "steps", "positive whole number"),
    ({"phases": [{"name": "A", "steps": "lots"}]}, 0, "steps", "write numbers like"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"length": -1.0}}]}, 0, "length", "must be > 0"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"sensor_dropout": 1.5}}]}, 0, "sensor_dropout", "probability"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"action_map": [0, 0]}}]}, 0, "action_map", "permutation"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"friction_coef": {"log_uniform": [0.0, 2.0]}}}]}, 0, "friction_coef",
     "low > 0"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"friction": {"loguniform": [0.1, 2.0]}}}]}, 0, "friction",
     "did you mean 'log_uniform'"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"friction": {"uniform": [2.0, 1.0]}}}]}, 0, "friction",
     "low <= high"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"action_map": {"uniform": [0, 1]}}}]}, 0, "action_map",
     "choice"),
    ({"phases": [{"name": "A", "steps": 1, "changes": {"gravity": 9.8}},
                 {"name": "A", "steps": 1, "changes": {"gravity": 20.0}}]}, 1, "name", "same name"),
    ({"cycles": True, "phases": [{"name": "A", "steps": 1}]}, None, "cycles", "did you mean 'cycle'"),
    ({"phases": []}, None, "phases", "non-empty"),
    ({"cycle": "yes", "phases": [{"name": "A", "steps": 1}]}, None, "cycle", "true or false"),
    ({"cycle_from": 1, "phases": [{"name": "A", "steps": 1}, {"name": "B", "steps": 1}]}, None, "cycle_from",
     "cycle: true"),
])
def test_validation_errors_name_phase_and_key(d, phase, key, words):
    with pytest.raises(ScheduleError) as err:
        TaskSchedule.from_dict(d)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.phase == phase and e.key == key
    assert words in str(e), str(e)
    if phase is not None:
        assert f"phase {phase}" in str(e)


@pytest.mark.parametrize("name", ["cartpole_cycle", "cartpole_action_swap", "slippery_cheetah"])
def test_shipped_configs_validate(name):
    from spikegym.training.config import config_to_dict, load_config

    cfg = config_to_dict(load_config(CONFIGS / f"{name}.yaml"))  # (its extends: chain resolved)
    assert set(cfg) >= {"env", "run"} and cfg["env"]["id"] and cfg["env"]["num_agents"] >= 1
    s = TaskSchedule.from_dict(cfg["env"]["schedule"], seed=0)
    spans = s.spans(int(cfg["run"]["steps"]))
    if name.startswith("cartpole"):
        assert len(spans) - 1 >= 10  # at least 10 switches
        assert len({x.name for x in spans}) == 2
        names = [x.name for x in spans]
        assert all(a != b for a, b in zip(names, names[1:]))  # every switch changes the task
    else:
        frictions = [s.resolve(x.occurrence)["friction_coef"] for x in spans]
        assert all(0.02 <= f <= 2.0 for f in frictions) and len(set(frictions)) == len(frictions) >= 5
