"""The counter-based noise (:mod:`spikegym.brains.random`): every fast way of drawing it equals
:func:`~spikegym.brains.random.uniform`, a Bernoulli threshold is exact, and the hash's statistics are sound."""

import math

import pytest
import torch

from spikegym.brains.random import agent_keys, uniform


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_row_words_tensor_and_python_paths_agree():
    from spikegym.brains.random import row_codes
    for counter in (0, 5, 14, 15, 31, (1 << 32) - 3, (1 << 40) + 9):
        assert torch.equal(row_codes(counter, 100)[:30], row_codes(counter, 30))  # 100 steps: the tensor path


def test_bernoulli_threshold_is_exact():
    from spikegym.brains.random import UNIT, bernoulli_threshold
    p = torch.cat([torch.rand(2000, generator=_gen(1)), torch.tensor([0.0, 1.0, UNIT, 0.5, 1 - UNIT, 3e-9])])
    thr = bernoulli_threshold(p)
    for shift in (-2, -1, 0, 1):
        a = (thr + shift).clamp(-(1 << 23), (1 << 23) - 1)  # the 24-bit values next to each threshold
        u = (a + (1 << 23)) * UNIT
        assert torch.equal(a < thr, u < p)


def test_hash_noise_statistics():
    """Uniform in every bit range, no correlation between neighbouring steps, neurons or agents, nor between
    any two of 768 columns over 2000 steps, and independent Bernoulli pairs."""
    keys = agent_keys(0, 12)
    t_steps = 2000
    u = uniform(keys, 12345, (t_steps, 12, 64)).double()  # [T, B, N]
    a = (u * (1 << 24)).long()
    for bits in (a >> 16, (a >> 8) & 255, a & 255):  # top, middle and low byte: chi-square, 255 dof
        counts = torch.bincount(bits.flatten(), minlength=256).double()
        expected = bits.numel() / 256
        assert ((counts - expected) ** 2 / expected).sum() < 255 + 6 * math.sqrt(2 * 255)

    def z(x, y):
        x, y = x - x.mean(), y - y.mean()
        return float((x * y).sum() / (x.norm() * y.norm())) * math.sqrt(x.numel())

    for lag in (z(u[1:], u[:-1]), z(u[:, :, 1:], u[:, :, :-1]), z(u[:, 1:], u[:, :-1]), z(u[1:, :, 1:], u[:-1, :, :-1])):
        assert abs(lag) < 5
    cols = u.reshape(t_steps, -1)
    cols = (cols - cols.mean(0)) / cols.std(0)
    zs = (cols.T @ cols / t_steps)[torch.triu_indices(cols.shape[1], cols.shape[1], 1).unbind()] * math.sqrt(t_steps)
    assert float((zs ** 2).mean()) == pytest.approx(1.0, abs=0.05)
    assert float(zs.abs().max()) < 6.5
    s = (u.reshape(t_steps, -1) < 0.2).double()
    joint = (s[:, :-1] * s[:, 1:]).mean(0)  # neighbouring columns fire together at p^2
    assert float(joint.mean()) == pytest.approx(0.04, abs=0.002)
