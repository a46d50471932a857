"""Pictures of brains: spike rasters, weight images, PNG files, TensorBoard layout."""

import struct
import zlib

import numpy as np
import pytest
import torch

from spikegym.training.images import (
    DIVERGING,
    GROUP_COLORS,
    save_png,
    spike_raster,
    to_tensorboard_image,
    weight_image,
)


def decode_png(data: bytes) -> np.ndarray:
    """Minimal PNG reader for the files save_png writes (8-bit RGB, no interlace): checks
    the signature and every chunk's CRC, and undoes all five filter types."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
        if kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = header
    assert (depth, ctype, interlace) == (8, 2, 0)
    raw = zlib.decompress(idat)
    stride = w * 3
    out = np.zeros((h, stride), dtype=np.int32)
    for y in range(h):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        f, row = line[0], np.frombuffer(line[1:], np.uint8).astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (row[x] + pred) & 0xFF
        out[y] = cur
    return out.reshape(h, w, 3).astype(np.uint8)


# --- spike raster ------------------------------------------------------------------------


def test_raster_bright_exactly_where_spikes_are():
    rng = np.random.default_rng(0)
    spikes = rng.random((30, 10)) < 0.15  # [T, N]
    groups, scale, band = [("in", 4), ("motor", 6)], 2, 3
    img = spike_raster(spikes, groups=groups, scale=scale, band=band)
    assert img.shape == (10 * scale + band, 30 * scale, 3) and img.dtype == np.uint8

    # Rows of each group (neuron 0 at the top), with the band between the groups.
    neuron_rows = np.r_[0 : 4 * scale, 4 * scale + band : 10 * scale + band]
    neurons = img[neuron_rows]
    expected = np.kron(spikes.T.astype(int), np.ones((scale, scale), int)).astype(bool)
    bright = neurons.min(axis=-1) > 100
    dark = neurons.max(axis=-1) < 60
    np.testing.assert_array_equal(bright, expected)
    np.testing.assert_array_equal(dark, ~expected)

    # The band has the colour of the group below it; group backgrounds are tinted apart.
    np.testing.assert_array_equal(img[4 * scale : 4 * scale + band], np.broadcast_to(GROUP_COLORS[1].astype(np.uint8), (band, 60, 3)))
    bg0 = img[0][~expected[0]][0]
    bg1 = img[4 * scale + band][~expected[4 * scale]][0]
    assert not np.array_equal(bg0, bg1)


def test_raster_single_spike_position_and_torch_input():
    spikes = torch.zeros(5, 3, dtype=torch.bool)
    spikes[3, 2] = True  # neuron 2 fires at t = 3
    img = spike_raster(spikes, scale=1)
    assert img.shape == (3, 5, 3)
    lum = img.mean(axis=-1)
    assert np.unravel_index(lum.argmax(), lum.shape) == (2, 3)
    assert (lum > 100).sum() == 1


def test_raster_float_rates_blend_monotonically():
    rates = np.linspace(0, 1, 11)[:, None]  # [T=11, N=1]
    lum = spike_raster(rates, scale=1)[0].astype(int).sum(axis=-1)
    assert np.all(np.diff(lum) > 0)


def test_raster_rejects_groups_that_do_not_sum_to_n():
    with pytest.raises(ValueError, match="sum to N"):
        spike_raster(np.zeros((4, 5)), groups=[("a", 2), ("b", 2)])


# --- weight image ------------------------------------------------------------------------


def test_signed_weight_colour_monotone_and_white_at_zero():
    w = np.linspace(-1.0, 1.0, 101)[None, :]  # [1, 101]
    img = weight_image(w, scale=1).astype(int)[0]
    red_minus_blue = img[:, 0] - img[:, 2]
    assert np.all(np.diff(red_minus_blue) > 0)
    np.testing.assert_array_equal(img[50], [255, 255, 255])
    np.testing.assert_array_equal(img[0], DIVERGING[0][1])
    np.testing.assert_array_equal(img[-1], DIVERGING[-1][1])
    # vmax = max|w| by default, and values beyond an explicit vmax clip.
    np.testing.assert_array_equal(weight_image(w * 4, scale=1), weight_image(w, scale=1))
    clipped = weight_image(np.array([[5.0, 1.0]]), scale=1, vmax=1.0)
    np.testing.assert_array_equal(clipped[0, 0], clipped[0, 1])


def test_nonnegative_weight_luminance_monotone():
    w = torch.linspace(0.0, 2.0, 101).reshape(1, 101)
    img = weight_image(w, scale=1, signed=False).astype(float)[0]
    lum = img @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lum) > 0)
    np.testing.assert_array_equal(img[0], [0, 0, 0])
    np.testing.assert_array_equal(img[-1], [255, 255, 255])


def test_weight_image_layout_and_scale():
    w = np.zeros((3, 5))
    w[1, 4] = -2.0  # pre 1 -> post 4
    img = weight_image(w, scale=4)
    assert img.shape == (12, 20, 3)
    block = img[4:8, 16:20]
    assert np.all(block[..., 2] > block[..., 0])  # blue
    others = np.ones((3, 5), bool)
    others[1, 4] = False
    assert np.all(img[::4, ::4][others] == 255)  # zero weights are white
    assert weight_image(np.zeros((100, 40))).shape == (500, 200, 3)  # auto scale: <= 512 px
    with pytest.raises(ValueError, match="pick one agent"):
        weight_image(np.zeros((2, 3, 4)))


# --- files and TensorBoard ---------------------------------------------------------------


def test_save_png_decodes_to_the_same_pixels(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    path = save_png(img, tmp_path / "sub" / "a.png")
    data = open(path, "rb").read()
    np.testing.assert_array_equal(decode_png(data), img)
    assert save_png(img, tmp_path / "b.png") and open(tmp_path / "b.png", "rb").read() == data

    iio = pytest.importorskip("imageio.v3")
    np.testing.assert_array_equal(iio.imread(path), img)


def test_save_png_of_a_raster_and_greyscale(tmp_path):
    raster = spike_raster(np.eye(6, dtype=bool), groups=[("a", 3), ("b", 3)])
    np.testing.assert_array_equal(decode_png(open(save_png(raster, tmp_path / "r.png"), "rb").read()), raster)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(decode_png(open(save_png(grey, tmp_path / "g.png"), "rb").read())[..., 1], grey)
    with pytest.raises(ValueError, match="uint8"):
        save_png(np.zeros((2, 2, 3)), tmp_path / "f.png")


def test_to_tensorboard_image_layout_round_trip(tmp_path):
    img = weight_image(np.array([[-1.0, 0.5, 1.0], [0.0, 0.2, -0.3]]), scale=2)  # [4, 6, 3]
    chw = to_tensorboard_image(img)
    assert chw.shape == (3, 4, 6) and chw.dtype == np.uint8
    np.testing.assert_array_equal(chw[:, 1, 5], img[1, 5])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    writer.add_image("brain/weights", chw, 7)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    (event,) = acc.Images("brain/weights")
    assert (event.step, event.width, event.height) == (7, 6, 4)
    iio = pytest.importorskip("imageio.v3")
    np.testing.assert_array_equal(iio.imread(event.encoded_image_string)[..., :3], img)
