"""Context modules: several motor + critic weight sets per agent, and a persistent surprise that switches them.

One set of weights for two opposite worlds (CartPole with its motor wiring swapped) is overwritten at every
switch. With ``modules.count = M`` an agent keeps ``M`` sets of its ``sensors->motor`` and ``sensors->critic``
weights; the brain's weights are the active module's, and only they learn. Each module keeps running means of
its own errors (``errors``: the failure rate ``max(0, -r)`` by default, or ``|TD error|``) while it is active::

    n_m += 1;  fast_m += max(1/fast_steps, 1/n_m) (err - fast_m);  slow_m likewise with slow_steps
    surprise = clamp(fast_a / max(slow_a, min_error) - 1, 0, 4)            (a: the active module)

(``max(rate, 1/n)``: a plain mean until the module has ``1/rate`` decisions, so a young module is judged by all
it has seen, and is not surprised while it learns: its errors fall). After ``patience`` surprised decisions in a
row (or ``recall`` when a used module that has not just failed is there to take up again) the agent takes up
another module instead of overwriting this one: the one with the lowest long-run error
``slow`` (it did best in its own world), modules never used after every used one, and modules that failed a
trial (left again within ``2 * patience`` decisions of being taken up) only when nothing else is left; the
failures are forgotten once a module settles (``2 * patience`` decisions without a switch). A module taken up
again starts its recent mean at its long-run one (it is given the benefit of the doubt). No task label: the
agent infers the world's change from its own errors. The switch stores the active weights into their slot,
loads the new module's (times the connectivity mask), and clears the eligibility; the next decision is not
learned from (its TD error would mix two critics).

:func:`module_step` is the rule (pure, on ``[B]`` and ``[B, M]`` tensors), :func:`switch_weights` the swap; the
torch reference (:mod:`.step`) and the kernel backend (:mod:`.kernel`, after its numba step) call both.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

ACTOR, CRITIC = "sensors->motor", "sensors->critic"
ERRORS = {"punishment": 0, "absolute": 1, "negative": 2}


class ModuleParams(NamedTuple):
    number: int             # M modules
    switch_surprise: float  # surprised: surprise > this
    patience: int           # surprised decisions in a row before a switch
    errors: int             # ERRORS: 0 max(0, -r), 1 |delta|, 2 max(0, -delta)
    fast: float             # 1 / fast_steps
    slow: float             # 1 / slow_steps
    min_error: float        # floor of the long-run mean in the surprise ratio
    recall: int = 0         # surprised decisions in a row before a switch back to a used module (0: patience)


def module_params(cfg) -> Optional[ModuleParams]:
    """From the config's ``modules`` section; None when ``count`` is 1 (off)."""
    m = cfg.modules
    if m.count <= 1:
        return None
    return ModuleParams(m.count, m.switch_surprise, m.patience, ERRORS[m.errors], 1.0 / m.fast_steps,
                        1.0 / m.slow_steps, m.min_error, m.recall_patience)


def modules_init(params: ModuleParams, w_actor: Tensor, w_critic: Tensor,
                 c_actor: Optional[Tensor] = None) -> dict[str, Tensor]:
    """Fresh module state of ``B`` agents: every module starts from the agent's initial weights.

    ``"actor"`` ``[B, M, P, Qm]``, ``"critic"`` ``[B, M, P, Qc]`` (the active slot is stale: the live weights are the
    brain's), and ``"consolidation"`` ``[B, M, P, Qm]`` where the actor consolidates (``c_actor``: it belongs to
    the weights); ``"active"`` ``[B]`` int64; ``"n"``, ``"fast"``, ``"slow"`` ``[B, M]``; ``"failed"`` ``[B, M]``
    bool; ``"streak"``, ``"held"`` ``[B]`` (surprised decisions in a row; decisions since the module was taken up).
    """
    b, m = w_actor.shape[0], params.number
    z = torch.zeros(b, m, device=w_actor.device)
    banks = {"actor": w_actor, "critic": w_critic, **({} if c_actor is None else {"consolidation": c_actor})}
    return {**{k: t.unsqueeze(1).repeat(1, m, 1, 1) for k, t in banks.items()},
            "active": torch.zeros(b, dtype=torch.int64, device=w_actor.device), "n": z, "fast": z.clone(),
            "slow": z.clone(), "failed": z.bool(), "streak": z[:, 0].clone(), "held": z[:, 0].clone()}


def module_errors(params: ModuleParams, delta: Tensor, r: Tensor) -> Tensor:
    """The errors ``[B]`` whose recent rise surprises a module."""
    if params.errors == 0:
        return r.neg().clamp_min(0.0)
    return delta.abs() if params.errors == 1 else delta.neg().clamp_min(0.0)


