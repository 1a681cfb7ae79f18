"""`check_world`: a contract check for batched torch worlds, the analogue of Stable-Baselines3's
`check_env`, run on a world before training so that a defect is named instead of surfacing as a
shape error deep inside a learner (the World protocol in composable_rl/world.py).

Every problem is one line "<subject>: <detail>"; a rollout reports each subject once, at the
step where it first appears.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from composable_rl.world import (
    ActionSpec,
    GoalWorld,
    InternalLevels,
    LabelledWorld,
    ObservationSpec,
    StepModel,
    TabularWorld,
)

CAPABILITIES: tuple[type, ...] = (
    GoalWorld,
    TabularWorld,
    LabelledWorld,
    StepModel,
    InternalLevels,
)
MDP_FIELDS = ("next_state", "reward", "terminal", "goal", "valid")
ACTION_SPEC = "an ActionSpec (ActionSpec.discrete(n) or ActionSpec.box(shape, low, high))"
RENAMED = {"action_spec": "; num_actions is replaced by action_spec = ActionSpec.discrete(n)"}
_MISSING = object()

Dim = int | None  # None: any size
Trace = list[tuple[str, Any]]


class WorldContractError(ValueError):
    """A world that breaks the World protocol; `problems` lists every violated rule, one line
    each."""

    def __init__(self, problems: Sequence[str]) -> None:
        """Keep the problems and make them the message, one per line."""
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"the world breaks {len(self.problems)} contract rule(s):\n{lines}")


def check_world(world: Any, steps: int = 200, seed: int = 0) -> None:
    """Check `world` against the World protocol and the capabilities it claims, stepping it with
    `steps` random valid actions; raises WorldContractError listing every problem found."""
    core = _core_problems(world)
    problems = core + _partial_capability_problems(world)
    if not core:  # every later rule reads the core attributes
        claims = [capability for capability in CAPABILITIES if isinstance(world, capability)]
        if GoalWorld in claims:
            problems += _goal_problems(world)
        if LabelledWorld in claims:
            problems += _labelled_problems(world)
        spec: ActionSpec = world.action_spec
        generator = torch.Generator().manual_seed(seed)
        actions = torch.stack([spec.sample(world.num_envs, generator) for _ in range(steps)])
        trace, rollout_problems, completed = _rollout(world, seed, actions, claims)
        problems += rollout_problems
        if completed:
            repeat, repeat_problems, repeated = _rollout(world, seed, actions, claims)
            problems += (
                _determinism_problems(trace, repeat, seed)
                if repeated
                else [f"seeded determinism: the repeat run failed: {repeat_problems[-1]}"]
            )
        if completed and spec.continuous:
            problems += _clipping_problems(world, seed, actions, claims)
    if problems:
        raise WorldContractError(problems)


# --- helpers shared by the rule groups ---------------------------------------------------------


def _show_shape(shape: Sequence[Dim]) -> str:
    """A shape as "[4, ?, 2]", with "?" for a size that may be anything."""
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def _same_device(got: torch.device, want: torch.device) -> bool:
    """Whether a tensor's device is the world's (a world device without index matches any)."""
    return got.type == want.type and (want.index is None or got.index == want.index)


def _expect_tensor(
    value: Any,
    subject: str,
    shape: Sequence[Dim],
    dtype: torch.dtype | str,
    device: torch.device | None = None,
    meaning: str = "",
) -> list[str]:
    """Problems of `value` against a Tensor of `shape`, `dtype` ("floating": any float dtype)
    and, when given, `device`; `meaning` names the sizes, e.g. "(num_envs, len(head_names))"."""
    if not isinstance(value, Tensor):
        return [f"{subject}: expected a Tensor, got {type(value).__name__}"]
    problems = []
    fits = len(value.shape) == len(shape) and all(
        want is None or got == want for got, want in zip(value.shape, shape, strict=False)
    )
    if not fits:
        note = f" {meaning}" if meaning else ""
        problems.append(
            f"{subject} shape: expected {_show_shape(shape)}{note}, got {list(value.shape)}"
        )
    if dtype == "floating" and not value.is_floating_point():
        problems.append(f"{subject} dtype: expected a floating dtype, got {value.dtype}")
    elif isinstance(dtype, torch.dtype) and value.dtype != dtype:
        problems.append(f"{subject} dtype: expected {dtype}, got {value.dtype}")
    if device is not None and not _same_device(value.device, device):
        problems.append(f"{subject} device: expected {device} (world.device), got {value.device}")
    return problems


def _expect_range(value: Tensor, subject: str, low: int, high: int, meaning: str) -> list[str]:
    """Problems of an integer tensor whose values must lie in [low, high)."""
    if value.numel() == 0 or value.is_floating_point():
        return []
    least, most = int(value.min()), int(value.max())
    if low <= least and most < high:
        return []
    return [f"{subject} values: expected in [{low}, {high}) {meaning}, got range [{least}, {most}]"]


def _expect_finite(value: Any, subject: str) -> list[str]:
    """Problems of a float tensor holding NaN or infinity."""
    if not isinstance(value, Tensor) or not value.is_floating_point():
        return []
    bad = int((~torch.isfinite(value)).sum())
    return [f"{subject} values: expected finite, got {bad} NaN/inf entries"] if bad else []


def _is_int(value: Any) -> bool:
    """Whether `value` is a plain int (not a bool) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_str_list(value: Any) -> bool:
    """Whether `value` is a non-empty list of distinct str."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, str) for item in value)
        and len(set(value)) == len(value)
    )


def _attempt(call: str, function: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run `function`, turning an exception into the problem "<call> raised <type>: <message>"."""
    try:
        return function(), []
    except Exception as err:  # a broken world may raise anything; report it, do not crash
        return None, [f"{call} raised {type(err).__name__}: {err}"]


