"""The Gymnasium / MO-Gymnasium adapter: any environment with discrete or box actions, made N
times through Gymnasium's vector API, as a batched world of the core protocol.

    env:
      name: gymnasium
      id: four-room-v0            # any id gymnasium.make accepts, "my_module:MyEnv-v0" included
      kwargs: {}                  # passed to gymnasium.make
      wrappers: []                # "package.module:Wrapper", each applied as Wrapper(env)
      heads: [blue, green, red]   # names of the reward components
      vectorization: sync         # or async (one subprocess per slot)

A vector reward follows MO-Gymnasium's convention (an `np.ndarray` step reward and a
`reward_space` Box of shape [K]); any other environment has one head named "reward".
Observations become one of the `ObservationSpec` kinds: a 3-axis Box is an image [C, H, W], any
other Box or MultiBinary a flat float vector, Discrete and MultiDiscrete index observations.
Actions are a Discrete space's indices, or a Box with finite bounds seen by learners as the box
[-1, 1] of the same shape and rescaled to the env's bounds on every step.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from torch import Tensor

from composable_rl.config import ConfigError, WorldConfig, doc
from composable_rl.evaluation import head_return_rows, multi_objective_row, normalized_return
from composable_rl.maths.mo_metrics import simplex_lattice
from composable_rl.registry import register_world
from composable_rl.world import Act, ActionSpec, ObservationSpec, Step

SECTION = "env"  # the config section these settings live in, for the keys errors name
# Packages whose environment ids exist only once they are imported (optional extras).
ID_PACKAGES = ("mo_gymnasium", "minigrid")
FLATTEN_WRAPPER = "gymnasium.wrappers:FlattenObservation"
IMAGE_WRAPPER = "minigrid.wrappers:ImgObsWrapper"

# A numpy batch of slot observations -> a new numpy batch of the spec's dtype and layout; and a
# numpy batch of the world's actions -> the vector env's actions.
Convert = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class GymnasiumConfig(WorldConfig):
    """Any Gymnasium or MO-Gymnasium environment (discrete or box actions), through the vector
    API."""

    name: str = doc("gymnasium", "Registered world: the Gymnasium adapter.")
    id: str = doc(
        "",
        "Environment id given to gymnasium.make (required), e.g. CartPole-v1, four-room-v0, "
        "MiniGrid-DoorKey-5x5-v0 or 'my_module:MyEnv-v0' (imports my_module first).",
    )
    kwargs: dict[str, Any] = doc(
        {}, "Keyword arguments of gymnasium.make, e.g. {max_episode_steps: 200}."
    )
    wrappers: list[str] = doc(
        [],
        "Wrappers 'package.module:Wrapper' applied in order as Wrapper(env), e.g. "
        "'minigrid.wrappers:ImgObsWrapper' or 'gymnasium.wrappers:FlattenObservation'.",
    )
    heads: list[str] = doc(
        [],
        "Names of the reward-vector components; empty = reward_0, reward_1, ... (or 'reward' "
        "for a scalar reward).",
    )
    vectorization: Literal["sync", "async"] = doc(
        "sync", "sync: step the copies in this process; async: one subprocess per copy."
    )
    oracle: str = doc(
        "",
        "Optional 'package.module:function' f(env) -> (optimal [K], random [K]): exact expected "
        "undiscounted returns per head of the optimal and the uniform-random policy from the "
        "start state; evaluation then reports normalised returns.",
    )

    mo_divisions: int = doc(
        0,
        "Multi-objective evaluation: expected utility over the simplex lattice of weights with "
        "this many divisions (all w >= 0 in steps of 1/divisions summing to 1), of the policy "
        "composed for each weight, by discounted vector returns; 0 = none.",
        ge=0,
    )
    mo_gamma: float = doc(
        0.99, "Discount of the multi-objective evaluation's vector returns.", ge=0, le=1
    )
    reference_point: list[float] = doc(
        [], "Reference point of the hypervolume (one value per head); empty = no hypervolume."
    )
    pareto_front: str = doc(
        "",
        "Optional 'package.module:function' f(env, gamma) -> array [P, K]: the true Pareto "
        "front of discounted vector returns, for the IGD of the evaluation's value vectors.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for settings that are wrong before any environment is made."""
        if not self.id:
            yield "id", "required: a Gymnasium environment id, e.g. CartPole-v1"
        for i, path in enumerate(self.wrappers):
            if not _is_import_path(path):
                yield f"wrappers[{i}]", f"expected 'package.module:Wrapper', got {path!r}"
        for key in ("oracle", "pareto_front"):
            path = getattr(self, key)
            if path and not _is_import_path(path):
                yield key, f"expected 'package.module:function', got {path!r}"
        if self.reference_point and self.heads and len(self.reference_point) != len(self.heads):
            yield "reference_point", f"need one value per head {self.heads}"
        for key in ("reference_point", "pareto_front"):
            if getattr(self, key) and not self.mo_divisions:
                yield key, "is used by the multi-objective evaluation: set mo_divisions > 0"
        if len(set(self.heads)) != len(self.heads):
            yield "heads", f"names must be distinct, got {self.heads}"


