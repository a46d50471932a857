"""Every TensorBoard tag spikegym writes, in one place. The x-axis is always environment steps
(per agent).

Names users compare across libraries follow Stable-Baselines3 (``rollout/ep_rew_mean``,
``rollout/ep_len_mean``, ``time/fps``, ``eval/mean_reward``) and CleanRL
(``charts/episodic_return`` for raw per-episode points). Our own groups: ``brain/``,
``plasticity/``, ``dopamine/``, ``novelty/``, ``task/``, ``continual/``. Templates with a
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
TIME = "time/"
EVAL = "eval/"
CHARTS = "charts/"
BRAIN = "brain/"
PLASTICITY = "plasticity/"
DOPAMINE = "dopamine/"
NOVELTY = "novelty/"
TASK = "task/"
CONTINUAL = "continual/"
PREFIXES = (ROLLOUT, TIME, EVAL, CHARTS, BRAIN, PLASTICITY, DOPAMINE, NOVELTY, TASK, CONTINUAL)

# -- what users compare with SB3 / CleanRL ------------------------------------------------------
EP_REW_MEAN = "rollout/ep_rew_mean"  # recent episode return of the population (see stats.py for the statistic)
EP_LEN_MEAN = "rollout/ep_len_mean"
EP_REW_MEDIAN = "rollout/ep_rew_median"
EP_REW_P25 = "rollout/ep_rew_p25"  # population spread: lower quartile
EP_REW_P75 = "rollout/ep_rew_p75"  # population spread: upper quartile
EP_REW_MIN = "rollout/ep_rew_min"
EP_REW_MAX = "rollout/ep_rew_max"
SOLVED_FRACTION = "rollout/solved_fraction"  # agents whose recent mean reaches the env's threshold
EPISODES = "rollout/episodes"  # episodes finished so far, all agents
FPS = "time/fps"  # env steps per second, summed over agents
TIME_ELAPSED = "time/time_elapsed"  # seconds since the start of the run
TIME_TOTAL_TIMESTEPS = "time/total_timesteps"  # env steps summed over agents
EVAL_MEAN_REWARD = "eval/mean_reward"
EVAL_MEAN_EP_LENGTH = "eval/mean_ep_length"
EVAL_VIDEO = "eval/video"  # animated image: an evaluation episode of agent 0 (run.video_every)
EPISODIC_RETURN = "charts/episodic_return"  # one point per finished episode (CleanRL)
EPISODIC_LENGTH = "charts/episodic_length"

# -- the brain ----------------------------------------------------------------------------------
BRAIN_RATE = "brain/rate/{pop}"  # mean firing rate of a population, Hz
BRAIN_RASTER = "brain/raster"  # image: sensor and motor spikes of agent 0 over the substeps
BRAIN_SPIKES_PER_DECISION = "brain/spikes_per_decision"  # all neurons, per env step per agent
BRAIN_SYNAPTIC_EVENTS_PER_DECISION = "brain/synaptic_events_per_decision"  # spikes x out-synapses
BRAIN_DORMANT_FRACTION = "brain/dormant_fraction/{pop}"  # neurons that did not fire in the window
BRAIN_THRESHOLD_MEAN = "brain/threshold_mean/{pop}"  # adaptive thresholds (alif / homeostasis)
BRAIN_DENSITY = "brain/density/{proj}"  # existing synapses / possible (structural plasticity)
BRAIN_STP_EFFICACY = "brain/stp_efficacy/{proj}"  # mean u*x of short-term plasticity
BRAIN_ACTION_ENTROPY = "brain/action_entropy"  # of the population's recent actions

# -- plasticity ---------------------------------------------------------------------------------
PLASTICITY_W_MEAN = "plasticity/w_mean/{proj}"  # weights, mean over agents and synapses
PLASTICITY_W_ABS = "plasticity/w_abs_mean/{proj}"
PLASTICITY_W_STD = "plasticity/w_std/{proj}"
PLASTICITY_W_HIST = "plasticity/w_hist/{proj}"  # histogram of agent 0's weights
PLASTICITY_W_IMAGE = "plasticity/weights/{proj}"  # image: agent 0's weight matrix (pre on y, post on x)
PLASTICITY_ELIG = "plasticity/eligibility_abs_mean/{proj}"
PLASTICITY_UPDATE_NORM = "plasticity/update_norm/{proj}"  # |dW| per env step, mean over agents
PLASTICITY_ACH_GAIN = "plasticity/ach_gain"  # acetylcholine gain on learning rates
PLASTICITY_PRUNED = "plasticity/pruned"  # synapses pruned at the last structural update
PLASTICITY_GROWN = "plasticity/grown"
PLASTICITY_HOMEOSTASIS_ERROR = "plasticity/homeostasis_error/{pop}"  # rate - target

# -- dopamine -----------------------------------------------------------------------------------
DOPAMINE_MEAN = "dopamine/mean"  # mean TD error (should hover near 0 once the critic learns)
DOPAMINE_STD = "dopamine/std"
DOPAMINE_ABS = "dopamine/abs_mean"
DOPAMINE_VALUE = "dopamine/value"  # the critic's V(s), mean over agents
DOPAMINE_REWARD_MEAN = "dopamine/reward_mean"  # internal (transformed) reward
DOPAMINE_CLIPPED_FRACTION = "dopamine/clipped_fraction"

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
CONTINUAL_EVAL_RETURN = "continual/eval_return/{task}"  # return on a task, evaluated at any time
CONTINUAL_RETENTION = "continual/retention/{task}"  # current / best earlier eval return
CONTINUAL_AVERAGE_RETURN = "continual/average_return"  # mean eval return over all tasks seen


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
