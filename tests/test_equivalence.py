"""Every shipped config on every backend that accepts it, in lockstep with the torch reference.

Before each step the reference agent is loaded with the kernel agent's state (the checkpoint form, so this
also moves checkpoints between backends every step); both then take the same observation, reward and flags.
The kernel sums in another order and its ``exp`` is a polynomial within 2 ulp, so a probability can round to
the other side of its noise value: a step where any spike differs is counted, and must be rare. On every
other step, actions and spikes are equal and every signal and state tensor agrees within float32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegym.agents.agent import Agent
from spikegym.agents.kernel import unsupported
from spikegym.envs import make_vector_env, obs_bounds, reset_seeds
from spikegym.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))
numba = pytest.importorskip("numba")


def _agents(config: str, batch: int, *overrides: str):
    cfg = load_config(ROOT / config, [f"env.num_agents={batch}", *overrides])
    envs = make_vector_env(cfg.env.id, batch, 0, kwargs=cfg.env.kwargs, vectorization="sync",
                           max_episode_steps=cfg.env.max_episode_steps, schedule=cfg.env.schedule)
    low, high = obs_bounds(envs.single_observation_space)
    make = lambda engine: Agent(cfg, low, high, envs.single_action_space, num_agents=batch, seed=3,  # noqa: E731
                                engine=engine)
    return cfg, envs, make


def _close(a, b, what, step, rtol=2e-4, atol=2e-5):
    scale = max(1.0, float(b.abs().max())) if b.numel() and b.is_floating_point() else 1.0
    if a.dtype == torch.bool or not a.is_floating_point():
        assert torch.equal(a, b), f"{what} differs at step {step}"
    else:
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol * scale, msg=lambda m: f"{what} at step {step}: {m}")


def lockstep(config: str, *overrides: str, batch: int = 4, steps: int = 200, max_flips: float = 0.05,
             prepare=None) -> int:
    """Run the kernel and the reference side by side; returns the number of steps where a spike differed.
    ``prepare(spec, state) -> state`` changes the agents' state before the first step (e.g. a lesion)."""
    cfg, envs, make = _agents(config, batch, *overrides)
    fast, ref = make("kernel"), make("reference")
    if prepare is not None:  # the reference takes the kernel's state (and so the change) before every step
        fast.state = prepare(fast.spec, fast.state)
    assert fast.backend.name == "kernel" and ref.backend.name == "reference"
    obs, _ = envs.reset(seed=reset_seeds(0, batch))
    reward, term, trunc = np.zeros(batch), np.zeros(batch, bool), np.zeros(batch, bool)
    flips, ends = 0, 0
    for step in range(steps):
        ref.load_state_dict({k: v.clone() for k, v in fast.state_dict().items()})
        learn = step % 40 != 39  # now and then a step that must not learn
        a_fast, i_fast = fast.step(obs, reward, term, trunc, learn=learn)
        a_ref, i_ref = ref.step(obs, reward, term, trunc, learn=learn)
        if not (torch.equal(i_fast.sensors, i_ref.sensors) and torch.equal(i_fast.motor, i_ref.motor)
                and torch.equal(i_fast.spikes, i_ref.spikes)):
            flips += 1
        else:
            np.testing.assert_array_equal(a_fast, a_ref, err_msg=f"actions at step {step}")
            for field in ("delta", "value", "extrinsic", "intrinsic", "novelty", "learnable"):
                _close(getattr(i_fast, field), getattr(i_ref, field), field, step)
            for field in ("ach_gain", "surprise"):
                x, y = getattr(i_fast, field), getattr(i_ref, field)
                assert (x is None) == (y is None), f"{field}: {x} vs {y}"
                if x is not None:
                    _close(x, y, field, step)
            ref_state = ref.state_dict()
            for name, t in fast.state_dict().items():
                _close(t, ref_state[name], name, step)
        obs, reward, term, trunc, _ = envs.step(a_fast)
        ends += int(np.count_nonzero(term | trunc))
    envs.close()
    assert flips <= max_flips * steps, f"{flips} of {steps} steps had a spike round the other way"
    return flips