class _VectorRewardSyncEnv(SyncVectorEnv):
    """Gymnasium's SyncVectorEnv with a reward buffer of `width` columns per slot.

    Gymnasium's buffer holds one scalar per slot, and MO-Gymnasium's MOSyncVectorEnv always
    resets on the next step; this keeps Gymnasium's same-step autoreset for reward vectors.
    """

    def __init__(self, env_fns: list[Callable[[], gymnasium.Env]], width: int, **kwargs: Any):
        """Make the copies as SyncVectorEnv does, then widen the reward buffer to [N, width]."""
        super().__init__(env_fns, **kwargs)
        self._rewards = np.zeros((self.num_envs, width))


class GymnasiumWorld:
    """N copies of one Gymnasium environment stepped as a batched world of the core protocol.

    `step` hands the actions to the vector env, brings its results to the spec's dtypes and
    layouts in numpy (much cheaper than torch for small batches) and makes each a tensor once;
    finished slots restart in the same step (Gymnasium's same-step autoreset).
    """

    capturable = False  # the step goes through numpy: `device_graphs` cannot compile it

    def __init__(
        self,
        env: VectorEnv,
        observation_spec: ObservationSpec,
        convert: Convert,
        action_spec: ActionSpec,
        to_env: Convert,
        head_names: list[str],
        device: torch.device,
    ) -> None:
        """Wrap a same-step-autoreset vector env whose observation batches `convert` maps to
        `observation_spec`, whose actions `to_env` makes from those of `action_spec`, and whose
        reward has len(head_names) components."""
        self.env = env
        self.num_envs = env.num_envs
        self.device = device
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.head_names = head_names
        self._convert = convert
        self._to_env = to_env
        self._on_cpu = device.type == "cpu"

    def reset(self, seed: int = 0) -> Tensor:
        """Seed every slot (slot i gets seed + i) and start its first episode; returns obs.

        Any int >= 0 is a seed, as for Gymnasium, which hashes it; any other value raises a
        gymnasium.error.Error here, as Gymnasium does, not an obscure one from the vector env.
        """
        if not isinstance(seed, int) or seed < 0:
            raise gymnasium.error.Error(f"seed must be an int >= 0, got {seed!r}")
        obs, _ = self.env.reset(seed=seed)
        return self._tensor(self._convert(obs))

    def step(self, actions: Tensor) -> Step:
        """Step every slot; `info["final_obs"]` holds the last observation of finished slots."""
        raw, reward, terminated, truncated, info = self.env.step(
            self._to_env(actions.numpy(force=True))
        )
        obs = self._convert(raw)
        ended = info.get("_final_obs")  # present only on steps where some episode ended
        if ended is None:
            final_obs = obs = self._tensor(obs)
        else:  # the same observations but, where an episode ended, its last one
            final = obs.copy()
            final[ended] = self._convert(np.stack(info["final_obs"][ended].tolist()))
            final_obs = self._tensor(final)
            obs = self._tensor(obs)
        return (
            obs,
            self._tensor(reward.astype(np.float32).reshape(self.num_envs, -1)),
            self._tensor(terminated),
            self._tensor(truncated),
            {"final_obs": final_obs},
        )

    def _tensor(self, array: np.ndarray) -> Tensor:
        """`array` as a tensor on the world's device (sharing its memory on the CPU)."""
        tensor = torch.from_numpy(array)
        return tensor if self._on_cpu else tensor.to(self.device)

    def close(self) -> None:
        """Close the vector env (and with it every copy and subprocess)."""
        self.env.close()


