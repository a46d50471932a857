"""Gymnasium's classic-control worlds as pure torch step functions over a batch of envs.

Every state is a NamedTuple of ``[B]`` tensors (one entry per env); every step function maps
``(state, action [B] or [B, 1], params) -> (new_state, reward [B], terminated [B] bool)`` and never
mutates its inputs. Params are NamedTuples of physical constants, each a float or a ``[B]`` tensor
(one world per env, so a task change can reach some envs and not others). The formulas are
Gymnasium 1.x's (``gymnasium/envs/classic_control``), written in the same order of operations so that
a float64 state rounds as Gymnasium's does; the stateful batching, time limits and autoreset live in
:mod:`spikegym.envs.torch_vector`.

Initial states are drawn on the host with the env's own numpy generator (:attr:`World.draw`), exactly
as ``env.reset()`` draws them, so a seed gives the same worlds as Gymnasium's.

    >>> s = CartPoleState(*torch.zeros(4, 2, dtype=torch.float64))
    >>> s, reward, terminated = cartpole_step(s, torch.tensor([0, 1]), CartPoleParams())
    >>> s.x_dot.tolist(), reward.tolist(), terminated.tolist()   # pushed left, pushed right
    ([-0.1951219512195122, 0.1951219512195122], [1.0, 1.0], [False, False])
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["CartPoleState", "CartPoleParams", "cartpole_step", "AcrobotState", "AcrobotParams", "acrobot_step",
           "PendulumState", "PendulumParams", "pendulum_step", "MountainCarState", "MountainCarParams",
           "mountain_car_step", "ContinuousMountainCarParams", "continuous_mountain_car_step", "World", "WORLDS"]

Num = Union[float, Tensor]


# ------------------------------------------------------------------------------------------- CartPole


class CartPoleState(NamedTuple):
    """Cart position and velocity, pole angle (rad, 0 = upright) and angular velocity, each ``[B]``."""

    x: Tensor
    x_dot: Tensor
    theta: Tensor
    theta_dot: Tensor


class CartPoleParams(NamedTuple):
    """CartPole-v1's constants (``length``: half the pole). ``sutton_barto_reward``: 0 per step, -1 on failure."""

    gravity: Num = 9.8
    masscart: Num = 1.0
    masspole: Num = 0.1
    length: Num = 0.5
    force_mag: Num = 10.0
    tau: Num = 0.02
    x_threshold: Num = 2.4
    theta_threshold_radians: Num = 12 * 2 * math.pi / 360
    sutton_barto_reward: bool = False


def cartpole_step(s: CartPoleState, action: Tensor, p: CartPoleParams) -> tuple[CartPoleState, Tensor, Tensor]:
    """One explicit-Euler step of 0.02 s (Florian 2007's cart-pole equations, as Gymnasium writes them)::

        temp     = (F + m_p l theta_dot^2 sin theta) / (m_c + m_p)
        theta_dd = (g sin theta - cos theta temp) / (l (4/3 - m_p cos^2 theta / (m_c + m_p)))
        x_dd     = temp - m_p l theta_dd cos theta / (m_c + m_p)

    with ``F = +force_mag`` for action 1 and ``-force_mag`` otherwise. Terminated when ``|x| > 2.4`` or
    ``|theta| > 12 deg``; reward 1 per step (``sutton_barto_reward``: 0, and -1 on failure).

    Args:
        action: ``[B]`` integers in {0, 1}.
    """
    total_mass = p.masspole + p.masscart
    polemass_length = p.masspole * p.length
    force = ((action == 1).to(s.x.dtype) * 2 - 1) * p.force_mag
    costheta, sintheta = torch.cos(s.theta), torch.sin(s.theta)
    temp = (force + polemass_length * torch.square(s.theta_dot) * sintheta) / total_mass
    thetaacc = (p.gravity * sintheta - costheta * temp) / (
        p.length * (4.0 / 3.0 - p.masspole * torch.square(costheta) / total_mass))
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    new = CartPoleState(s.x + p.tau * s.x_dot, s.x_dot + p.tau * xacc,
                        s.theta + p.tau * s.theta_dot, s.theta_dot + p.tau * thetaacc)
    terminated = (new.x.abs() > p.x_threshold) | (new.theta.abs() > p.theta_threshold_radians)
    reward = -terminated.to(s.x.dtype) if p.sutton_barto_reward else torch.ones_like(s.x)
    return new, reward, terminated