def _members(capability: type) -> list[str]:
    """The attributes and methods a capability protocol adds to the ones of its bases."""
    methods = [
        name
        for name, value in vars(capability).items()
        if callable(value) and not name.startswith("_")
    ]
    return list(inspect.get_annotations(capability)) + methods


# --- rule groups -----------------------------------------------------------------------------


def _core_problems(world: Any) -> list[str]:
    """The core attributes of the World protocol, present and of the right types."""
    rules: list[tuple[str, Callable[[Any], bool], str]] = [
        ("num_envs", _is_int, "an int >= 1"),
        ("device", lambda v: isinstance(v, torch.device), "a torch.device"),
        ("observation_spec", lambda v: isinstance(v, ObservationSpec), "an ObservationSpec"),
        ("action_spec", lambda v: isinstance(v, ActionSpec), ACTION_SPEC),
        ("head_names", _is_str_list, "a non-empty list of distinct str"),
        ("reset", callable, "a method reset(seed)"),
        ("step", callable, "a method step(actions)"),
    ]
    problems = []
    for name, valid, expected in rules:
        value = getattr(world, name, _MISSING)
        if value is _MISSING:
            hint = RENAMED.get(name, "") if hasattr(world, "num_actions") else ""
            problems.append(f"{name}: missing, expected {expected}{hint}")
        elif not valid(value):
            problems.append(f"{name}: expected {expected}, got {value!r}")
        elif name == "device":  # the actions check_world sends must be able to live there
            problems += _attempt(
                f"device: creating a tensor on {value}", partial(torch.zeros, 1, device=value)
            )[1]
    return problems


def _partial_capability_problems(world: Any) -> list[str]:
    """Worlds with some but not all attributes of a capability: the ones they lack (a
    capability a world does not fully claim is silently ignored by learners)."""
    problems, reported = [], set()
    for capability in CAPABILITIES:
        own = _members(capability)
        if not any(hasattr(world, name) for name in own):
            continue
        required = [
            name for base in capability.__mro__ if base in CAPABILITIES for name in _members(base)
        ]
        missing = [n for n in required if not hasattr(world, n) and n not in reported]
        if missing:
            present = ", ".join(name for name in own if hasattr(world, name))
            problems.append(
                f"{capability.__name__} (partial): has {present} but lacks {', '.join(missing)}"
            )
            reported.update(missing)
    return problems


