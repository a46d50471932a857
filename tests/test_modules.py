"""Context modules: the switching rule, the weight swap, and a two-world bandit switched without a task label."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.modules import (ModuleParams, module_errors, module_step, modules_init, modules_update,
                                     switch_weights)
from spikegym.agents.state import flatten, load_flat
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
GO = torch.ones(1, dtype=torch.bool)


def _params(**kw) -> ModuleParams:
    base = dict(number=2, switch_surprise=0.5, patience=5, errors=0, fast=1.0, slow=1e-4, min_error=0.01)
    return ModuleParams(**{**base, **kw})


def _feed(p, mods, errors, learnable=GO):
    switches = []
    for err in errors:
        switch, target, surprise, mods = module_step(p, mods, torch.tensor([float(err)]), learnable)
        switches.append(bool(switch))
    return switches, mods


def _fresh(p, b=1):
    return modules_init(p, torch.zeros(b, 2, 3), torch.zeros(b, 2, 1))


def test_a_persistent_rise_of_errors_switches_after_exactly_patience_decisions():
    p = _params()   # fast_steps 1: the recent mean is the last error; the long-run mean a plain mean (n < 1e4)
    switches, mods = _feed(p, _fresh(p), [0.0] * 100 + [1.0] * 10)
    # the first bad decision: fast 1, slow 1/101: surprised from then on; the 5th in a row switches
    assert switches.index(True) == 100 + p.patience - 1 and switches.count(True) == 1
    assert int(mods["active"]) == 1 and float(mods["streak"]) == 0 and float(mods["held"]) == 5
    assert mods["n"].tolist() == [[105.0, 5.0]]          # the new module counts its own decisions only


def test_errors_under_the_floor_or_short_bursts_do_not_switch():
    p = _params()
    # a module that never erred, then errs at 0.5 x its... floor: 0.004 / max(0, 0.01) - 1 < 0: never surprised
    switches, _ = _feed(p, _fresh(p), [0.0] * 50 + [0.004] * 50)
    assert not any(switches)
    # bursts of patience - 1 surprised decisions, each broken by a calm one, never switch
    switches, _ = _feed(p, _fresh(p), [0.0] * 200 + ([1.0] * (p.patience - 1) + [0.0]) * 10)
    assert not any(switches)
    # reset steps (not learnable) neither count nor move the means
    switches, mods = _feed(p, _fresh(p), [1.0] * 20, learnable=~GO)
    assert not any(switches) and mods["n"].sum() == 0 and float(mods["held"]) == 0


def test_the_module_taken_up_is_the_one_with_the_lowest_long_run_error_then_untried_ones():
    p = _params(number=4)
    mods = _fresh(p)
    mods = {**mods, "n": torch.tensor([[500.0, 300.0, 0.0, 200.0]]), "slow": torch.tensor([[0.01, 0.2, 0.0, 0.05]]),
            "fast": torch.tensor([[0.01, 0.9, 0.0, 0.9]]), "held": torch.tensor([1000.0])}
    switches, new = _feed(p, mods, [1.0] * p.patience)
    assert switches[-1] and int(new["active"]) == 3          # 0.05 < 0.2; module 2 was never used
    assert new["fast"][0, 3] == pytest.approx(0.05)          # taken up again: recent mean = its long-run mean
    # every used module but the active one failed a trial: the untried one is next
    # (held 0: the active module is on trial too, so the failures are not forgotten)
    mods = {**mods, "failed": torch.tensor([[False, True, False, True]]), "held": torch.tensor([0.0])}
    switches, new = _feed(p, mods, [1.0] * p.patience)
    assert int(new["active"]) == 2


def test_a_module_left_during_its_trial_is_tried_last_until_one_settles():
    p = _params(number=3)
    mods = _fresh(p)
    mods = {**mods, "n": torch.tensor([[500.0, 400.0, 0.0]]), "slow": torch.tensor([[0.01, 0.02, 0.0]]),
            "held": torch.tensor([1000.0])}
    _, mods = _feed(p, mods, [1.0] * p.patience)
    assert int(mods["active"]) == 1                          # the best used one (module 0 is the active one)
    _, mods = _feed(p, mods, [1.0] * p.patience)             # module 1 fails at once: a failed trial
    assert int(mods["active"]) == 0 and mods["failed"].tolist() == [[False, True, False]]
    _, mods = _feed(p, mods, [1.0] * p.patience)             # module 0 fails its trial too: the untried one
    assert int(mods["active"]) == 2 and mods["failed"].tolist() == [[True, True, False]]
    _, mods = _feed(p, mods, [0.0] * (2 * p.patience))       # module 2 settles: the failures are forgotten
    assert not mods["failed"].any()


def test_switch_weights_stores_the_live_weights_and_loads_the_new_module():
    p = _params(number=3)
    wa, wc = torch.arange(8.0).view(2, 2, 2), -torch.arange(4.0).view(2, 2, 1)
    mods = modules_init(p, torch.zeros(2, 2, 2), torch.zeros(2, 2, 1))
    mods["actor"][1, 2] = 7.0
    mods["critic"][1, 2] = 9.0
    mods["active"] = torch.tensor([0, 2])
    old = torch.tensor([0, 1])
    mask = torch.tensor([[[True, False], [True, True]]] * 2)
    new, live = switch_weights(mods, {"actor": wa, "critic": wc}, torch.tensor([False, True]), old, mask)
    wa2, wc2 = live["actor"], live["critic"]
    assert torch.equal(wa2[0], wa[0]) and torch.equal(wc2[0], wc[0])            # agent 0 did not switch
    assert torch.equal(new["actor"][1, 1], wa[1]) and torch.equal(new["critic"][1, 1], wc[1])
    assert wa2[1].tolist() == [[7.0, 0.0], [7.0, 7.0]] and wc2[1].flatten().tolist() == [9.0, 9.0]
    assert torch.equal(mods["actor"][1, 1], torch.zeros(2, 2))                   # inputs are not changed


def test_the_errors_a_module_watches():
    delta, r = torch.tensor([-0.5, 0.25, 0.0]), torch.tensor([-1.0, 0.0, 0.5])
    assert module_errors(_params(errors=0), delta, r).tolist() == [1.0, 0.0, 0.0]
    assert module_errors(_params(errors=1), delta, r).tolist() == [0.5, 0.25, 0.0]
    assert module_errors(_params(errors=2), delta, r).tolist() == [0.5, 0.0, 0.0]


def test_modules_off_by_default_and_the_state_round_trips():
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=2"])
    space = gym.spaces.Discrete(2)
    low, high = -np.ones(4), np.ones(4)
    off = Agent(cfg, low, high, space, num_agents=2, seed=0, engine="reference")
    assert off.spec.modules is None and not any(k.startswith("modules.") for k in off.state_dict())
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=2", "modules.count=3"])
    on = Agent(cfg, low, high, space, num_agents=2, seed=0, engine="reference")
    flat = on.state_dict()
    assert flat["modules.actor"].shape == (2, 3, *on.weights("sensors->motor").shape[1:])
    flat["modules.active"] = torch.tensor([2, 1])
    on.load_state_dict(flat)
    assert on.state.modules["active"].tolist() == [2, 1] and on.select(1).state.modules["active"].tolist() == [1]
    assert flatten(load_flat(on.state, flat)).keys() == flat.keys()


def test_modules_update_switches_the_agent_whose_module_is_surprised():
    p = _params()
    mods = _fresh(p, b=2)
    wa, wc = torch.ones(2, 2, 3), torch.ones(2, 2, 1)
    for err in [0.0] * 50 + [1.0] * p.patience:
        r = torch.tensor([-err, 0.0])
        switch, mods, live = modules_update(p, mods, {"actor": wa, "critic": wc}, torch.zeros(2), r,
                                            torch.ones(2, dtype=torch.bool))
    wa2 = live["actor"]
    assert switch.tolist() == [True, False] and mods["active"].tolist() == [1, 0]
    assert torch.equal(mods["actor"][0, 0], torch.ones(2, 3))     # the live weights went to module 0's slot
    assert torch.equal(wa2[0], torch.zeros(2, 3)) and torch.equal(wa2[1], wa[1])  # module 1's came in (agent 0 only)


def _bandit(count: int, phases=(0, 1, 0, 1), steps: int = 1500, batch: int = 8):
    """A two-armed bandit whose good arm swaps between phases (no task label: the obs never changes).

    Returns ``(errors [T, B] bool, modules [T, B] or None)``.
    """
    cfg = load_config(ROOT / "configs/cartpole.yaml", [
        f"env.num_agents={batch}", "env.failure_reward=null", "dopamine.gamma=0", "encoder.neurons_per_field=1",
        "plasticity.actor_lr=0.02", "plasticity.critic_lr=0.02", f"modules.count={count}", "modules.patience=30",
        "modules.fast_steps=10", "modules.slow_steps=1000"])
    agent = Agent(cfg, -np.ones(4), np.ones(4), gym.spaces.Discrete(2), num_agents=batch, seed=0)
    obs, reward, flags = np.zeros((batch, 4), np.float32), np.zeros(batch), np.zeros(batch, bool)
    errors, modules = [], []
    for good in phases:
        for _ in range(steps):
            action, info = agent.step(obs, reward, flags, flags)
            reward = np.where(action == good, 0.0, -1.0)   # the wrong arm hurts
            errors.append(action != good)
            modules.append(None if info.module is None else info.module.numpy().copy())
    return np.array(errors), (None if count == 1 else np.array(modules))


@pytest.mark.slow
def test_bandit_agents_switch_module_when_the_arms_swap_and_take_the_old_one_up_again():
    n = 1500
    errors, modules = _bandit(2, steps=n)
    plain, _ = _bandit(1, steps=n)
    end = lambda x, phase: x[(phase + 1) * n - 300:(phase + 1) * n]  # noqa: E731 - last 300 steps of a phase
    last = [np.bincount(end(modules, k)[:, b]).argmax() for k in range(4) for b in range(8)]
    last = np.array(last).reshape(4, 8)
    # most agents hold one module per world, switched without a label: A, B, A, B -> m, m', m, m'
    same = (last[0] == last[2]) & (last[1] == last[3]) & (last[0] != last[1])
    assert same.sum() >= 5, last
    # and so the revisits start where the last visit ended; one weight set must relearn each time
    revisit = lambda x: float(np.mean([x[k * n:k * n + 600].mean() for k in (2, 3)]))  # noqa: E731
    assert revisit(errors) < 0.25 and revisit(errors) < revisit(plain) - 0.2, (revisit(errors), revisit(plain))


def test_tensorboard_shows_which_module_the_agents_use():
    from spikegym.training.signals import agent_signals
    cfg = load_config(ROOT / "configs/cartpole.yaml", ["env.num_agents=4", "modules.count=3"])
    agent = Agent(cfg, -np.ones(4), np.ones(4), gym.spaces.Discrete(2), num_agents=4, seed=0, engine="reference")
    flat = agent.state_dict()
    flat["modules.active"] = torch.tensor([0, 2, 2, 2])
    agent.load_state_dict(flat)
    _, info = agent.step(np.zeros((4, 4)), np.zeros(4), np.zeros(4, bool), np.zeros(4, bool))
    s = agent_signals(agent, info, 0).scalars
    assert [s[f"continual/module_share/{m}"] for m in range(3)] == [0.25, 0.0, 0.75]


def test_recall_takes_a_used_module_up_again_sooner_but_a_fresh_one_only_after_patience():
    p = _params(patience=50, recall=3)
    used = {**_fresh(p), "n": torch.tensor([[500.0, 400.0]]), "slow": torch.tensor([[0.01, 0.01]]),
            "held": torch.tensor([1000.0])}
    switches, _ = _feed(p, used, [1.0] * 10)
    assert switches.index(True) == p.recall - 1                  # module 1 knows a world: back to it at once
    fresh = {**used, "n": torch.tensor([[500.0, 0.0]])}
    switches, _ = _feed(p, fresh, [1.0] * 60)
    assert switches.index(True) == p.patience - 1                 # a never used module: the full patience
    failed = {**used, "failed": torch.tensor([[False, True]]), "held": torch.tensor([0.0])}
    switches, _ = _feed(p, failed, [1.0] * 60)
    assert switches.index(True) == p.patience - 1                 # one that just failed its trial: likewise