@pytest.mark.parametrize("config", CONFIGS)
def test_every_shipped_config_runs_on_the_kernel_in_lockstep_with_the_reference(config):
    cfg, envs, make = _agents(config, 2)
    envs.close()
    reason = unsupported(make("reference").spec)
    assert reason is None, f"{config}: the kernel cannot run it ({reason})"
    lockstep(config, steps=60 if "mujoco" in config or "cheetah" in config else 120)


@pytest.mark.parametrize("overrides", [
    ("plasticity.w_max=0.05",),                                              # hard weight bounds
    ("plasticity.w_max=0.05", "plasticity.soft_bound=true"),                 # soft bounds
    ("brain.homeostasis.enabled=true", "brain.homeostasis.eta=0.05"),         # threshold homeostasis
    ("brain.homeostasis.enabled=true", "brain.homeostasis.mode=both", "brain.homeostasis.eta=0.01"),  # + scaling
    ("plasticity.w_max=0.05", "brain.homeostasis.enabled=true", "brain.homeostasis.mode=scaling",
     "brain.homeostasis.target_rate=0.9"),                                    # scaling against the bounds
    ("dopamine.mode=baseline",),
    ("dopamine.serotonin.enabled=true", "dopamine.serotonin.tau_steps=10"),  # serotonin sets the discount
    ("novelty.surprise_gain=0.5", "novelty.surprise_shrink=0.01", "novelty.surprise_errors=punishment"),
    ("dopamine.clip=0.05", "novelty.enabled=true", "novelty.ach_gain=2.0", "novelty.decay_steps=100"),
    ("novelty.enabled=true", "novelty.mode=neurons", "novelty.ach_gain=1.0"),
    ("encoder.adaptation.enabled=true", "encoder.adaptation.strength=4.0"),  # habituation and sensitization
    ("brain.lateral_inhibition=0.2",),
    ("brain.stp.enabled=true",),
    ("brain.structural.enabled=true", "brain.structural.every=20", "brain.structural.max_density=0.6",
     "brain.structural.prune_below=0.002", "brain.w_init_std=0.01"),
    ("brain.neuron=lif", "plasticity.rule=stdp", "plasticity.actor_lr=0.002"),
    ("brain.neuron=alif", "plasticity.rule=stdp", "plasticity.stdp.hetero_ltd=0.2", "brain.stp.enabled=true",
     "brain.lateral_inhibition=0.3", "plasticity.w_max=1.0", "brain.homeostasis.enabled=true"),
    ("brain.neuron=lif", "brain.lif_escape_slope=4", "plasticity.rule=stdp", "plasticity.stdp.center=expected",
     "plasticity.actor_lr=0.01"),                                            # R-STDP: noisy LIF, centred window
    ("brain.neuron=alif", "brain.lif_escape_slope=4", "plasticity.rule=stdp", "plasticity.stdp.center=rate",
     "plasticity.stdp.hetero_ltd=0.2", "plasticity.w_max=0.05", "brain.structural.enabled=true",
     "brain.structural.every=20", "brain.w_init_std=0.01"),                  # rate-centred, hetero LTD, masks
    ("brain.neuron=lif", "brain.lif_escape_slope=4", "plasticity.actor_lr=0.01"),  # node perturbation on noisy LIF
    ("modules.count=3", "modules.patience=3", "modules.switch_surprise=0.2", "modules.fast_steps=3",
     "modules.slow_steps=50", "modules.errors=absolute", "modules.recall_patience=2"),  # context modules, often
    ("modules.count=2", "modules.patience=2", "modules.fast_steps=2", "modules.slow_steps=40",
     "brain.structural.enabled=true", "brain.structural.every=20", "brain.structural.max_density=0.6"),
    ("plasticity.consolidation.enabled=true", "plasticity.consolidation.rate=0.5",
     "plasticity.consolidation.tau_steps=50"),                              # consolidation
    ("plasticity.consolidation.enabled=true", "plasticity.consolidation.rate=0.5", "plasticity.w_max=0.05",
     "modules.count=2", "modules.patience=2", "modules.fast_steps=2", "modules.slow_steps=40"),  # + modules
    ("plasticity.renewal.enabled=true", "plasticity.renewal.every=10", "plasticity.renewal.low=0.3",
     "plasticity.renewal.high=0.6", "brain.w_init_std=0.01"),               # renewal, often
], ids=lambda o: " ".join(o))
def test_mechanisms_on_the_kernel_in_lockstep_with_the_reference(overrides):
    lockstep("configs/cartpole.yaml", *overrides, steps=100)


