"""Mid-life changes of the world: small functions that edit a live env, and a registry of them.

A *change* is a named knob that a task schedule (:mod:`spikegym.envs.schedule`) turns at an
episode boundary. There are two kinds:

* **world** changes edit the physics of ``env.unwrapped`` in place -- CartPole's ``gravity``,
  ``length``, ``masspole``, ``masscart``, ``force_mag``; MuJoCo's ``friction`` / ``friction_coef``
  (every geom), ``body_mass`` (with the inertia), ``gravity``. Each captures the env's *base*
  values once, so that a phase is always relative to the env as it was built and a phase that
  does not name a change puts the base value back.
* **interface** changes edit what the agent does, sees and earns without touching the simulator:
  ``action_map`` (permute actions), ``direction`` (run backwards: the forward-velocity reward
  term changes sign), ``reward_scale``, and the sensors -- ``sensor_gain``, ``sensor_offset``,
  ``sensor_noise`` (Gaussian std), ``sensor_dropout`` (probability that a reading is 0). They
  live in an :class:`Interface` that :class:`~spikegym.envs.schedule.TaskScheduleWrapper` applies
  to every step.

Values: CartPole quantities and ``gravity`` are absolute (SI units, ``gravity`` is the downward
magnitude in m/s^2); ``friction``, ``body_mass`` and ``reward_scale`` are factors on the base.

Add your own with :func:`register_change`::

    >>> from spikegym.envs.changes import CHANGES
    >>> sorted(n for n, c in CHANGES.items() if c.target == "interface")[:3]
    ['action_map', 'direction', 'reward_scale']
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

__all__ = ["Change", "CHANGES", "Interface", "register_change", "nearest_change", "parse_number", "describe_changes"]


# --------------------------------------------------------------------------- value parsing


def parse_number(value: Any, what: str = "value") -> float:
    """A finite float from a number or a numeric string (PyYAML reads ``1e6`` as a string)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{what} must be a number, got the string {value!r} "
                             "(write numbers like 9.8, 2.0e-2 or 20000)") from None
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _positive(value: Any) -> float:
    v = parse_number(value)
    if v <= 0:
        raise ValueError(f"must be > 0, got {v}")
    return v


def _non_negative(value: Any) -> float:
    v = parse_number(value)
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _probability(value: Any) -> float:
    v = parse_number(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"must be a probability in [0, 1), got {v}")
    return v


def _scalar_or_vector(value: Any):
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) == 0:
            raise ValueError("an empty list is not a gain/offset")
        return tuple(parse_number(v, "each element") for v in value)
    return parse_number(value)


def _permutation(value: Any) -> tuple:
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"must be a list such as [1, 0], got {value!r}")
    out = []
    for v in value:
        f = parse_number(v, "each entry")
        if f != int(f):
            raise ValueError(f"entries must be integers, got {v!r}")
        out.append(int(f))
    if sorted(out) != list(range(len(out))):
        raise ValueError(f"must be a permutation of 0..{len(out) - 1}, got {out}")
    return tuple(out)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Change:
    """One named knob of the world or of the agent's interface.

    Attributes:
        name: the key used in a schedule's ``changes``.
        doc: one line for error messages and docs.
        target: ``"world"`` (``apply`` edits ``env.unwrapped``) or ``"interface"`` (``apply`` edits
            an :class:`Interface`).
        parse: validates and normalises a value; raises ``ValueError`` with a short reason.
        apply: ``apply(obj, value, base)``; ``value=None`` restores the base.
        capture: ``capture(env.unwrapped) -> base`` (copies), world changes only.
        supports: ``supports(env.unwrapped) -> None`` if the change applies, else the reason why not.
        scalar: the value is one number, so random draws (``uniform``, ``log_uniform``) may set it.
    """

    name: str
    doc: str
    target: str
    parse: Callable[[Any], Any]
    apply: Callable[[Any, Any, Any], None]
    capture: Callable[[Any], Any] = lambda u: None
    supports: Callable[[Any], Optional[str]] = lambda u: None
    scalar: bool = True