def make(section: GymnasiumConfig, num_envs: int, device: str) -> GymnasiumWorld:
    """A world of `num_envs` copies of the section's environment; bad settings raise ConfigError
    naming the key (checked on one probe copy made in this process)."""
    probe = make_env(section)
    try:
        action_spec, to_env = action_codec(probe.action_space, section.id)
        spec, convert = observation_codec(probe.observation_space, section.id)
        width = _reward_width(probe)
        heads = _head_names(width, section.heads)
        if section.oracle:  # fail now, not at the evaluation after training
            _oracle_returns(section, len(heads))
        if section.reference_point and len(section.reference_point) != len(heads):
            raise _error(
                "reference_point",
                f"{len(section.reference_point)} values for the {len(heads)} heads {heads}",
            )
        if section.pareto_front:
            _import_path(section.pareto_front, "pareto_front")
    except ConfigError:
        probe.close()
        raise
    factory = functools.partial(make_env, section)
    options = {"copy": False, "autoreset_mode": AutoresetMode.SAME_STEP}
    env: VectorEnv
    if section.vectorization == "async":  # its workers send rewards of any shape
        probe.close()
        env = AsyncVectorEnv([factory] * num_envs, **options)
    else:  # the probe serves as the first copy
        env_fns = [lambda: probe, *[factory] * (num_envs - 1)]
        if width is None:
            env = SyncVectorEnv(env_fns, **options)
        else:
            env = _VectorRewardSyncEnv(env_fns, width, **options)
    return GymnasiumWorld(env, spec, convert, action_spec, to_env, heads, torch.device(device))


def evaluate(section: GymnasiumConfig, act: Act, episodes: int, device: str) -> list[dict]:
    """Greedy return of every head over `episodes` first episodes (mean, ci95, n), plus oracle,
    random and normalised returns when the section names an oracle, and a multi-objective row
    (expected utility; hypervolume and IGD where configured) when `mo_divisions` > 0.

    The episodes run as one synchronous batch: one subprocess per episode would be too many.
    """
    world = make(dataclasses.replace(section, vectorization="sync"), episodes, device)
    try:
        rows = head_return_rows(world, act)
        if section.oracle:
            optimal, random = _oracle_returns(section, len(rows))
            for row, best, chance in zip(rows, optimal, random, strict=True):
                row["oracle_return"] = best
                row["random_return"] = chance
                row["normalized_return"] = normalized_return(row["return"], best, chance)
        if section.mo_divisions:
            width = len(world.head_names)
            front = _pareto_front(section, width) if section.pareto_front else None
            rows.append(
                multi_objective_row(
                    world,
                    act,
                    simplex_lattice(len(world.head_names), section.mo_divisions),
                    section.mo_gamma,
                    section.reference_point,
                    front,
                )
            )
    finally:
        world.close()
    return rows


def _pareto_front(section: GymnasiumConfig, width: int) -> torch.Tensor:
    """The Pareto front [P, K] from the section's pareto_front function (K = `width` heads)."""
    function = _import_path(section.pareto_front, "pareto_front")
    env = make_env(section)
    try:
        front = torch.as_tensor(np.asarray(function(env, section.mo_gamma)), dtype=torch.float32)
    except Exception as err:  # a user's function on this env: name it and what it raised
        raise _error(
            "pareto_front", f"{section.pareto_front}(env, gamma) raised {type(err).__name__}: {err}"
        ) from err
    finally:
        env.close()
    if front.dim() != 2 or front.shape[1] != width or not len(front):
        raise _error(
            "pareto_front",
            f"{section.pareto_front} returned shape {tuple(front.shape)}, expected [P, {width}]",
        )
    return front


def make_env(section: GymnasiumConfig) -> gymnasium.Env:
    """One copy of the section's environment: gymnasium.make(id, **kwargs), then the wrappers.

    MO-Gymnasium's ids are made as mo_gymnasium.make makes them, without Gymnasium's passive
    checker (it expects a scalar reward), unless kwargs set disable_env_checker.
    """
    missing = _import_id_packages()
    module, sep, name = section.id.rpartition(":")
    if sep:  # imported here so that a failure is not mistaken for an unknown id
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise _error("id", f"cannot import module {module!r} of {section.id!r}: {err}") from err
    kwargs = dict(section.kwargs)
    registered = gymnasium.registry.get(name)
    if registered is not None and str(registered.entry_point).startswith("mo_gymnasium"):
        kwargs.setdefault("disable_env_checker", True)
    try:
        env = gymnasium.make(section.id, **kwargs)
    except gymnasium.error.UnregisteredEnv as err:
        raise _unknown_id(section.id, err, missing) from err
    except (gymnasium.error.DeprecatedEnv, gymnasium.error.DependencyNotInstalled) as err:
        raise _error("id", f"cannot make {section.id!r}: {err}") from err
    except TypeError as err:  # e.g. a keyword the environment does not take
        raise _error("kwargs", f"gymnasium.make({section.id!r}, **kwargs) failed: {err}") from err
    for i, path in enumerate(section.wrappers):
        wrapper = _import_path(path, f"wrappers[{i}]")
        try:
            env = wrapper(env)
        except TypeError as err:  # e.g. a wrapper that needs more arguments than the env
            raise _error(f"wrappers[{i}]", f"{path}(env) failed: {err}") from err
    return env


