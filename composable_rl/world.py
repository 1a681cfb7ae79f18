"""What a learner needs from a world, as typing protocols: one core contract and optional
capabilities that a world declares by having their attributes (docs/architecture.md).

Agents, the training loop, evaluation and the CLIs ask for capabilities (`isinstance(world,
GoalWorld)`), never for a concrete world class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

ObservationKind = Literal["vector", "image", "indices"]
ActionKind = Literal["discrete", "box"]
# Heads a goal world may add for Boolean NOT: every goal rewarded with r_max / r_min.
BOUND_HEADS = ("MAX", "MIN")


@dataclass(frozen=True)
class ObservationSpec:
    """Shape and meaning of one observation (without the batch axis).

    kind: vector (any numbers, flattened by an MLP), image ([C, H, W], read by a CNN) or indices
    (long positions of the ones of a multi-hot vector `num_features` wide, read by a sparse
    first layer).
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: ObservationKind
    num_features: int = 0

    def __post_init__(self) -> None:
        if self.kind == "indices" and self.num_features < 1:
            raise ValueError("index observations need num_features >= 1")
        if self.kind == "image" and len(self.shape) != 3:
            raise ValueError(f"image observations are [C, H, W], got shape {self.shape}")

    @property
    def stored_dtype(self) -> torch.dtype:
        """The dtype replay keeps these observations in: int32 for index observations (every
        position is below num_features), which halves what a sample reads; else `dtype`."""
        fits = self.kind == "indices" and self.num_features <= torch.iinfo(torch.int32).max
        return torch.int32 if fits and self.dtype == torch.int64 else self.dtype


@dataclass(frozen=True)
class ActionSpec:
    """What one env slot accepts as an action: one of `n` choices (a long index), or a point of
    a box of `shape` between the finite bounds `low` and `high` (float32; one bound per entry,
    flattened). Make one with `ActionSpec.discrete(n)` or `ActionSpec.box(shape, low, high)`.

    A batch of actions is long [N] for a discrete spec and float32 [N, *shape] for a box. A box
    world clips what lies outside its box, as if it had been sent clipped.
    """

    kind: ActionKind
    n: int = 0
    shape: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "discrete":
            if not (isinstance(self.n, int) and self.n >= 1) or self.shape or self.low:
                raise ValueError(f"a discrete action spec needs n >= 1 alone, got n={self.n!r}")
            return
        if self.kind != "box":
            raise ValueError(f"action spec kind must be 'discrete' or 'box', got {self.kind!r}")
        if not self.shape or any(not isinstance(d, int) or d < 1 for d in self.shape):
            raise ValueError(f"a box action spec needs a shape of sizes >= 1, got {self.shape}")
        size = math.prod(self.shape)
        if len(self.low) != size or len(self.high) != size:
            raise ValueError(
                f"a box of shape {self.shape} needs {size} low and high bounds, got "
                f"{len(self.low)} and {len(self.high)}"
            )
        bounds = [*self.low, *self.high]
        if not all(isinstance(b, float) and math.isfinite(b) for b in bounds):
            raise ValueError(
                f"box bounds must be finite floats, got low {self.low} high {self.high}"
            )
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError(f"box bounds need low < high, got low {self.low} high {self.high}")

    @classmethod
    def discrete(cls, n: int) -> ActionSpec:
        """`n` actions, indices 0 .. n - 1."""
        return cls("discrete", n=n)

    @classmethod
    def box(
        cls, shape: Sequence[int], low: float | Sequence[float], high: float | Sequence[float]
    ) -> ActionSpec:
        """A box of `shape`; a scalar bound applies to every entry."""
        shape = tuple(int(d) for d in shape)
        size = math.prod(shape) if shape else 0

        def flat(bound: float | Sequence[float]) -> tuple[float, ...]:
            values = [bound] * size if isinstance(bound, (int, float)) else list(bound)
            return tuple(float(v) for v in values)

        return cls("box", shape=shape, low=flat(low), high=flat(high))

    @property
    def continuous(self) -> bool:
        """Whether actions are points of a box."""
        return self.kind == "box"

    @property
    def dtype(self) -> torch.dtype:
        """long for discrete actions, float32 for a box."""
        return torch.float32 if self.continuous else torch.long

    def bounds(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The box's low and high as float32 tensors of `shape`."""
        low = torch.tensor(self.low, dtype=torch.float32, device=device).reshape(self.shape)
        high = torch.tensor(self.high, dtype=torch.float32, device=device).reshape(self.shape)
        return low, high

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """n actions drawn uniformly: indices [n], or points of the box [n, *shape]."""
        if not self.continuous:
            return torch.randint(self.n, (n,), generator=generator, device=device)
        low, high = self.bounds(device)
        u = torch.rand((n, *self.shape), generator=generator, device=device)
        return low + u * (high - low)

    def clip(self, actions: Tensor) -> Tensor:
        """Box actions [N, *shape] clipped into the box (discrete actions unchanged)."""
        if not self.continuous:
            return actions
        low, high = self.bounds(actions.device)
        return torch.maximum(torch.minimum(actions, high), low)


Step = tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]
# A policy: act(obs [N, ...], context [N, ...]) -> actions, long [N] or float32 [N, *shape] as
# the world's ActionSpec says. The context is what the policy is conditioned on: task weights
# [N, K] over the heads, skill-machine states [N], or internal levels [N, V].
Act = Callable[[Tensor, Tensor], Tensor]


