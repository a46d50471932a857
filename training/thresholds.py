"""When an agent counts as having *solved* an env: one table, used by the loop, the statistics,
the benchmarks and the README.

An agent has solved an env once the mean return of its last 100 episodes reaches the threshold
(Gymnasium's convention). The thresholds are Gymnasium's own ``spec.reward_threshold``, copied
here so that reading them never imports gymnasium or builds an env; ``tests/test_thresholds.py``
checks every entry against the installed Gymnasium. The one exception:

- ``Pendulum-v1`` has no Gymnasium threshold. −200 is the usual bar (rl-baselines3-zoo's
  tuned PPO and SAC end near −150 to −200; a pendulum that swings up and holds scores about
  −150, one that never swings up about −1200).

Envs not in the table fall back to ``gymnasium.spec(id).reward_threshold`` (None: no threshold,
so nothing is ever counted as solved)::

    >>> solved_threshold("HalfCheetah-v5")
    4800.0
    >>> solved_threshold("Pendulum-v1")
    -200.0
"""

from __future__ import annotations

from typing import Optional

# Gymnasium's spec.reward_threshold, except where EXCEPTIONS says otherwise.
SOLVED_AT: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "MountainCarContinuous-v0": 90.0,
    "Pendulum-v1": -200.0,  # an exception: see EXCEPTIONS
    "InvertedPendulum-v5": 950.0,
    "InvertedDoublePendulum-v5": 9100.0,
    "HalfCheetah-v5": 4800.0,
    "Hopper-v5": 3800.0,
    "Ant-v5": 6000.0,
    "Swimmer-v5": 360.0,
    "Reacher-v5": -3.75,
    "LunarLander-v3": 200.0,
}

#: Entries of SOLVED_AT that are not Gymnasium's threshold, and why.
EXCEPTIONS: dict[str, str] = {
    "Pendulum-v1": "Gymnasium gives none; -200 is the usual bar (a held swing-up scores about -150)",
}


def solved_threshold(env_id: str) -> Optional[float]:
    """The 100-episode mean return at which an agent has solved ``env_id``; None if there is none."""
    if env_id in SOLVED_AT:
        return SOLVED_AT[env_id]
    try:
        import gymnasium

        threshold = gymnasium.spec(env_id).reward_threshold
    except Exception:  # noqa: BLE001 - an unregistered or custom env: no threshold
        return None
    return None if threshold is None else float(threshold)