def observation_codec(space: spaces.Space, env_id: str) -> tuple[ObservationSpec, Convert]:
    """The spec of one observation of `space` and a map from a numpy batch of them to a new
    numpy batch of that spec (always a copy: the vector env reuses its buffers)."""
    if isinstance(space, spaces.Box) and len(space.shape) == 3:
        uint8 = space.dtype == np.uint8
        dtype, torch_dtype = (np.uint8, torch.uint8) if uint8 else (np.float32, torch.float32)
        # Gymnasium images are [H, W, C]; keep [C, H, W] only where the first axis alone looks
        # like channels.
        channels_first = space.shape[0] <= 4 < space.shape[-1]
        order = (0, 1, 2, 3) if channels_first else (0, 3, 1, 2)
        shape = tuple(space.shape[axis - 1] for axis in order[1:])

        def image(raw: np.ndarray) -> np.ndarray:
            """[B, H, W, C] (or [B, C, H, W]) numbers -> [B, C, H, W] contiguous copy."""
            return np.array(raw.transpose(order), dtype=dtype, order="C")

        return ObservationSpec(shape, torch_dtype, "image"), image
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        size = int(np.prod(space.shape))

        def vector(raw: np.ndarray) -> np.ndarray:
            """[B, ...] numbers -> [B, size] float32 copy."""
            return np.array(raw.reshape(len(raw), size), dtype=np.float32)

        return ObservationSpec((size,), torch.float32, "vector"), vector
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        sizes = np.reshape(space.n if isinstance(space, spaces.Discrete) else space.nvec, -1)
        offsets = np.cumsum(sizes) - sizes  # component j's values start at column offsets[j]
        shift = offsets - np.reshape(space.start, -1)
        width = sizes.size

        def indices(raw: np.ndarray) -> np.ndarray:
            """[B, ...] integers -> [B, width] int64 positions of the ones of a multi-hot row."""
            return np.add(raw.reshape(len(raw), width), shift, dtype=np.int64)

        return ObservationSpec((width,), torch.long, "indices", int(sizes.sum())), indices
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        raise _error(
            "wrappers",
            f"{env_id!r} observes a {type(space).__name__} space, {space}; "
            + _flattening_advice(space),
        )
    raise _error(
        "id",
        f"{env_id!r} observes {space}, which is not supported: use Box, Discrete, MultiDiscrete, "
        "MultiBinary, or Dict/Tuple with a flattening wrapper",
    )


def action_codec(space: spaces.Space, env_id: str) -> tuple[ActionSpec, Convert]:
    """The spec of the actions learners send for `space` and a map from a numpy batch of them to
    the vector env's actions: a Discrete space's indices (shifted by its start), or for a Box
    with finite bounds the box [-1, 1] of its shape, rescaled to its bounds (after clipping)."""
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        shift = (lambda chosen: chosen + start) if start else (lambda chosen: chosen)
        return ActionSpec.discrete(int(space.n)), shift
    if isinstance(space, spaces.Box):
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise _error(
                "id",
                f"{env_id!r} has action space {space} with infinite bounds; box actions need "
                "finite low and high (wrap it, e.g. gymnasium.wrappers:RescaleAction)",
            )
        half, middle, dtype = (high - low) / 2, (high + low) / 2, space.dtype

        def rescale(chosen: np.ndarray) -> np.ndarray:
            """[B, *shape] points of [-1, 1] -> the env's box, in its dtype."""
            return (middle + half * np.clip(chosen, -1.0, 1.0)).astype(dtype)

        return ActionSpec.box(space.shape, -1.0, 1.0), rescale
    raise _error(
        "id",
        f"{env_id!r} has action space {space} ({type(space).__name__}); supported: "
        "gymnasium.spaces.Discrete and Box",
    )