@runtime_checkable
class World(Protocol):
    """N environments stepped together on one device, with a reward vector of K heads.

    `step(actions)` (long [N] or float32 [N, *shape], as `action_spec` says) returns
    (obs [N, ...], reward [N, K] float32, terminated [N] bool,
    truncated [N] bool, info). Finished slots start their next episode inside the same step, so
    `obs` already belongs to the new episode and `info["final_obs"]` holds the last observation
    of the finished one (equal to `obs` elsewhere). `terminated` means no bootstrap,
    `truncated` means a time limit (bootstrap from the final observation).
    """

    num_envs: int
    device: torch.device
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    head_names: list[str]

    def reset(self, seed: int = 0) -> Tensor:
        """Seed every slot (slot i gets seed + i) and start its first episode; returns obs."""
        ...

    def step(self, actions: Tensor) -> Step:
        """Step every slot; see the class docstring for what comes back."""
        ...


@runtime_checkable
class GoalWorld(World, Protocol):
    """Episodes end at one of G goals (terminal events): world-value heads and Boolean tasks.

    `info["goal"]` [N] long is the goal reached on that step (-1 for none). Collecting goal g
    pays head k `r_max` where `goal_membership[g, k]`, else `r_min`; every other step pays
    `step_reward`. `num_states` bounds the length of a shortest path (the default wrong-goal
    penalty's horizon). `goal_slots` [G, J] names the observation columns describing each goal
    (index observations only; None where the observation has none).
    """

    goal_names: list[str]
    goal_membership: Tensor
    r_max: float
    r_min: float
    step_reward: float
    num_states: int
    goal_slots: Tensor | None


@runtime_checkable
class TabularWorld(World, Protocol):
    """A world whose episodes have an exact finite model: oracles and normalised scores.

    `tabular_episodes()` describes the episodes that the last `reset` began: (mdp, which [N],
    start [N]) where `mdp` holds L deterministic layouts (`TabularMDP` fields next_state,
    reward, terminal, goal, valid) and slot i plays layout which[i] from state start[i].
    Episodes are truncated after `max_steps` steps.
    """

    max_steps: int

    def tabular_episodes(self) -> tuple[object, Tensor, Tensor]:
        """The exact model of the episodes just begun (see the class docstring)."""
        ...


@runtime_checkable
class LabelledWorld(GoalWorld, Protocol):
    """Propositions hold at goals (skill machines): `alphabet[l]` is the set of propositions of
    label l, `goal_labels` [G] the label index of each goal, and `goal_observations()` [G, ...]
    the observation of standing on each goal (what a skill machine's look-ahead evaluates)."""

    alphabet: list[frozenset[str]]
    goal_labels: Tensor

    def goal_observations(self) -> Tensor:
        """Observation [G, ...] of the agent standing on each goal."""
        ...


@runtime_checkable
class StepModel(LabelledWorld, Protocol):
    """A labelled world that knows which goal a step enters (a skill machine's model shield):
    `entered_goals(obs, actions)` [N, C] long, the goal (-1 none) that each of C actions [N, C,
    ...] taken from observations [N, ...] enters, by the world's own dynamics."""

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Goal [N, C] (-1 none) entered by each of C actions from each observation."""
        ...


@runtime_checkable
class InternalLevels(World, Protocol):
    """Internal variables that drift and change on consumption (homeostasis): `internal`
    [N, V] levels named by `variable_names`; step info carries them as `info["internal"]`."""

    variable_names: list[str]
    internal: Tensor


@runtime_checkable
class ResourceWorld(InternalLevels, Protocol):
    """Internal levels that change when resources are consumed (the homeostasis protocols):
    `resource_names` [R], `consumption` [R, V] the change of each level per consumption,
    `set_levels(levels)` forces the levels of every slot ([V] values); step info carries
    `info["consumed"]` [N] (the resource consumed, -1 none) and `info["death"]` [N]."""

    resource_names: list[str]
    consumption: Tensor

    def set_levels(self, levels: Sequence[float]) -> None:
        """Force every slot's levels to `levels` [V]."""
        ...


@runtime_checkable
class ResumableWorld(World, Protocol):
    """A world whose open episodes can be saved and restored (exact resume of a run):
    `state_dict()` gives its episode tensors by name, `load_state_dict` puts them back."""

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors that hold every open episode."""
        ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue the episodes of a `state_dict`."""
        ...