#: name -> :class:`Change`. Extend with :func:`register_change`.
CHANGES: dict[str, Change] = {}


def register_change(change: Change, *, replace: bool = False) -> Change:
    """Add a change to :data:`CHANGES` (``replace=True`` to override one of the same name)."""
    if change.target not in ("world", "interface"):
        raise ValueError(f"Change.target must be 'world' or 'interface', got {change.target!r}")
    if change.name in CHANGES and not replace:
        raise ValueError(f"a change named {change.name!r} is already registered (pass replace=True)")
    CHANGES[change.name] = change
    return change


def nearest_change(name: str) -> Optional[str]:
    """The registered change name closest to ``name`` (for 'did you mean' hints), or None."""
    hits = difflib.get_close_matches(str(name), list(CHANGES), n=1, cutoff=0.5)
    return hits[0] if hits else None


# --------------------------------------------------------------------------- world: CartPole


def _is_cartpole(u) -> bool:
    return all(hasattr(u, a) for a in ("masspole", "masscart", "length", "polemass_length", "total_mass"))


def _cartpole_supports(u) -> Optional[str]:
    return None if _is_cartpole(u) else f"needs a CartPole env, not {type(u).__name__}"


def _cartpole_attr(attr: str) -> tuple[Callable, Callable]:
    def capture(u):
        return float(getattr(u, attr))

    def apply(u, value, base):
        setattr(u, attr, base if value is None else float(value))
        # CartPole caches these two in __init__; its step() reads the caches, not the parts.
        u.total_mass = u.masspole + u.masscart
        u.polemass_length = u.masspole * u.length

    return capture, apply


for _attr, _doc, _parse in [
    ("length", "CartPole half pole length in m (default 0.5)", _positive),
    ("masspole", "CartPole pole mass in kg (default 0.1)", _positive),
    ("masscart", "CartPole cart mass in kg (default 1.0)", _positive),
    ("force_mag", "CartPole push force in N (default 10)", _positive),
]:
    _cap, _app = _cartpole_attr(_attr)
    register_change(Change(_attr, _doc, "world", _parse, _app, _cap, _cartpole_supports))


# --------------------------------------------------------------------------- world: MuJoCo


def _is_mujoco(u) -> bool:
    model = getattr(u, "model", None)
    return model is not None and hasattr(model, "geom_friction") and hasattr(model, "body_mass")


def _mujoco_supports(u) -> Optional[str]:
    return None if _is_mujoco(u) else f"needs a MuJoCo env, not {type(u).__name__}"


def _friction_capture(u):
    return u.model.geom_friction[:, 0].copy()


def _friction_scale(u, value, base):
    # Sliding friction of every geom; a contact uses the larger of its two geoms' values,
    # so scaling all of them scales every contact.
    u.model.geom_friction[:, 0] = base * (1.0 if value is None else float(value))


def _friction_set(u, value, base):
    u.model.geom_friction[:, 0] = base if value is None else float(value)


register_change(Change("friction", "factor on the sliding friction of every MuJoCo geom", "world",
                       _positive, _friction_scale, _friction_capture, _mujoco_supports))
register_change(Change("friction_coef", "sliding friction coefficient set on every MuJoCo geom (absolute)",
                       "world", _non_negative, _friction_set, _friction_capture, _mujoco_supports))


def _mass_capture(u):
    return u.model.body_mass.copy(), u.model.body_inertia.copy()


def _mass_scale(u, value, base):
    mass, inertia = base
    k = 1.0 if value is None else float(value)
    u.model.body_mass[:] = mass * k
    u.model.body_inertia[:] = inertia * k  # same shape, same density: inertia scales with mass


register_change(Change("body_mass", "factor on the mass (and inertia) of every MuJoCo body", "world",
                       _positive, _mass_scale, _mass_capture, _mujoco_supports))


# --------------------------------------------------------------------------- world: gravity (several envs)


def _gravity_kind(u) -> Optional[str]:
    if _is_mujoco(u):
        return "mujoco"
    if _is_cartpole(u):
        return "cartpole"
    if hasattr(u, "g") and hasattr(u, "max_torque"):  # Pendulum
        return "pendulum"
    return None