@pytest.mark.parametrize("overrides", [(), ("brain.neuron=lif", "plasticity.rule=stdp", "brain.lateral_inhibition=0.2",
                                        "brain.homeostasis.enabled=true")], ids=["escape", "lif"])
def test_lesioned_agents_on_the_kernel_in_lockstep_with_the_reference(overrides):
    """Silenced sensors, removed synapses and silenced motor neurons (agents/lesion.py) on both backends."""
    from spikegym.agents.lesion import lesion

    def prepare(spec, state):
        for i, kind in enumerate(("sensors", "synapses", "motor")):
            state = lesion(spec, state, kind, 0.4, seed=i)
        return state
    lockstep("configs/cartpole.yaml", *overrides, steps=100, prepare=prepare)


def test_without_numba_auto_takes_the_reference_and_kernel_says_why(monkeypatch):
    from spikegym.agents import kernel
    monkeypatch.setattr(kernel, "numba", None)
    cfg, envs, make = _agents("configs/cartpole.yaml", 2)
    envs.close()
    with pytest.raises(ValueError, match="cannot run this agent: numba is not installed"):
        make("kernel")
    with pytest.warns(UserWarning, match="takes the torch reference step .numba is not installed"):
        assert make("auto").backend.name == "reference"


def test_serial_and_parallel_kernels_give_the_same_bits():
    results = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            cfg, envs, make = _agents("configs/cartpole.yaml", 4)
            agent = make("kernel")
            obs, _ = envs.reset(seed=reset_seeds(0, 4))
            reward, term, trunc = np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)
            for _ in range(60):
                action, _ = agent.step(obs, reward, term, trunc)
                obs, reward, term, trunc, _ = envs.step(action)
            envs.close()
            results.append(agent.state_dict())
        finally:
            torch.set_num_threads(before)
    for name, t in results[0].items():
        assert torch.equal(t, results[1][name]), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("config", ["configs/cartpole.yaml", "configs/mujoco/halfcheetah.yaml"])
def test_the_reference_on_cuda_steps_as_on_the_cpu(config):
    """The same agents on CUDA and on the CPU, from the same state, in lockstep (the noise is device-free)."""
    cfg, envs, _ = _agents(config, 4)
    low, high = obs_bounds(envs.single_observation_space)
    cpu, gpu = (Agent(cfg, low, high, envs.single_action_space, num_agents=4, seed=3, device=d, engine="reference")
                for d in ("cpu", "cuda"))
    obs, _ = envs.reset(seed=reset_seeds(0, 4))
    reward, term, trunc = np.zeros(4), np.zeros(4, bool), np.zeros(4, bool)
    flips = 0
    for step in range(60):
        gpu.load_state_dict({k: v.clone() for k, v in cpu.state_dict().items()})
        a_cpu, i_cpu = cpu.step(obs, reward, term, trunc)
        a_gpu, i_gpu = gpu.step(obs, reward, term, trunc)
        if torch.equal(i_cpu.motor, i_gpu.motor.cpu()) and torch.equal(i_cpu.sensors, i_gpu.sensors.cpu()):
            np.testing.assert_array_equal(a_cpu, a_gpu)
            theirs = gpu.state_dict()
            for name, t in cpu.state_dict().items():
                _close(t, theirs[name].cpu(), name, step)
        else:
            flips += 1
        obs, reward, term, trunc, _ = envs.step(a_cpu)
    envs.close()
    assert flips <= 3