# -------------------------------------------------------------------------------------------- Acrobot


class AcrobotState(NamedTuple):
    """Joint angles (rad; 0, 0 = hanging down) and angular velocities of the two links, each ``[B]``."""

    theta1: Tensor
    theta2: Tensor
    dtheta1: Tensor
    dtheta2: Tensor


class AcrobotParams(NamedTuple):
    """Acrobot-v1's constants (the "book" dynamics, no torque noise)."""

    link_length_1: Num = 1.0
    link_mass_1: Num = 1.0
    link_mass_2: Num = 1.0
    link_com_pos_1: Num = 0.5
    link_com_pos_2: Num = 0.5
    link_moi: Num = 1.0
    gravity: Num = 9.8
    dt: Num = 0.2
    max_vel_1: float = 4 * math.pi
    max_vel_2: float = 9 * math.pi


def _acrobot_dsdt(s: tuple[Tensor, ...], a: Tensor, p: AcrobotParams) -> tuple[Tensor, ...]:
    m1, m2, l1, lc1, lc2 = p.link_mass_1, p.link_mass_2, p.link_length_1, p.link_com_pos_1, p.link_com_pos_2
    I1 = I2 = p.link_moi
    g = p.gravity
    theta1, theta2, dtheta1, dtheta2 = s
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + I2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (-m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2) + phi2)
    ddtheta2 = ((a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2)
                / (m2 * lc2**2 + I2 - d2**2 / d1))
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return dtheta1, dtheta2, ddtheta1, ddtheta2


def _wrap(x: Tensor, lo: float, hi: float) -> Tensor:
    """``x`` wrapped into ``[lo, hi]``; one subtraction of the period, as Gymnasium's loop, in the usual case."""
    diff = hi - lo
    above = torch.ceil((x - hi) / diff).clamp(min=1)
    below = torch.ceil((lo - x) / diff).clamp(min=1)
    return torch.where(x > hi, x - above * diff, torch.where(x < lo, x + below * diff, x))


def acrobot_step(s: AcrobotState, action: Tensor, p: AcrobotParams) -> tuple[AcrobotState, Tensor, Tensor]:
    """One 0.2 s step: torque ``action - 1`` in {-1, 0, +1} on the second joint, one RK4 step of the
    two-link equations (Sutton & Barto's book version), angles wrapped into ``[-pi, pi]``, velocities
    clipped to ``4 pi`` and ``9 pi``. Terminated when the tip is a link's length above the pivot,
    ``-cos(theta1) - cos(theta1 + theta2) > 1``; reward -1 per step, 0 on the terminal one.

    Args:
        action: ``[B]`` integers in {0, 1, 2}.
    """
    a = (action.to(s.theta1.dtype) - 1)
    y0 = tuple(s)
    dt = p.dt
    dt2 = dt / 2.0
    k1 = _acrobot_dsdt(y0, a, p)
    k2 = _acrobot_dsdt(tuple(y + dt2 * k for y, k in zip(y0, k1)), a, p)
    k3 = _acrobot_dsdt(tuple(y + dt2 * k for y, k in zip(y0, k2)), a, p)
    k4 = _acrobot_dsdt(tuple(y + dt * k for y, k in zip(y0, k3)), a, p)
    ns = [y + dt / 6.0 * (q1 + 2 * q2 + 2 * q3 + q4) for y, q1, q2, q3, q4 in zip(y0, k1, k2, k3, k4)]
    new = AcrobotState(_wrap(ns[0], -math.pi, math.pi), _wrap(ns[1], -math.pi, math.pi),
                       ns[2].clamp(-p.max_vel_1, p.max_vel_1), ns[3].clamp(-p.max_vel_2, p.max_vel_2))
    terminated = -torch.cos(new.theta1) - torch.cos(new.theta2 + new.theta1) > 1.0
    return new, terminated.to(a.dtype) - 1, terminated


# ------------------------------------------------------------------------------------------- Pendulum


class PendulumState(NamedTuple):
    """Angle (rad, 0 = upright) and angular velocity, each ``[B]``."""

    th: Tensor
    thdot: Tensor


class PendulumParams(NamedTuple):
    """Pendulum-v1's constants (``g`` is the constructor's keyword)."""

    g: Num = 10.0
    m: Num = 1.0
    l: Num = 1.0  # noqa: E741  (Gymnasium's name)
    dt: Num = 0.05
    max_speed: float = 8.0
    max_torque: float = 2.0