def _gravity_supports(u) -> Optional[str]:
    if _gravity_kind(u) is None:
        return f"gravity applies to CartPole, Pendulum and MuJoCo envs, not {type(u).__name__}"
    return None


def _gravity_capture(u):
    kind = _gravity_kind(u)
    if kind == "mujoco":
        return u.model.opt.gravity.copy()
    return float(u.gravity if kind == "cartpole" else u.g)


def _gravity_apply(u, value, base):
    kind = _gravity_kind(u)
    if kind == "mujoco":
        g = np.array(base, dtype=np.float64)
        if value is not None:
            g[2] = -float(value)  # the value is the downward magnitude
        u.model.opt.gravity[:] = g
    elif kind == "cartpole":
        u.gravity = base if value is None else float(value)
    else:
        u.g = base if value is None else float(value)


register_change(Change("gravity", "downward gravity in m/s^2 (CartPole 9.8, Pendulum 10, MuJoCo 9.81)", "world",
                       parse_number, _gravity_apply, _gravity_capture, _gravity_supports))


# --------------------------------------------------------------------------- interface


class Interface:
    """What the agent does, sees and earns; the identity until a change sets a field.

    * action: ``env_action = action_map[a]`` for ``Discrete`` actions; for ``Box`` actions
      ``env_action = a[action_map]`` (env dimension ``i`` receives agent dimension ``action_map[i]``).
    * reward: ``r' = reward_scale * (r + (direction - 1) * forward)`` where ``forward`` is
      ``info["reward_forward"]`` (Gymnasium MuJoCo v5 locomotion; falls back to
      ``info["x_velocity"]``, i.e. a forward weight of 1). ``direction=-1`` rewards running backwards
      with the control and survival terms unchanged; ``info["reward_forward"]`` is updated to match.
    * observation: ``o' = drop(gain * o + offset + noise_std * N(0, 1))`` with each reading set to 0
      with probability ``dropout``; the noise and dropout draws come from the wrapper's own
      ``numpy.random.Generator``. The reading is then clipped into the env's ``Box`` (a sensor
      saturates at its range), so a changed env keeps Gymnasium's contract that every observation
      lies in ``observation_space`` (its checker asserts it); the agent's encoder clips bounded
      dimensions to the same range, and unbounded ones are untouched. The dtype is kept.
    """

    def __init__(self, observation_space, action_space):
        self._obs_shape = getattr(observation_space, "shape", None)
        self._obs_box = hasattr(observation_space, "low") and self._obs_shape is not None
        self._obs_low = np.asarray(observation_space.low) if self._obs_box else None
        self._obs_high = np.asarray(observation_space.high) if self._obs_box else None
        self._discrete = hasattr(action_space, "n") and not hasattr(action_space, "nvec")
        self._n_actions = int(action_space.n) if self._discrete else None
        self._act_shape = getattr(action_space, "shape", None)
        self.action_map: Optional[np.ndarray] = None
        self.direction = 1.0
        self.reward_scale = 1.0
        self.gain: Any = 1.0
        self.offset: Any = 0.0
        self.noise_std = 0.0
        self.dropout = 0.0
        self.observation_identity = True

    # ---- setters (validate against the spaces) ------------------------------------------

    def set_action_map(self, perm: tuple) -> None:
        size = self._n_actions if self._discrete else (int(np.prod(self._act_shape)) if self._act_shape else None)
        if size is None:
            raise ValueError("action_map needs a Discrete or Box action space")
        if len(perm) != size:
            raise ValueError(f"has {len(perm)} entries but the env has {size} "
                             f"{'actions' if self._discrete else 'action dimensions'}")
        self.action_map = None if tuple(perm) == tuple(range(size)) else np.asarray(perm, dtype=np.int64)

    def _obs_param(self, value, what):
        if not self._obs_box:
            raise ValueError(f"{what} needs a Box observation space")
        if isinstance(value, tuple):
            n = int(np.prod(self._obs_shape))
            if len(value) != n:
                raise ValueError(f"has {len(value)} entries but observations have {n}")
            return np.asarray(value, dtype=np.float64).reshape(self._obs_shape)
        return float(value)

    def set_gain(self, value) -> None:
        self.gain = self._obs_param(value, "sensor_gain")
        self._update()

    def set_offset(self, value) -> None:
        self.offset = self._obs_param(value, "sensor_offset")
        self._update()

    def set_noise(self, value) -> None:
        self._obs_param(value, "sensor_noise")
        self.noise_std = float(value)
        self._update()

    def set_dropout(self, value) -> None:
        self._obs_param(value, "sensor_dropout")
        self.dropout = float(value)
        self._update()

    # ---- the transforms ---------------------------------------------------------------------

    def _update(self) -> None:
        # cached: the wrapper asks on every step
        self.observation_identity = bool(np.all(np.equal(self.gain, 1.0)) and np.all(np.equal(self.offset, 0.0))
                                         and self.noise_std == 0.0 and self.dropout == 0.0)

    def action(self, a):
        if self.action_map is None:
            return a
        if self._discrete:
            return type(a)(self.action_map[int(a)]) if isinstance(a, (int, np.integer)) else self.action_map[a]
        a = np.asarray(a)
        return a.reshape(-1)[self.action_map].reshape(a.shape)

    def reward(self, r, info: dict):
        if self.direction != 1.0:
            if "reward_forward" in info:
                forward = info["reward_forward"]
            elif "x_velocity" in info:
                forward = info["x_velocity"]
            else:
                raise KeyError("direction needs info['reward_forward'] or info['x_velocity'] "
                               "(Gymnasium MuJoCo locomotion envs provide them)")
            r = r + (self.direction - 1.0) * forward
            info["reward_forward"] = self.direction * forward
        if self.reward_scale != 1.0:
            r = r * self.reward_scale
        return float(r)

    def observation(self, obs, rng: np.random.Generator):
        if self.observation_identity:
            return obs
        x = np.asarray(obs, dtype=np.float64) * self.gain + self.offset
        if self.noise_std > 0.0:
            x = x + self.noise_std * rng.standard_normal(x.shape)
        if self.dropout > 0.0:
            x = np.where(rng.random(x.shape) < self.dropout, 0.0, x)
        x = x.astype(np.asarray(obs).dtype, copy=False)
        return np.clip(x, self._obs_low, self._obs_high).astype(x.dtype, copy=False)


