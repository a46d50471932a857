"""A Gymnasium vector env whose worlds live in torch on the agents' device (classic control).

:class:`TorchVectorEnv` steps B copies of a :data:`~spikegym.envs.torch_classic.WORLDS` env with one
batch of tensor operations: observations, rewards and flags stay on ``device`` (``to_numpy=True``
returns numpy), so thousands of agents on a GPU step without a host round trip. It behaves as
``SyncVectorEnv`` of ``gymnasium.make(env_id)`` wrapped in vector ``RecordEpisodeStatistics``:

- time limits: ``truncated`` when an episode reaches the registered limit (500, 500, 200, 200, 999);
- autoreset ``NEXT_STEP``: the step after an episode ends is a reset step -- action ignored, reward 0,
  ``terminated = truncated = False``, the observation is the new episode's first;
- ``info["episode"] = {"r", "l", "t"}`` and ``info["_episode"]`` (numpy, on the host) on steps where
  episodes end; ``episode_stats=False`` drops them and with them the one device sync per step;
- seeding: ``reset(seed=s)`` gives env ``i`` the generator ``gymnasium.utils.seeding.np_random(s + i)``
  (a list of seeds: one each), so every reset state -- the first and every autoreset after it -- is the
  one Gymnasium's env draws from that seed.

How the autoreset states stay exact without a host round trip: each env's numpy generator draws its
reset states ahead, in blocks of ``reset_block`` (two blocks per env sit on the device); a reset step
reads the next one with a gather. Every ``reset_block`` steps the host reads how many each env used
(one small copy) and draws a fresh block for the envs that finished one. An env resets at most every
other step, so it can never run past its two blocks in between. Memory: ``B * 2 * reset_block * D``
float64 (``D`` = 4 for CartPole: 16 MiB at B = 4096 and the default block of 64).

    >>> envs = TorchVectorEnv("CartPole-v1", 3)
    >>> obs, _ = envs.reset(seed=0)
    >>> obs.shape, obs.dtype
    (torch.Size([3, 4]), torch.float32)
    >>> import gymnasium as gym
    >>> bool((obs[1].numpy() == gym.make("CartPole-v1").reset(seed=1)[0]).all())
    True
"""

from __future__ import annotations

import difflib
import time
from collections import deque
from typing import Any, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from spikegym.envs.torch_classic import WORLDS

__all__ = ["TorchVectorEnv", "TORCH_ENV_IDS"]

#: Env ids with a torch-native vector env.
TORCH_ENV_IDS = tuple(WORLDS)

Seeds = Union[int, Sequence[Optional[int]], None]