def _obs_problems(obs: Any, subject: str, world: Any, batch: int) -> list[str]:
    """An observation batch [batch, *spec.shape] of spec.dtype on world.device, with index
    observations in [0, num_features) and float ones finite."""
    spec: ObservationSpec = world.observation_spec
    problems = _expect_tensor(
        obs, subject, (batch, *spec.shape), spec.dtype, world.device, "(batch, *spec.shape)"
    )
    if isinstance(obs, Tensor) and spec.kind == "indices":
        problems += _expect_range(obs, subject, 0, spec.num_features, "(spec.num_features)")
    return problems + _expect_finite(obs, subject)


def _step_problems(result: Any, world: Any) -> list[str]:
    """One step's 5-tuple: obs as for reset, reward [N, K] finite float32, flags and info."""
    if not isinstance(result, tuple) or len(result) != 5:
        got = f"a {len(result)}-tuple" if isinstance(result, tuple) else type(result).__name__
        return [f"step() result: expected (obs, reward, terminated, truncated, info), got {got}"]
    obs, reward, terminated, truncated, info = result
    shape = (world.num_envs, len(world.head_names))
    reward_problems = _expect_tensor(
        reward, "step() reward", shape, torch.float32, world.device, "(num_envs, len(head_names))"
    ) + _expect_finite(reward, "step() reward")
    obs_problems = _obs_problems(obs, "step() obs", world, world.num_envs)
    problems = reward_problems + obs_problems + _flag_problems(terminated, truncated, world)
    if not isinstance(info, dict):
        return problems + [f"step() info: expected a dict, got {type(info).__name__}"]
    if "final_obs" not in info:
        return problems + ["step() info['final_obs']: missing, expected the last obs of every slot"]
    final = info["final_obs"]
    final_problems = _obs_problems(final, "step() info['final_obs']", world, world.num_envs)
    if len(problems) == len(reward_problems) and not final_problems:  # obs and flags are sound
        final_problems = _final_obs_problems(obs, final, terminated | truncated)
    return problems + final_problems


def _flag_problems(terminated: Any, truncated: Any, world: Any) -> list[str]:
    """terminated and truncated [N] bool on the device, never both true on one slot."""
    shape = (world.num_envs,)
    problems = _expect_tensor(terminated, "step() terminated", shape, torch.bool, world.device)
    problems += _expect_tensor(truncated, "step() truncated", shape, torch.bool, world.device)
    if problems:
        return problems
    both = (terminated & truncated).nonzero().flatten().tolist()
    if both:
        problems.append(
            f"step() terminated and truncated: both true on slots {both}, expected at most one"
        )
    return problems


def _final_obs_problems(obs: Tensor, final: Tensor, finished: Tensor) -> list[str]:
    """info["final_obs"] equals obs on every slot that neither terminated nor truncated."""
    differ = (final != obs).reshape(obs.shape[0], -1).any(1) & ~finished
    if not differ.any():
        return []
    slots = differ.nonzero().flatten().tolist()
    return [
        f"step() info['final_obs'] on running slots: differs from obs on slots {slots}, "
        "expected equal where neither terminated nor truncated"
    ]


def _goal_problems(world: Any) -> list[str]:
    """GoalWorld attributes: goal_membership bool [G, K], r_min < r_max, num_states >= 1 and
    goal_slots None or long [G, J]."""
    names = world.goal_names
    problems = (
        []
        if _is_str_list(names)
        else [f"GoalWorld goal_names: expected a non-empty list of distinct str, got {names!r}"]
    )
    goals = len(names) if isinstance(names, list) else None
    problems += _expect_tensor(
        world.goal_membership,
        "GoalWorld goal_membership",
        (goals, len(world.head_names)),
        torch.bool,
        meaning="(len(goal_names), len(head_names))",
    )
    rewards = (world.r_min, world.r_max, world.step_reward)
    if not all(_is_real(value) for value in rewards):
        problems.append(
            "GoalWorld rewards: expected finite numbers r_min, r_max and step_reward, "
            f"got {rewards}"
        )
    elif not world.r_min < world.r_max:
        problems.append(
            f"GoalWorld r_min < r_max: expected, got r_min={world.r_min}, r_max={world.r_max}"
        )
    if not _is_int(world.num_states):
        problems.append(f"GoalWorld num_states: expected an int >= 1, got {world.num_states!r}")
    if world.goal_slots is not None:
        problems += _expect_tensor(
            world.goal_slots,
            "GoalWorld goal_slots",
            (goals, None),
            torch.long,
            meaning="(len(goal_names), J), or None",
        )
    return problems


