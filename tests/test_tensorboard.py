"""TensorBoard: the main curve first (a custom-scalars layout), honest names (means are means,
the population's median and quartiles under ``population/``), each agent's returns under its own
tag, one source per image tag, labelled figures, only written tags defined, and a README tag list
that names only what the code writes."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.training import tags as T
from spikegym.training.config import load_config
from spikegym.training.figures import label_image, raster_figure, weight_figure
from spikegym.training.images import GROUP_COLORS, spike_raster, weight_image
from spikegym.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "configs" / "cartpole.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """300 steps of 4 CartPole agents, logged every 10 steps (pictures every 100)."""
    run_dir = tmp_path_factory.mktemp("tb") / "run"
    cfg = load_config(CARTPOLE, ["run.steps=300", "env.num_agents=4", "run.log_every=10", "run.progress=off"])
    return run_dir, train(cfg, run_dir=run_dir)


def events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_custom_scalars_layout_puts_the_median_and_its_band_first(run):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar import layout_pb2

    layouts = []
    for path in glob.glob(str(run[0] / "events.out.tfevents.*")):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "custom_scalars":
                    layouts.append(layout_pb2.Layout.FromString(value.tensor.string_val[0]))
    assert len(layouts) == 1
    first = layouts[0].category[0].chart[0]
    assert "median" in first.title
    series = first.margin.series[0]
    assert (series.value, series.lower, series.upper) == (T.POP_MEDIAN, T.POP_P25, T.POP_P75)


def test_population_tags_and_sb3_means_are_what_they_say(run):
    run_dir, result = run
    acc = events(run_dir)
    last = {tag: acc.Scalars(tag)[-1].value for tag in (T.EP_REW_MEAN, T.POP_MEDIAN, T.POP_P25, T.POP_P75)}
    recent = np.array(result["mean_return_last100_per_agent"])
    assert last[T.EP_REW_MEAN] == pytest.approx(recent.mean(), rel=1e-5)  # a mean, as SB3 users read it
    assert last[T.POP_MEDIAN] == pytest.approx(np.median(recent), rel=1e-5)
    assert last[T.POP_P25] == pytest.approx(np.percentile(recent, 25), rel=1e-5)
    assert last[T.POP_P75] == pytest.approx(np.percentile(recent, 75), rel=1e-5)


def test_each_agent_has_its_own_return_tag(run):
    run_dir, result = run
    acc = events(run_dir)
    scalars = acc.Tags()["scalars"]
    for i, n in enumerate(result["episodes_per_agent"]):
        points = acc.Scalars(T.tag(T.AGENT_RETURN, agent=str(i)))
        assert len(points) == n and all(p.value >= 1 for p in points)
    assert not any(tag.startswith("agents/return_4") for tag in scalars)  # 4 agents: 0..3
    assert len(acc.Scalars(T.EPISODIC_RETURN)) == sum(result["episodes_per_agent"])  # CleanRL's mixed points


def test_each_image_tag_has_one_image_per_step(run):
    acc = events(run[0])
    for tag in (T.BRAIN_RASTER, T.tag(T.PLASTICITY_W_IMAGE, proj="sensors_to_motor")):
        steps = [e.step for e in acc.Images(tag)]
        assert steps == [100, 200, 300], (tag, steps)


# --------------------------------------------------------------------------- figures


def test_weight_figure_has_axes_labels_and_a_colour_bar():
    w = np.array([[-1.0, 0.0, 0.5], [0.25, 1.0, -0.5]])
    fig = weight_figure(torch.tensor(w), pre="pre", post="post", title="t")
    core = weight_image(w)
    assert fig.shape[0] > core.shape[0] + 20 and fig.shape[1] > core.shape[1] + 40
    # the colour bar: a column right of the matrix that runs from red (top) to blue (bottom)
    right = fig[:, -60:].astype(int)
    reds = np.argwhere((right[..., 0] - right[..., 2]) > 100)
    blues = np.argwhere((right[..., 2] - right[..., 0]) > 100)
    assert len(reds) and len(blues) and reds[:, 0].mean() < blues[:, 0].mean()
    assert (fig[:, :10] < 100).any()  # the rotated y label's ink, left of the matrix


def test_raster_figure_labels_groups_in_their_colours():
    spikes = np.zeros((20, 6), bool)
    spikes[::2, 0] = True
    fig = raster_figure(spikes, groups=[("sensors", 4), ("action 0", 2)], substeps=4, title="agent 0")
    core = spike_raster(spikes, groups=[("sensors", 4), ("action 0", 2)], scale=2)
    assert fig.shape[0] > core.shape[0] and fig.shape[1] > core.shape[1]
    margin = fig[:, : fig.shape[1] - core.shape[1]].reshape(-1, 3).astype(int)
    for colour in GROUP_COLORS[:2].astype(int):  # each group's name is written in its colour
        assert (np.abs(margin - colour).sum(axis=1) < 60).any(), colour


def test_label_image_marks_the_corner_only():
    frame = np.full((100, 120, 3), 200, np.uint8)
    out = label_image(frame, "agent 3  return 12.0")
    assert out.shape == frame.shape
    assert (out[:8, :8] == 0).all() and (out[:20, :60] > 200).any()  # a dark box with light text
    np.testing.assert_array_equal(out[60:], frame[60:])


# --------------------------------------------------------------------------- tag definitions


def package_sources() -> str:
    files = [p for d in ("training", "agents", "envs", "brains") for p in (ROOT / d).rglob("*.py")
             if p.name != "tags.py"]
    return "\n".join(p.read_text() for p in files)


def test_every_defined_tag_is_written_somewhere():
    text = package_sources()
    unused = [name for name in T.all_tags() if not re.search(rf"\b(T|tags)\.{name}\b", text)]
    assert not unused, f"defined in tags.py but never written: {unused}"


def _pattern(tag: str) -> str:
    """A tag or template (``{x}`` / README's ``<x>``) as a regex over concrete tags."""
    parts = re.split(r"(\{[^}]*\}|<[^>]*>|\.\.\.)", tag)
    return "".join(r"[^/]+" if p.startswith(("{", "<")) else ".+" if p == "..." else re.escape(p) for p in parts)


def _readme_tags() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### TensorBoard"):text.index("## Python API")]
    return [t for t in re.findall(r"`([a-z_]+/[^`\s]*)`", table) if not t.endswith(".py")]


def test_readme_tag_list_names_only_tags_the_code_defines_and_all_of_them():
    defined = list(T.all_tags().values())
    named = _readme_tags()
    assert len(named) > 20
    samples = {t: re.sub(r"\{[^}]*\}", "x", t) for t in defined}  # a concrete tag for each template
    for tag in named:
        assert any(re.fullmatch(_pattern(tag), s) for s in samples.values()), f"README names {tag}, tags.py has no such tag"
    for tag, sample in samples.items():
        assert any(re.fullmatch(_pattern(t), sample) for t in named), f"{tag} is written but not in the README"