def _reward_width(env: gymnasium.Env) -> int | None:
    """Components of the reward vector an MO-Gymnasium style env declares; None for a scalar."""
    try:
        return int(np.prod(env.get_wrapper_attr("reward_space").shape))
    except AttributeError:
        return None


def _head_names(width: int | None, heads: list[str]) -> list[str]:
    """The configured head names, checked against the reward width, or the default names."""
    default = ["reward"] if width is None else [f"reward_{k}" for k in range(width)]
    if not heads:
        return default
    if len(heads) != len(default):
        raise _error(
            "heads",
            f"{len(heads)} names {heads} for a reward of width {len(default)} "
            f"(default names: {', '.join(default)})",
        )
    return list(heads)


def _oracle_returns(section: GymnasiumConfig, width: int) -> tuple[list[float], list[float]]:
    """Exact optimal and uniform-random returns per head from the section's oracle function."""
    oracle = _import_path(section.oracle, "oracle")
    env = make_env(section)
    try:
        optimal, random = oracle(env)
    except Exception as err:  # a user's function on this env: name it and what it raised
        raise _error("oracle", f"{section.oracle}(env) raised {type(err).__name__}: {err}") from err
    finally:
        env.close()
    optimal = torch.as_tensor(optimal, dtype=torch.float64).flatten().tolist()
    random = torch.as_tensor(random, dtype=torch.float64).flatten().tolist()
    if len(optimal) != width or len(random) != width:
        raise _error(
            "oracle",
            f"{section.oracle} returned {len(optimal)} optimal and {len(random)} random "
            f"returns for {width} heads",
        )
    return optimal, random


@functools.cache
def _import_id_packages() -> tuple[str, ...]:
    """Import the installed packages of `ID_PACKAGES` (registering their ids); the others."""
    missing = []
    for package in ID_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    return tuple(missing)


def _is_import_path(path: str) -> bool:
    """Whether `path` has the form 'package.module:name'."""
    module, sep, name = path.partition(":")
    return bool(module and sep and name)


def _import_path(path: str, field: str) -> Any:
    """The object named by 'package.module:name', or a ConfigError naming `field`."""
    if not _is_import_path(path):
        raise _error(field, f"expected 'package.module:name', got {path!r}")
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise _error(field, f"cannot import {path!r}: {err}") from err
    except AttributeError as err:
        raise _error(field, f"cannot import {path!r}: module {module!r} has no {name!r}") from err


def _unknown_id(env_id: str, err: gymnasium.error.Error, missing: tuple[str, ...]) -> ConfigError:
    """Error for an id gymnasium.make cannot find: Gymnasium's reason, plus close matches among
    the registered ids where Gymnasium suggests none, and the id packages not installed."""
    message = f"unknown Gymnasium environment {env_id!r}: {err}"
    if "did you mean" not in message.lower():
        close = difflib.get_close_matches(env_id.rpartition(":")[2], list(gymnasium.registry))
        if close:
            message += f" (close matches: {', '.join(close)})"
    if missing:
        message += f"; not installed, so their ids are unknown: {', '.join(missing)}"
    return _error("id", message)


def _flattening_advice(space: spaces.Dict | spaces.Tuple) -> str:
    """Which wrapper makes a Dict or Tuple observation usable: MiniGrid's image alone where the
    space holds one beside a text (its mission), else FlattenObservation where every part can
    be flattened, else which parts cannot."""
    parts = dict(space.spaces) if isinstance(space, spaces.Dict) else dict(enumerate(space.spaces))
    unflattenable = []
    for name, part in parts.items():
        try:
            spaces.flatdim(part)
        except (NotImplementedError, ValueError):
            unflattenable.append(name)
    if "image" in parts and unflattenable:
        return (
            f"its part(s) {unflattenable} cannot be flattened; keep the image alone "
            f"(wrappers: ['{IMAGE_WRAPPER}'], from the minigrid package)"
        )
    if unflattenable:
        return (
            f"its part(s) {unflattenable} cannot be flattened (e.g. text); add a wrapper that "
            "keeps only numeric parts"
        )
    return f"add a wrapper that flattens it (wrappers: ['{FLATTEN_WRAPPER}'])"


def _error(field: str, message: str) -> ConfigError:
    """A ConfigError about `field` of the env section, its key at the front of the message."""
    key = f"{SECTION}.{field}"
    return ConfigError(f"{key}: {message}", key)


register_world("gymnasium", GymnasiumConfig, make, evaluate)