class TorchVectorEnv(VectorEnv):
    """``num_envs`` classic-control worlds stepped as one batch of torch tensors.

    Args:
        env_id: one of :data:`TORCH_ENV_IDS`.
        device, dtype: where the state lives and its float type. float64 (the default) rounds as
            Gymnasium's numpy code does; float32 is faster on GPUs and drifts from it chaotically.
        max_episode_steps: time limit (None: the registered one).
        to_numpy: return numpy observations, rewards and flags instead of tensors on ``device``.
        episode_stats: add ``info["episode"]``/``info["_episode"]`` (one device-to-host sync per step).
        reset_block: reset states drawn ahead per env and block (see the module docstring).
        stats_buffer: length of ``return_queue``/``length_queue``/``time_queue``, as Gymnasium's wrapper.
        sparse_resets: write reset states into the rows that restart only (None: on CPU, where finding the
            rows costs no sync); else a masked ``torch.where`` over every env. The results are the same.
        **kwargs: the env constructor's keywords (CartPole ``sutton_barto_reward``, Pendulum ``g``,
            MountainCar ``goal_velocity``).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, env_id: str, num_envs: int, *, device: Union[str, torch.device] = "cpu",
                 dtype: torch.dtype = torch.float64, max_episode_steps: Optional[int] = None, to_numpy: bool = False,
                 episode_stats: bool = True, reset_block: int = 64, stats_buffer: int = 100,
                 sparse_resets: Optional[bool] = None, **kwargs: Any):
        if env_id not in WORLDS:
            hint = difflib.get_close_matches(env_id, TORCH_ENV_IDS, n=1)
            raise ValueError(f"no torch-native env for {env_id!r}"
                             + (f"; did you mean {hint[0]!r}?" if hint else f"; available: {', '.join(TORCH_ENV_IDS)}"))
        if num_envs < 1 or reset_block < 1:
            raise ValueError(f"num_envs and reset_block must be >= 1, got {num_envs} and {reset_block}")
        self.world = WORLDS[env_id]
        unknown = sorted(set(kwargs) - set(self.world.kwargs))
        if unknown:
            raise ValueError(f"{env_id} (torch) takes no keyword {unknown[0]!r}; "
                             f"valid: {sorted(self.world.kwargs) or 'none'}")
        self.spec = gym.spec(env_id)
        single = gym.make(env_id).unwrapped  # classic-control constructors are cheap; spaces stay Gymnasium's own
        self.single_observation_space, self.single_action_space = single.observation_space, single.action_space
        single.close()
        self.num_envs = int(num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.discrete = isinstance(self.single_action_space, gym.spaces.Discrete)
        self.max_episode_steps = int(max_episode_steps or self.spec.max_episode_steps)
        self.sparse_resets = torch.device(device).type == "cpu" if sparse_resets is None else sparse_resets
        self.device, self.dtype = torch.device(device), dtype
        self.to_numpy, self.episode_stats = to_numpy, episode_stats
        self.params = self.world.params(**{self.world.kwargs[k]: v for k, v in kwargs.items()})

        B, K = self.num_envs, int(reset_block)
        self._block = K
        width = self.world.draw(np.random.default_rng(0), 1).shape[1]
        self._draws = torch.zeros(B, 2 * K, width, dtype=torch.float64, device=self.device)
        self._used = torch.zeros(B, dtype=torch.int64, device=self.device)  # reset states read since seeding
        self._rows = torch.arange(B, device=self.device)
        self._rngs: list[Optional[np.random.Generator]] = [None] * B
        self._before: list[list[Any]] = [[None, None] for _ in range(B)]  # generator state before each loaded block
        self._loaded = np.zeros(B, dtype=np.int64)  # index of the first of the two blocks on the device
        self._since_refill = 0

        self.state = None
        self.steps = torch.zeros(B, dtype=torch.int64, device=self.device)
        self.autoreset = torch.zeros(B, dtype=torch.bool, device=self.device)
        # episode statistics, as gymnasium.wrappers.vector.RecordEpisodeStatistics keeps them
        self.episode_returns = torch.zeros(B, dtype=torch.float64, device=self.device)
        self.episode_lengths = torch.zeros(B, dtype=torch.int64, device=self.device)
        self.episode_start_times = np.zeros(B)
        self._restart = np.zeros(B, dtype=bool)  # host copy of the last step's done mask (start times)
        self.episode_count = 0
        self.return_queue: deque = deque(maxlen=stats_buffer)
        self.length_queue: deque = deque(maxlen=stats_buffer)
        self.time_queue: deque = deque(maxlen=stats_buffer)

    # ------------------------------------------------------------------------------------ the API

    def reset(self, *, seed: Seeds = None, options: Optional[dict] = None):
        """Reset every env; ``seed`` as ``SyncVectorEnv``: None, an int (env ``i`` gets ``seed + i``) or a list.

        Returns:
            ``(obs [B, obs_dim], {})``.
        """
        if options:
            raise ValueError("TorchVectorEnv.reset takes no options (custom reset bounds are not supported)")
        B = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(B)]
        else:
            seeds = list(seed)
        if len(seeds) != B:
            raise ValueError(f"reset got {len(seeds)} seeds for {B} envs")
        fresh = [i for i, s in enumerate(seeds) if s is not None or self._rngs[i] is None]
        for i in fresh:
            self._rngs[i] = np_random(None if seeds[i] is None else int(seeds[i]))[0]
        if fresh:
            idx = torch.as_tensor(fresh, device=self.device)
            self._draws[idx] = torch.as_tensor(np.stack([self._first_blocks(i, 0) for i in fresh]), device=self.device)
            self._used[idx] = 0
        self.state = self.world.from_draws(self._take(torch.ones(B, dtype=torch.bool, device=self.device)), self.dtype)
        self._refill()
        self.steps.zero_()
        self.autoreset.zero_()
        self.episode_returns.zero_()
        self.episode_lengths.zero_()
        self.episode_start_times[:] = time.perf_counter()
        self._restart[:] = False
        return self._out(self.world.observe(self.state)), {}

    def step(self, actions):
        """One step of every env (a reset step for those whose episode ended on the last one).

        Args:
            actions: ``[B]`` integers (discrete) or ``[B, 1]`` floats, numpy or torch. Discrete numpy actions
                are checked against ``action_space``; tensors are trusted (a check would sync the device).
        Returns:
            ``(obs [B, obs_dim] float32, reward [B], terminated [B] bool, truncated [B] bool, info)``.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        a = self._actions(actions)
        new, reward, terminated = self.world.step(self.state, a, self.params)
        steps = self.steps + 1
        truncated = steps >= self.max_episode_steps
        reward = reward.to(self.dtype)
        # NEXT_STEP autoreset: envs whose episode ended last step start a new one instead (masked reset)
        ar = self.autoreset
        restarts = self._may_restart(ar)
        if restarts and self.sparse_resets:  # only the rows that restart (nonzero would sync a GPU)
            rows = torch.nonzero(ar).squeeze(1)
            first = self.world.from_draws(self._take(ar, rows), self.dtype)
            new = type(new)(*(n.index_put((rows,), f) for f, n in zip(first, new)))
        elif restarts:
            first = self.world.from_draws(self._take(ar), self.dtype)
            new = type(new)(*(torch.where(ar, f, n) for f, n in zip(first, new)))
        if restarts:
            steps = torch.where(ar, 0, steps)
            reward = torch.where(ar, 0.0, reward)
            terminated, truncated = terminated & ~ar, truncated & ~ar
        self.state, self.steps = new, steps
        self.autoreset = terminated | truncated
        info = self._episode_info(ar if restarts else None, reward, self.autoreset) if self.episode_stats else {}
        self._since_refill += 1
        if self._since_refill >= self._block:
            self._refill()
        obs = self.world.observe(self.state)
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info

    def set_attr(self, name: str, values: Any) -> None:
        """Set a physical constant (a field of ``params``, e.g. CartPole ``gravity``, ``length``, ``masspole``,
        ``force_mag``): one value for all envs, or a list/array of ``num_envs`` values (one each)."""
        fields = self.params._fields
        if name not in fields:
            hint = difflib.get_close_matches(name, fields, n=1)
            raise AttributeError(f"{self.spec.id} (torch) has no settable constant {name!r}"
                                 + (f"; did you mean {hint[0]!r}?" if hint else f"; valid: {', '.join(fields)}"))
        if isinstance(values, (list, tuple, np.ndarray, Tensor)):
            vals = np.asarray(torch.as_tensor(values).cpu(), dtype=np.float64).reshape(-1)
            if vals.size != self.num_envs:
                raise ValueError(f"set_attr({name!r}) got {vals.size} values for {self.num_envs} envs")
            value = float(vals[0]) if (vals == vals[0]).all() else torch.as_tensor(vals, dtype=self.dtype,
                                                                                   device=self.device)
        else:
            value = float(values)
        self.params = self.params._replace(**{name: value})

    def get_attr(self, name: str) -> tuple:
        """One value per env of a field of ``params`` (see :meth:`set_attr`)."""
        if name not in self.params._fields:
            raise AttributeError(f"{self.spec.id} (torch) has no constant {name!r}; "
                                 f"valid: {', '.join(self.params._fields)}")
        value = getattr(self.params, name)
        if isinstance(value, Tensor):
            return tuple(value.cpu().tolist())
        return (value,) * self.num_envs

    def close_extras(self, **kwargs: Any) -> None:
        self.state = None

    def __repr__(self) -> str:
        return f"TorchVectorEnv({self.spec.id}, num_envs={self.num_envs}, device={self.device})"

    # ------------------------------------------------------------------------- checkpoint state

    def get_json_state(self) -> dict:
        """The dynamic state as JSON-friendly data (:mod:`spikegym.envs.state` saves it in checkpoints).

        The reset states drawn ahead are not saved: each env's generator state before its first loaded
        block is, and :meth:`set_json_state` draws the same blocks again.
        """
        tolist = lambda t: t.cpu().tolist()  # noqa: E731
        params = {k: (tolist(v) if isinstance(v, Tensor) else v) for k, v in self.params._asdict().items()}
        return {"state": None if self.state is None else [tolist(t) for t in self.state],
                "steps": tolist(self.steps), "autoreset": tolist(self.autoreset), "used": tolist(self._used),
                "loaded": self._loaded.tolist(), "rng_before": [b[0] for b in self._before],
                "seeded": [r is not None for r in self._rngs], "since_refill": self._since_refill,
                "params": params, "episode_returns": tolist(self.episode_returns),
                "episode_lengths": tolist(self.episode_lengths), "restart": self._restart.tolist(),
                "episode_count": self.episode_count}

    def set_json_state(self, saved: dict) -> None:
        """Restore :meth:`get_json_state` into an env made with the same id, count and ``reset_block``."""
        if len(saved["steps"]) != self.num_envs:
            raise ValueError(f"saved state has {len(saved['steps'])} envs, this env {self.num_envs}")
        dev = self.device
        self.state = None if saved["state"] is None else self.world.state(
            *(torch.tensor(v, dtype=self.dtype, device=dev) for v in saved["state"]))
        self.steps = torch.tensor(saved["steps"], dtype=torch.int64, device=dev)
        self.autoreset = torch.tensor(saved["autoreset"], dtype=torch.bool, device=dev)
        self._used = torch.tensor(saved["used"], dtype=torch.int64, device=dev)
        for i, seeded in enumerate(saved["seeded"]):
            self._rngs[i] = None
            if seeded:
                self._rngs[i] = np.random.Generator(np.random.PCG64())
                self._rngs[i].bit_generator.state = saved["rng_before"][i]
                self._draws[i] = torch.as_tensor(self._first_blocks(i, saved["loaded"][i]), device=dev)
        self._since_refill = saved["since_refill"]
        self.params = self.world.params(**{k: (torch.tensor(v, dtype=self.dtype, device=dev) if isinstance(v, list)
                                               else v) for k, v in saved["params"].items()})
        self.episode_returns = torch.tensor(saved["episode_returns"], dtype=torch.float64, device=dev)
        self.episode_lengths = torch.tensor(saved["episode_lengths"], dtype=torch.int64, device=dev)
        self._restart = np.asarray(saved["restart"], dtype=bool)
        self.episode_count = saved["episode_count"]
        self.episode_start_times[:] = time.perf_counter()

    # ---------------------------------------------------------------------------------- helpers

    def _actions(self, actions) -> Tensor:
        if self.discrete and isinstance(actions, np.ndarray) and not self.action_space.contains(
                actions.astype(self.action_space.dtype, copy=False)):  # Box actions are clipped, as Gymnasium does
            raise ValueError(f"actions {actions!r} are not in {self.action_space}")
        a = torch.as_tensor(actions, device=self.device)
        per_env = 1 if self.discrete else int(np.prod(self.single_action_space.shape))
        if a.numel() != self.num_envs * per_env:
            raise ValueError(f"expected {self.num_envs} actions of size {per_env}, got shape {tuple(a.shape)}")
        return a.reshape(self.num_envs) if self.discrete else a.reshape(self.num_envs, per_env)

    def _out(self, t: Tensor):
        return t.cpu().numpy() if self.to_numpy else t

    def _first_blocks(self, i: int, n: int) -> np.ndarray:
        """Blocks ``n`` and ``n + 1`` of env ``i`` from its generator, laid out as their ring slots."""
        K = self._block
        self._before[i][0] = self._rngs[i].bit_generator.state
        first = self.world.draw(self._rngs[i], K)
        self._before[i][1] = self._rngs[i].bit_generator.state
        second = self.world.draw(self._rngs[i], K)
        self._loaded[i] = n
        return np.concatenate((first, second) if n % 2 == 0 else (second, first))

    def _may_restart(self, ar: Tensor) -> bool:
        """False when no env autoresets this step (the masked reset is then skipped): known on the host from
        the last step's episode statistics, or asked of a CPU tensor; on another device without statistics,
        assumed True (asking would sync)."""
        if self.episode_stats:
            return bool(self._restart.any())
        return self.device.type != "cpu" or bool(ar.numpy().any())

    def _take(self, mask: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """The next reset state ``[B, D]`` of every env (meaningful where ``mask``), or ``[len(rows), D]`` of
        ``rows`` (the envs where ``mask``); advances the envs where ``mask``."""
        ring = 2 * self._block
        flat = self._draws.view(-1, self._draws.shape[-1])
        if rows is None:
            d = flat.index_select(0, self._rows * ring + self._used % ring)
        else:
            d = flat.index_select(0, rows * ring + self._used.index_select(0, rows) % ring)
        self._used = self._used + mask
        return d

    def _refill(self) -> None:
        """Draw a fresh block for every env that has started reading its second loaded block."""
        self._since_refill = 0
        K = self._block
        current = self._used.cpu().numpy() // K
        rows, slots, blocks = [], [], []
        for i in np.flatnonzero(current > self._loaded):
            for n in range(int(self._loaded[i]) + 2, int(current[i]) + 2):  # once, but for a reset(seed=None) storm
                self._before[i] = [self._before[i][1], self._rngs[i].bit_generator.state]
                rows.append(i)
                slots.append((n % 2) * K)
                blocks.append(self.world.draw(self._rngs[i], K))
            self._loaded[i] = current[i]
        if rows:
            r = torch.as_tensor(np.repeat(rows, K), device=self.device)
            s = torch.as_tensor((np.asarray(slots)[:, None] + np.arange(K)).reshape(-1), device=self.device)
            self._draws[r, s] = torch.as_tensor(np.concatenate(blocks), device=self.device)

    def _episode_info(self, restarted: Optional[Tensor], reward: Tensor, dones: Tensor) -> dict:
        """Gymnasium's vector ``RecordEpisodeStatistics`` (NEXT_STEP) on the device; numpy out when episodes end.

        ``restarted``: the envs on a reset step (None: none)."""
        self.episode_returns = self.episode_returns + reward
        self.episode_lengths = self.episode_lengths + 1
        if restarted is not None:
            self.episode_returns = torch.where(restarted, 0.0, self.episode_returns)
            self.episode_lengths = torch.where(restarted, 0, self.episode_lengths)
        now = time.perf_counter()
        self.episode_start_times[self._restart] = now
        if not bool(dones.any()):  # the one sync per step
            self._restart[:] = False
            return {}
        done = dones.cpu().numpy()
        ret, length = self.episode_returns.cpu().numpy(), self.episode_lengths.cpu().numpy()
        elapsed = np.round(now - self.episode_start_times, 6)
        self._restart = done
        self.episode_count += int(done.sum())
        self.return_queue.extend(ret[done])
        self.length_queue.extend(length[done])
        self.time_queue.extend(elapsed[done])
        return {"episode": {"r": np.where(done, ret, 0.0), "l": np.where(done, length, 0),
                            "t": np.where(done, elapsed, 0.0)}, "_episode": done}