def _is_real(value: Any) -> bool:
    """Whether `value` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _goal_step_problems(info: dict, terminated: Any, world: Any) -> list[str]:
    """info["goal"] long [N] in [-1, G), and a slot that reaches a goal terminates."""
    if "goal" not in info:
        return ["step() info['goal']: missing, expected the goal reached (-1 for none) (GoalWorld)"]
    goal, goals = info["goal"], len(world.goal_names)
    problems = _expect_tensor(
        goal, "step() info['goal']", (world.num_envs,), torch.long, world.device
    )
    if problems:
        return problems
    problems = _expect_range(goal, "step() info['goal']", -1, goals, "(-1 or a goal index)")
    if isinstance(terminated, Tensor) and terminated.shape == goal.shape:
        open_slots = ((goal >= 0) & ~terminated.bool()).nonzero().flatten().tolist()
        if open_slots:
            problems.append(
                f"step() info['goal'] without terminated: slots {open_slots} reached a goal "
                "but did not terminate (GoalWorld goals are terminal)"
            )
    return problems


def _model_problems(predicted: Any, info: dict, world: Any) -> list[str]:
    """StepModel: entered_goals() of each step's action twice, long [N, 2] in [-1, G), naming
    every goal the step entered in both columns (it may name one a step only came close to: a
    shield's model errs on the safe side)."""
    subject = "StepModel entered_goals()"
    n, goals = world.num_envs, len(world.goal_names)
    problems = _expect_tensor(predicted, subject, (n, 2), torch.long, world.device)
    problems = problems or _expect_range(predicted, subject, -1, goals, "(-1 or a goal index)")
    goal = info.get("goal")
    if problems or not isinstance(goal, Tensor) or goal.shape != (n,):
        return problems
    wrong = (predicted != goal[:, None]).any(1)
    missed = ((goal >= 0) & wrong).nonzero().flatten().tolist()
    if missed:
        problems.append(
            f"{subject}: slots {missed} entered a goal that the model did not name (a shield "
            "would let them in)"
        )
    return problems


def _tabular_problems(world: Any) -> list[str]:
    """TabularWorld: max_steps int >= 1 and tabular_episodes() after reset a consistent
    (mdp, which, start)."""
    problems = []
    if not _is_int(world.max_steps):
        problems.append(f"TabularWorld max_steps: expected an int >= 1, got {world.max_steps!r}")
    episodes, raised = _attempt("TabularWorld tabular_episodes()", world.tabular_episodes)
    if raised:
        return problems + raised
    if not isinstance(episodes, tuple) or len(episodes) != 3:
        return problems + [
            "TabularWorld tabular_episodes(): expected a tuple (mdp, which, start), "
            f"got {type(episodes).__name__}"
        ]
    if world.action_spec.continuous:
        return problems + ["TabularWorld: a tabular model needs discrete actions (action_spec)"]
    mdp, which, start = episodes
    missing = [name for name in MDP_FIELDS if not hasattr(mdp, name)]
    if missing:
        return problems + [
            f"TabularWorld tabular_episodes() mdp: lacks {', '.join(missing)} "
            "(the fields of composable_rl.maths.oracle.TabularMDP)"
        ]
    return problems + _mdp_problems(mdp, which, start, world)


def _mdp_problems(mdp: Any, which: Any, start: Any, world: Any) -> list[str]:
    """Shapes and dtypes of a TabularMDP's fields and of which/start, with indices in range and
    every slot starting on a valid state."""
    where = "TabularWorld tabular_episodes()"
    next_state = mdp.next_state
    three_d = isinstance(next_state, Tensor) and next_state.dim() == 3
    layouts, states = next_state.shape[:2] if three_d else (None, None)
    cube = (layouts, states, world.action_spec.n)
    heads = len(world.head_names)
    problems = [
        *_expect_tensor(
            next_state, f"{where} mdp.next_state", cube, torch.long, meaning="(L, S, num_actions)"
        ),
        *_expect_tensor(
            mdp.reward,
            f"{where} mdp.reward",
            (*cube, heads),
            "floating",
            meaning="(L, S, num_actions, len(head_names))",
        ),
        *_expect_tensor(
            mdp.terminal, f"{where} mdp.terminal", cube, torch.bool, meaning="(L, S, num_actions)"
        ),
        *_expect_tensor(
            mdp.goal, f"{where} mdp.goal", cube, torch.long, meaning="(L, S, num_actions)"
        ),
        *_expect_tensor(
            mdp.valid, f"{where} mdp.valid", (layouts, states), torch.bool, meaning="(L, S)"
        ),
        *_expect_tensor(
            which, f"{where} which", (world.num_envs,), torch.long, meaning="(num_envs,)"
        ),
        *_expect_tensor(
            start, f"{where} start", (world.num_envs,), torch.long, meaning="(num_envs,)"
        ),
    ]
    if problems:
        return problems
    problems = [
        *_expect_range(next_state, f"{where} mdp.next_state", 0, states, "(S states)"),
        *_expect_range(which, f"{where} which", 0, layouts, "(L layouts)"),
        *_expect_range(start, f"{where} start", 0, states, "(S states)"),
    ]
    if problems:
        return problems
    invalid = (~mdp.valid.cpu()[which.cpu(), start.cpu()]).nonzero().flatten().tolist()
    if invalid:
        problems.append(f"{where} start: slots {invalid} start on states that mdp.valid rules out")
    return problems


def _labelled_problems(world: Any) -> list[str]:
    """LabelledWorld: alphabet a list of frozensets, goal_labels long [G] indexing it, and
    goal_observations() [G, *spec.shape]."""
    alphabet, goals = world.alphabet, len(world.goal_names)
    problems = []
    if not isinstance(alphabet, list) or not all(isinstance(a, frozenset) for a in alphabet):
        problems.append(f"LabelledWorld alphabet: expected a list of frozensets, got {alphabet!r}")
    labels = world.goal_labels
    label_problems = _expect_tensor(
        labels, "LabelledWorld goal_labels", (goals,), torch.long, meaning="(len(goal_names),)"
    )
    if not label_problems and isinstance(alphabet, list):
        label_problems = _expect_range(
            labels, "LabelledWorld goal_labels", 0, len(alphabet), "(len(alphabet))"
        )
    observations, raised = _attempt("LabelledWorld goal_observations()", world.goal_observations)
    if raised:
        return problems + label_problems + raised
    subject = "LabelledWorld goal_observations()"
    return problems + label_problems + _obs_problems(observations, subject, world, goals)


def _internal_problems(world: Any, when: str) -> list[str]:
    """InternalLevels: internal finite float [N, V] on the device, V == len(variable_names)."""
    names = world.variable_names
    problems = (
        []
        if _is_str_list(names)
        else [
            "InternalLevels variable_names: expected a non-empty list of distinct str, "
            f"got {names!r}"
        ]
    )
    internal, raised = _attempt(f"InternalLevels internal {when}", lambda: world.internal)
    if raised:
        return problems + raised
    width = len(names) if isinstance(names, list) else None
    subject = f"InternalLevels internal {when}"
    return (
        problems
        + _expect_tensor(
            internal,
            subject,
            (world.num_envs, width),
            "floating",
            world.device,
            meaning="(num_envs, len(variable_names))",
        )
        + _expect_finite(internal, subject)
    )


def _rollout(
    world: Any, seed: int, actions: Tensor, claims: list[type]
) -> tuple[Trace, list[str], bool]:
    """reset(seed) and step through `actions` [T, N], checking every result; returns the trace
    of observations and rewards, the problems (each subject once) and whether it ran to the
    end."""
    obs, problems = _attempt(f"reset(seed={seed})", partial(world.reset, seed))
    if problems:
        return [], problems, False
    problems = _obs_problems(obs, "reset() obs", world, world.num_envs)
    if TabularWorld in claims:
        problems += _tabular_problems(world)
    if InternalLevels in claims:
        problems += _internal_problems(world, "after reset()")
    trace: Trace = [("the observations of reset()", _copy(obs))]
    first_seen: dict[str, str] = {}
    predicted, model_problems = None, []
    for t, action in enumerate(actions, start=1):
        action = action.to(world.device)
        if StepModel in claims:  # each action twice: the model's actions axis is read as one
            model = partial(world.entered_goals, obs, torch.stack([action, action], 1))
            predicted, model_problems = _attempt("StepModel entered_goals()", model)
        result, raised = _attempt("step()", partial(world.step, action))
        step_problems = raised or _step_problems(result, world)
        completed = not raised and isinstance(result, tuple) and len(result) == 5
        if completed:
            obs, reward, terminated, _, info = result
            trace += [(f"the observations of step {t}", _copy(obs))]
            trace += [(f"the rewards of step {t}", _copy(reward))]
            if GoalWorld in claims and isinstance(info, dict):
                step_problems += _goal_step_problems(info, terminated, world)
            if StepModel in claims and isinstance(info, dict):
                step_problems += model_problems or _model_problems(predicted, info, world)
            if InternalLevels in claims:
                step_problems += _internal_problems(world, "after step()")
        for line in step_problems:
            first_seen.setdefault(line.split(": ", 1)[0], f"{line} (first at step {t})")
        if not completed:
            return trace, problems + list(first_seen.values()), False
    return trace, problems + list(first_seen.values()), True


def _clipping_problems(world: Any, seed: int, actions: Tensor, claims: list[type]) -> list[str]:
    """A box world clips actions outside its box: the same run with every action stretched to
    three times the box's width and with those actions clipped back must agree."""
    spec: ActionSpec = world.action_spec
    low, high = spec.bounds()
    wide = (low + high) / 2 + 3 * (actions - (low + high) / 2)
    outside, problems, ran = _rollout(world, seed, wide, claims)
    if not ran:
        return [f"actions outside the box: the run with them failed: {problems[-1]}"]
    clipped, problems, ran = _rollout(world, seed, spec.clip(wide), claims)
    if not ran:
        return [f"actions outside the box: the run with them clipped failed: {problems[-1]}"]
    for (name, first), (_, second) in zip(outside, clipped, strict=True):
        if not _identical(first, second):
            return [
                f"actions outside the box: a run with them differs from the same run with them "
                f"clipped into [low, high] first in {name}; expected the world to clip them"
            ]
    return []


def _copy(value: Any) -> Any:
    """A tensor cloned (worlds may hand out buffers they later overwrite); anything else as is."""
    return value.clone() if isinstance(value, Tensor) else value


def _determinism_problems(trace: Trace, repeat: Trace, seed: int) -> list[str]:
    """Two runs from reset(seed) with the same actions must agree on every observation and
    reward."""
    for (name, first), (_, second) in zip(trace, repeat, strict=True):
        if not _identical(first, second):
            return [
                f"seeded determinism: two runs of reset(seed={seed}) with the same actions "
                f"differ first in {name}"
            ]
    return []


def _identical(first: Any, second: Any) -> bool:
    """Whether two traced values are equal, tensors in shape, dtype and values (NaN == NaN)."""
    if not isinstance(first, Tensor) or not isinstance(second, Tensor):
        return type(first) is type(second)  # values that are no tensors are reported already
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    if first.is_floating_point():
        return torch.allclose(first, second, rtol=0.0, atol=0.0, equal_nan=True)
    return torch.equal(first, second)