def _angle_normalize(x: Tensor) -> Tensor:
    """``((x + pi) mod 2 pi) - pi`` with numpy's float modulo (fmod, then shifted into the divisor's sign)."""
    y = x + math.pi
    mod = torch.fmod(y, 2 * math.pi)
    return torch.where((mod != 0) & (mod < 0), mod + 2 * math.pi, mod) - math.pi


def pendulum_step(s: PendulumState, action: Tensor, p: PendulumParams) -> tuple[PendulumState, Tensor, Tensor]:
    """One 0.05 s step of the torque-limited pendulum::

        cost      = angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2
        thdot'    = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, -8, 8)
        th'       = th + thdot' dt

    with ``u = clip(action, -2, 2)``; reward ``-cost``; never terminates (the time limit truncates).
    The terms in ``u`` are float32 products, as in Gymnasium, where the action is float32.

    Args:
        action: ``[B, 1]`` torques (cast to float32, the action space's dtype).
    """
    dtype = s.th.dtype
    u = action.reshape(-1).to(torch.float32).clamp(-p.max_torque, p.max_torque)
    costs = _angle_normalize(s.th) ** 2 + 0.1 * s.thdot**2 + (0.001 * (u**2)).to(dtype)
    coef = 3.0 / (p.m * p.l**2)
    torque = (coef.to(torch.float32) if isinstance(coef, Tensor) else coef) * u
    newthdot = s.thdot + (3 * p.g / (2 * p.l) * torch.sin(s.th) + torque.to(dtype)) * p.dt
    newthdot = newthdot.clamp(-p.max_speed, p.max_speed)
    new = PendulumState(s.th + newthdot * p.dt, newthdot)
    return new, -costs, torch.zeros_like(s.th, dtype=torch.bool)


# ---------------------------------------------------------------------------------------- MountainCar


class MountainCarState(NamedTuple):
    """Car position (valley at about -0.52) and velocity, each ``[B]``."""

    position: Tensor
    velocity: Tensor


class MountainCarParams(NamedTuple):
    """MountainCar-v0's constants (``goal_velocity`` is the constructor's keyword)."""

    force: Num = 0.001
    gravity: Num = 0.0025
    goal_position: Num = 0.5
    goal_velocity: Num = 0.0
    min_position: float = -1.2
    max_position: float = 0.6
    max_speed: float = 0.07


class ContinuousMountainCarParams(NamedTuple):
    """MountainCarContinuous-v0's constants."""

    power: Num = 0.0015
    gravity: Num = 0.0025
    goal_position: Num = 0.45
    goal_velocity: Num = 0.0
    min_position: float = -1.2
    max_position: float = 0.6
    max_speed: float = 0.07


def _mountain_car_move(s: MountainCarState, push: Tensor, p) -> tuple[MountainCarState, Tensor]:
    velocity = (s.velocity + (push + torch.cos(3 * s.position) * (-p.gravity))).clamp(-p.max_speed, p.max_speed)
    position = (s.position + velocity).clamp(p.min_position, p.max_position)
    velocity = torch.where((position == p.min_position) & (velocity < 0), torch.zeros_like(velocity), velocity)
    terminated = (position >= p.goal_position) & (velocity >= p.goal_velocity)
    return MountainCarState(position, velocity), terminated


def mountain_car_step(s: MountainCarState, action: Tensor,
                      p: MountainCarParams) -> tuple[MountainCarState, Tensor, Tensor]:
    """One step of the underpowered car: ``v' = clip(v + (a - 1) force - cos(3 x) gravity, +-0.07)``,
    ``x' = clip(x + v', -1.2, 0.6)``, ``v' = 0`` at the left wall; terminated at ``x' >= 0.5`` (with
    ``v' >= goal_velocity``); reward -1 per step.

    Args:
        action: ``[B]`` integers in {0, 1, 2} (push left, none, right).
    """
    new, terminated = _mountain_car_move(s, (action.to(s.position.dtype) - 1) * p.force, p)
    return new, -torch.ones_like(s.position), terminated