def _interface_change(name: str, doc: str, parse, setter: str, scalar: bool = True) -> Change:
    def apply(iface: Interface, value, base):
        if value is None:  # a fresh Interface is the identity; nothing to restore
            return
        if setter.startswith("set_"):
            getattr(iface, setter)(value)
        else:
            setattr(iface, setter, float(value))

    return register_change(Change(name, doc, "interface", parse, apply, scalar=scalar))


_interface_change("action_map", "permutation of actions, e.g. [1, 0] swaps CartPole's left and right",
                  _permutation, "set_action_map", scalar=False)
_interface_change("direction", "+1 forward, -1 rewards running backwards (MuJoCo locomotion)",
                  parse_number, "direction")
_interface_change("reward_scale", "factor on the reward", parse_number, "reward_scale")
_interface_change("sensor_gain", "factor on every observation (a number or one per dimension)",
                  _scalar_or_vector, "set_gain")
_interface_change("sensor_offset", "added to every observation (a number or one per dimension)",
                  _scalar_or_vector, "set_offset")
_interface_change("sensor_noise", "std of Gaussian noise added to every observation", _non_negative, "set_noise")
_interface_change("sensor_dropout", "probability that an observation reading reads 0", _probability, "set_dropout")


def describe_changes(names: Optional[Mapping[str, Change]] = None) -> str:
    """One line per registered change (for ``--help`` style listings and error messages)."""
    reg = CHANGES if names is None else names
    return "\n".join(f"{n:15s} [{c.target}] {c.doc}" for n, c in sorted(reg.items()))
