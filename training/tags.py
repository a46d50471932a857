"""Every TensorBoard tag spikegym writes, in one place. The x-axis is always environment steps
(per agent).

Names users compare across libraries follow Stable-Baselines3 (``rollout/ep_rew_mean``,
``rollout/ep_len_mean``, ``time/fps``, ``eval/mean_reward``: means, as there) and CleanRL
(``charts/episodic_return`` for raw per-episode points). The population's curve is its median
and quartiles (``population/``), each agent's own under ``agents/``. Our own groups: ``brain/``,
``plasticity/``, ``dopamine/``, ``novelty/``, ``task/``, ``continual/``, ``energy/``. Only tags that the code
writes are defined here (``tests/test_tags.py`` checks it). Templates with a
``{placeholder}`` are filled with :func:`tag`::

    >>> tag(BRAIN_RATE, pop="motor")
    'brain/rate/motor'
    >>> tag(EP_REW_MEAN)
    'rollout/ep_rew_mean'
"""

from __future__ import annotations

import string

# -- prefixes -----------------------------------------------------------------------------------
ROLLOUT = "rollout/"
POPULATION = "population/"
AGENTS = "agents/"
TIME = "time/"
EVAL = "eval/"
CHARTS = "charts/"
BRAIN = "brain/"
PLASTICITY = "plasticity/"
DOPAMINE = "dopamine/"
NOVELTY = "novelty/"
TASK = "task/"
CONTINUAL = "continual/"
ENERGY = "energy/"
PREFIXES = (ROLLOUT, POPULATION, AGENTS, TIME, EVAL, CHARTS, BRAIN, PLASTICITY, DOPAMINE, NOVELTY, TASK, CONTINUAL,
            ENERGY)

# -- the population's return: "recent" = each agent's mean over its last 100 episodes -----------
POP_MEDIAN = "population/median"  # median over agents of their recent return: the main curve
POP_P25 = "population/p25"  # lower quartile over agents
POP_P75 = "population/p75"  # upper quartile over agents
POP_MIN = "population/min"
POP_MAX = "population/max"
POP_SOLVED_FRACTION = "population/solved_fraction"  # agents that have reached the env's solved threshold
AGENT_RETURN = "agents/return_{agent}"  # one point per finished episode of that agent (the first 32 agents)

# -- what users compare with SB3 / CleanRL ------------------------------------------------------
EP_REW_MEAN = "rollout/ep_rew_mean"  # mean over agents of their recent return (SB3: mean of recent episodes)
EP_LEN_MEAN = "rollout/ep_len_mean"  # mean over agents of their recent episode length
EPISODES = "rollout/episodes"  # episodes finished so far, all agents
FPS = "time/fps"  # agent-steps per second (env steps summed over agents)
TIME_ELAPSED = "time/time_elapsed"  # seconds since this (part of the) run started
TIME_TOTAL_TIMESTEPS = "time/total_timesteps"  # env steps summed over agents
EVAL_MEAN_REWARD = "eval/mean_reward"  # learning off, fresh envs: mean over agents of each agent's mean
EVAL_MEAN_EP_LENGTH = "eval/mean_ep_length"
EVAL_MEDIAN_REWARD = "eval/median_reward"  # median over agents of each agent's evaluation mean
EVAL_VIDEO = "eval/video"  # animated image: an evaluation episode of agent 0 (run.video_every)
EPISODIC_RETURN = "charts/episodic_return"  # CleanRL's raw points: every agent's episodes, mixed

# -- the brain ----------------------------------------------------------------------------------
BRAIN_RATE = "brain/rate/{pop}"  # mean firing rate of a population, Hz
BRAIN_SPIKES_PER_DECISION = "brain/spikes_per_decision"  # spikes of all non-input neurons per decision, per agent
BRAIN_RASTER = "brain/raster"  # image: agent 0's sensor and motor spikes over 25 decisions, in an env of its own

# -- energy (training/energy.py): per decision (one env step), mean over agents and the log interval ----------
ENERGY_SPIKES = "energy/spikes_per_decision/{pop}"  # spikes of a population (sensors, motor, critic)
ENERGY_EVENTS = "energy/synaptic_events_per_decision/{pop}"  # its spikes x their existing outgoing synapses
ENERGY_SPIKES_TOTAL = "energy/spikes_per_decision"  # all populations, sensors included
ENERGY_EVENTS_TOTAL = "energy/synaptic_events_per_decision"

# -- plasticity ---------------------------------------------------------------------------------
PLASTICITY_W_MEAN = "plasticity/w_mean/{proj}"  # weights, mean over agents and synapses
PLASTICITY_W_ABS = "plasticity/w_abs_mean/{proj}"
PLASTICITY_W_STD = "plasticity/w_std/{proj}"  # over agents and synapses
PLASTICITY_W_HIST = "plasticity/w_hist/{proj}"  # histogram of agent 0's weights
PLASTICITY_W_IMAGE = "plasticity/weights/{proj}"  # image: agent 0's weight matrix (pre on y, post on x)
PLASTICITY_ELIG = "plasticity/eligibility_abs_mean/{proj}"
PLASTICITY_ACH_GAIN = "plasticity/ach_gain"  # acetylcholine gain on learning rates