def continuous_mountain_car_step(s: MountainCarState, action: Tensor,
                                 p: ContinuousMountainCarParams) -> tuple[MountainCarState, Tensor, Tensor]:
    """MountainCarContinuous: push ``clip(action, -1, 1) * power``; goal at 0.45; reward 100 on reaching
    it minus ``0.1 action^2`` (the unclipped action). Gymnasium keeps this env's state in float32 between
    steps and computes partly in float32: the state is rounded to float32 after each step here, the
    arithmetic is in the state's dtype (agreement to about 1e-7, not bit for bit).

    Args:
        action: ``[B, 1]`` forces (cast to float32, the action space's dtype).
    """
    dtype = s.position.dtype
    a = action.reshape(-1).to(torch.float32)
    new, terminated = _mountain_car_move(s, a.clamp(-1.0, 1.0).to(dtype) * p.power, p)
    new = MountainCarState(*(t.to(torch.float32).to(dtype) for t in new))
    reward = terminated.to(dtype) * 100.0 - a.to(dtype) ** 2 * 0.1
    return new, reward, terminated


# ---------------------------------------------------------------------------------------- the registry


class World(NamedTuple):
    """How one Gymnasium env id runs in torch.

    ``draw(rng, n) -> [n, D]`` float64 draws for ``n`` successive resets, consuming ``rng`` exactly as
    ``n`` calls of the env's ``reset()`` would; ``from_draws([B, D], dtype) -> state``; ``observe(state)
    -> [B, obs_dim]`` float32. ``kwargs`` maps the env constructor's keywords to params fields.
    """

    state: type
    params: type
    step: Callable
    draw: Callable[[np.random.Generator, int], np.ndarray]
    from_draws: Callable[[Tensor, torch.dtype], NamedTuple]
    observe: Callable[[NamedTuple], Tensor]
    kwargs: dict


def _uniform(low, high, width: int):
    return lambda rng, n: rng.uniform(low=low, high=high, size=(n, width))


def _cols(state_type, f32: bool = False):
    def from_draws(d: Tensor, dtype: torch.dtype):
        d = d.to(torch.float32) if f32 else d  # Acrobot stores its initial state as float32
        return state_type(*(d[:, i].to(dtype) for i in range(d.shape[1])))
    return from_draws


def _mountain_car_from_draws(d: Tensor, dtype: torch.dtype) -> MountainCarState:
    return MountainCarState(d[:, 0].to(dtype), torch.zeros_like(d[:, 0], dtype=dtype))


def _stack(columns) -> Tensor:
    """``[B, n]`` float32 from ``n`` tensors ``[B]`` (column copies: 2x faster than ``torch.stack(dim=-1)`` on CPU)."""
    columns = tuple(columns)
    out = torch.empty(columns[0].shape[0], len(columns), dtype=torch.float32, device=columns[0].device)
    for i, c in enumerate(columns):
        out[:, i] = c
    return out


def _acrobot_obs(s: AcrobotState) -> Tensor:
    return _stack((torch.cos(s.theta1), torch.sin(s.theta1), torch.cos(s.theta2), torch.sin(s.theta2),
                   s.dtheta1, s.dtheta2))


def _pendulum_obs(s: PendulumState) -> Tensor:
    return _stack((torch.cos(s.th), torch.sin(s.th), s.thdot))


#: Env id -> :class:`World`. The ids are Gymnasium's registered ones (their spaces and time limits are read from
#: Gymnasium's registry by :class:`~spikegym.envs.torch_vector.TorchVectorEnv`).
WORLDS: dict[str, World] = {
    "CartPole-v1": World(CartPoleState, CartPoleParams, cartpole_step, _uniform(-0.05, 0.05, 4),
                         _cols(CartPoleState), _stack, {"sutton_barto_reward": "sutton_barto_reward"}),
    "Acrobot-v1": World(AcrobotState, AcrobotParams, acrobot_step, _uniform(-0.1, 0.1, 4),
                        _cols(AcrobotState, f32=True), _acrobot_obs, {}),
    "Pendulum-v1": World(PendulumState, PendulumParams, pendulum_step,
                         _uniform(-np.array([math.pi, 1.0]), np.array([math.pi, 1.0]), 2),
                         _cols(PendulumState), _pendulum_obs, {"g": "g"}),
    "MountainCar-v0": World(MountainCarState, MountainCarParams, mountain_car_step, _uniform(-0.6, -0.4, 1),
                            _mountain_car_from_draws, _stack, {"goal_velocity": "goal_velocity"}),
    "MountainCarContinuous-v0": World(MountainCarState, ContinuousMountainCarParams, continuous_mountain_car_step,
                                      _uniform(-0.6, -0.4, 1), _mountain_car_from_draws, _stack,
                                      {"goal_velocity": "goal_velocity"}),
}