def module_step(params: ModuleParams, mods: dict[str, Tensor], errors: Tensor, learnable: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """One decision of the switching rule (see the module docstring); weights are not touched here.

    Args:
        errors: ``[B]`` this decision's errors; learnable: ``[B]`` bool, decisions that count (not reset steps).
    Returns:
        ``(switch [B] bool, target [B] int64, surprise [B], new state)``; ``target`` is the module taken up where
        ``switch`` (the active one elsewhere). The state's ``"active"`` is already ``target``.

    >>> p = ModuleParams(2, 0.5, 2, 0, 1.0, 1e-4, 0.01)   # fast_steps 1: the recent mean is the last error
    >>> mods, go = modules_init(p, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1)), torch.ones(1, dtype=torch.bool)
    >>> for err in (0.0, 0.0, 0.0, 1.0, 1.0):   # errors jump: surprised twice in a row -> module 1
    ...     switch, target, surprise, mods = module_step(p, mods, torch.tensor([err]), go)
    >>> bool(switch), int(target), int(mods["active"])
    (True, 1, 1)
    """
    active, m = mods["active"], params.number
    here = torch.nn.functional.one_hot(active, m).bool()      # [B, M]
    upd = here & learnable.unsqueeze(1)
    n = mods["n"] + upd.float()
    err = errors.unsqueeze(1)
    nn = n.clamp_min(1.0)
    fast = torch.where(upd, mods["fast"] + torch.clamp(1.0 / nn, min=params.fast) * (err - mods["fast"]), mods["fast"])
    slow = torch.where(upd, mods["slow"] + torch.clamp(1.0 / nn, min=params.slow) * (err - mods["slow"]), mods["slow"])
    fa = fast.gather(1, active.unsqueeze(1)).squeeze(1)
    sa = slow.gather(1, active.unsqueeze(1)).squeeze(1)
    surprise = (fa / sa.clamp_min(max(params.min_error, 1e-12)) - 1.0).clamp(0.0, 4.0)
    surprise = torch.where(learnable, surprise, 0.0)
    streak = torch.where(learnable, torch.where(surprise > params.switch_surprise, mods["streak"] + 1, 0.0),
                         mods["streak"])
    held = mods["held"] + learnable.float()
    trial = 2.0 * params.patience
    failed = mods["failed"] & ~(held >= trial).unsqueeze(1)    # a module that settled: failures forgotten
    switch = streak >= params.patience
    if params.recall > 0:  # a used module that has not just failed may be taken up again sooner
        known = ((n > 0) & ~here & ~failed).any(dim=1)
        switch = switch | (known & (streak >= params.recall))
    failed = failed | (here & (switch & (held < trial)).unsqueeze(1))
    # the candidates: the lowest long-run error; never used ones after used ones; failed or active ones last
    score = torch.where(n > 0, slow, torch.full_like(slow, 1e30))
    shut = here | failed
    shut = torch.where((shut.all(dim=1, keepdim=True)), here, shut)   # all tried and failed: any other one
    target = torch.where(switch, torch.where(shut, torch.full_like(score, float("inf")), score).argmin(dim=1), active)
    into = torch.nn.functional.one_hot(target, m).bool() & switch.unsqueeze(1)
    fast = torch.where(into & (n > 0), slow, fast)              # taken up again: recent mean = long-run mean
    new = {**mods, "active": target, "n": n, "fast": fast, "slow": slow, "failed": failed,
           "streak": torch.where(switch, 0.0, streak), "held": torch.where(switch, 0.0, held)}
    return switch, target, surprise, new


def switch_weights(mods: dict[str, Tensor], live: dict[str, Tensor], switch: Tensor, old: Tensor,
                   mask: Optional[Tensor] = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Where ``switch [B]``: the live tensors go to module ``old [B]``'s slot, module ``mods["active"]``'s come in.

    ``live``: ``{"actor": [B, P, Qm], "critic": [B, P, Qc]}`` (and ``"consolidation"`` where the state has that
    bank). Returns ``(state, live)``; nothing is changed in place. ``mask`` ``[B, P, Qm]``: the actor's synapses
    that exist (structural plasticity), applied to the weights taken up.
    """
    idx = switch.nonzero().squeeze(1)
    if idx.numel() == 0:
        return mods, live
    new_mods, new_live = dict(mods), dict(live)
    for key, t in live.items():
        bank = mods[key].clone()
        bank[idx, old[idx]] = t[idx]
        t = t.clone()
        t[idx] = bank[idx, mods["active"][idx]]
        if key == "actor" and mask is not None:
            t[idx] = t[idx] * mask[idx]
        new_mods[key], new_live[key] = bank, t
    return new_mods, new_live


def modules_update(params: ModuleParams, mods: dict[str, Tensor], live: dict[str, Tensor], delta: Tensor, r: Tensor,
                   learnable: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """:func:`module_step` on this decision's ``delta`` and internal reward ``r`` ``[B]``, then
    :func:`switch_weights`: ``(switch [B] bool, state, live)`` (the eligibility of the agents that switched is
    the caller's to clear)."""
    old = mods["active"]
    switch, _, _, mods = module_step(params, mods, module_errors(params, delta, r), learnable)
    mods, live = switch_weights(mods, live, switch, old, mask)
    return switch, mods, live