# -- dopamine -----------------------------------------------------------------------------------
DOPAMINE_MEAN = "dopamine/mean"  # mean TD error (should hover near 0 once the critic learns)
DOPAMINE_STD = "dopamine/std"
DOPAMINE_ABS = "dopamine/abs_mean"
DOPAMINE_VALUE = "dopamine/value"  # the critic's V(s), mean over agents
DOPAMINE_SEROTONIN = "dopamine/serotonin"  # serotonin level in (0, 1) of the running mean reward, mean over agents
DOPAMINE_GAMMA = "dopamine/gamma"  # the TD discount serotonin sets, mean over agents

# -- novelty and sensory adaptation -------------------------------------------------------------
NOVELTY_BONUS = "novelty/bonus"  # beta / sqrt(n), before the decay_steps weight
NOVELTY_INTRINSIC = "novelty/intrinsic_reward"  # weight * bonus: what curiosity adds to dopamine's reward
NOVELTY_EXTRINSIC = "novelty/extrinsic_reward"  # the env's (internal, transformed) reward, for comparison
NOVELTY_SIGNAL = "novelty/signal"  # raw novelty (before beta and decay)
NOVELTY_WEIGHT = "novelty/weight"  # bonus weight after decay_steps annealing
NOVELTY_ADAPTATION = "novelty/sensory_adaptation"  # mean adaptation level of the input neurons
NOVELTY_NEW_FRACTION = "novelty/new_fraction"  # steps whose pattern was never seen before
NOVELTY_OCCUPIED_BUCKETS = "novelty/occupied_buckets"  # hash buckets visited, mean over agents
NOVELTY_SURPRISE = "novelty/td_surprise"  # recent |TD error| / its long-run mean - 1, clipped: raises the ACh gain

# -- task schedules (a world that changes mid-life) ---------------------------------------------
TASK_INDEX = "task/index"  # which task of the schedule is live (0, 1, ... by first appearance of its name)
TASK_PHASE = "task/phase"  # which phase occurrence of the schedule is live (0, 1, 2, ... counting repeats)
TASK_SWITCH = "task/switch"  # 1 at the step a change happens
TASK_SWITCHED_FRACTION = "task/switched_fraction"  # agents already in the live phase (each switches at its own reset)
TASK_AGENT_PHASE = "task/agent_phase"  # histogram: the phase each agent is in
TASK_PARAM = "task/param/{name}"  # a live physical parameter (gravity, length, friction, ...)
TASK_EP_REW_MEAN = "task/ep_rew_mean/{task}"  # recent return while that task is live

# -- continual-learning metrics -----------------------------------------------------------------
# Per phase (x = the phase's end; see spikegym.training.continual.ContinualTracker), median over agents:
CONTINUAL_PHASE_RETURN = "continual/phase_return/{task}"  # mean return of the phase's episodes
CONTINUAL_FINAL_RETURN = "continual/final_return/{task}"  # mean of its last `window` episodes
CONTINUAL_RECOVERY_STEPS = "continual/recovery_steps/{task}"  # steps to 90 % of the level the task had before
CONTINUAL_RECOVERED_FRACTION = "continual/recovered_fraction/{task}"  # agents that got there in the phase
CONTINUAL_RECOVERY_RATIO = "continual/recovery_ratio/{task}"  # revisit: recovery steps / steps of the first visit
CONTINUAL_FORGETTING = "continual/forgetting/{task}"  # revisit: (end of last visit - start of this) / task level
CONTINUAL_AUC = "continual/auc/{task}"  # normalised area under the phase's learning curve
CONTINUAL_FORWARD_TRANSFER = "continual/forward_transfer/{task}"  # first visit's AUC vs from scratch
CONTINUAL_SURPRISE = "continual/surprise/{task}"  # novelty just after the switch / just before it
# Running summaries and plasticity health (x = logging steps):
CONTINUAL_PHASE_RETURN_SLOPE = "continual/phase_return_slope"  # final return per visit, trend; >= 0: no loss
CONTINUAL_MEAN_FORGETTING = "continual/mean_forgetting"
CONTINUAL_MEDIAN_RECOVERY_RATIO = "continual/median_recovery_ratio"
CONTINUAL_DORMANT_FRACTION = "continual/dormant_fraction"  # non-input neurons with rate < eps, all agents
CONTINUAL_WEIGHT_ABS_MEAN = "continual/weight_abs_mean"  # |w| over every projection and agent
CONTINUAL_WEIGHT_ABS_MAX = "continual/weight_abs_max"
CONTINUAL_RATE_SPREAD = "continual/rate_spread"  # std of rates across neurons, mean over agents
CONTINUAL_NOVELTY = "continual/novelty"  # novelty signal, mean over the last surprise_window steps
CONTINUAL_MODULE_SHARE = "continual/module_share/{module}"  # agents whose active context module is this one


def tag(template: str, **fields: str) -> str:
    """Fill a tag template; raises ``KeyError`` for a missing placeholder, ``ValueError`` for an
    extra one, so a typo never makes a silently different tag."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    extra = set(fields) - names
    if extra:
        raise ValueError(f"tag {template!r} has no placeholder(s) {sorted(extra)}")
    return template.format(**fields)


def all_tags() -> dict[str, str]:
    """``{constant name: tag or template}`` of every tag in this module."""
    return {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str) and value not in PREFIXES
    }
