"""Typed experiment configuration: documented dataclass schema, YAML loading and validation."""

import copy
import dataclasses
import difflib
import functools
import json
import operator
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from composable_rl.languages.yaml_file import YamlFileError, parse_yaml, read_yaml
from composable_rl.registry import (
    WorldLookupError,
    default_world,
    registered_worlds,
    upgrade_section,
    world_entry,
)

T = TypeVar("T")
GYMNASIUM = "gymnasium"  # the world of a section that gives an environment id but no name

_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
# PyYAML (YAML 1.1) reads `1e-3` as a string; a float field accepts that spelling.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """An invalid configuration key or value; `key` is the dotted path of the culprit."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def doc(
    default: Any,
    text: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """Declare a config field with its documentation and optional bounds on its numbers."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    metadata = {"doc": text, **{name: v for name, v in bounds.items() if v is not None}}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class WorldConfig:
    """Environment: `name` picks a registered world, whose own section (a subclass of this one,
    declared in the world's module) gives the other keys; `--help-config` lists each world's."""

    name: str = doc(
        "",
        "Registered world (object_rooms, office, foraging, gymnasium, ...) or "
        "'package.module:name' for a world that module registers; a section that names only "
        "an `id` is the gymnasium world's, one that names neither the default world's (the "
        "one a world module registers as the default: object_rooms among the built-in ones).",
    )
    num_envs: int = doc(64, "Environments stepped together as one batch.", ge=1)

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """A section saved in a format some world retired, in today's format (the rewrites that
        world modules register, `registry.register_section_upgrade`); a section whose world
        cannot be found is left for `variant` to report."""
        if cls is not WorldConfig:
            return data
        try:
            section = cls.variant(data, "")
        except ConfigError:
            return data
        return upgrade_section(data, section)

    @classmethod
    def variant(cls, data: Mapping[str, Any], path: str) -> type:
        """The registered section class of `data['name']` (this class's subclasses are final);
        without a name, a section with an `id` is a Gymnasium environment's, any other the
        default world's (`registry.default_world`)."""
        if cls is not WorldConfig:
            return cls
        name = data.get("name", "")
        key = _join(path, "name")
        if not isinstance(name, str):
            raise _type_error(key, str, name)
        try:
            if not name:
                name = GYMNASIUM if "id" in data else default_world()
            return world_entry(name).config
        except WorldLookupError as err:
            raise ConfigError(f"{key}: {err}", key) from err


@dataclasses.dataclass
class SuccessorConfig:
    """Successor-feature heads (agent.heads: successor_features): what they are trained for
    and how composed policies act."""

    one_hot_prob: float = doc(
        0.25,
        "Chance that an update trains the features of a base head's own policy (a one-hot "
        "weight vector); otherwise a support vector or a direction uniform on the unit sphere.",
        ge=0,
        le=1,
    )
    support: list[list[float]] = doc(
        [],
        "Extra weight vectors (one weight per head each) added to the GPI candidates, and "
        "trained for with support_prob, e.g. tasks you care about most.",
    )
    support_prob: float = doc(
        0.0, "Chance that an update trains a support vector (needs a support set).", ge=0, le=1
    )
    gpi: bool = doc(
        True,
        "Act on max over candidates c of w . psi(s, a; c) (generalised policy improvement), "
        "the candidates being w itself, the base one-hots and the support set; false = w alone.",
    )
    gpi_own: bool = doc(
        True,
        "Whether w's own policy is a GPI candidate; false = only the base one-hots and the "
        "support set, for when the weight-conditioned policies generalise worse than a "
        "good support set (measured on the quickstart layout, see docs/results.md).",
    )
    gpi_target: bool = doc(
        True,
        "Bootstrap each weight's features from the GPI policy over that weight and the base "
        "one-hots, so a weight's own policy learns to follow a base policy where it does "
        "better; false = from its own policy.",
    )
    behaviour_gpi: bool = doc(
        False,
        "Training behaviour acts with GPI too; false = each slot acts on its own weights' "
        "policy, so that policy's mistakes reach replay and get corrected.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        if self.one_hot_prob + self.support_prob > 1:
            yield "support_prob", "one_hot_prob + support_prob must not exceed 1"
        if self.support_prob > 0 and not self.support:
            yield "support_prob", "needs a support set"
        widths = {len(w) for w in self.support}
        if len(widths) > 1:
            yield "support", f"vectors of different lengths {sorted(widths)}"


@dataclasses.dataclass
class SoftActorCriticConfig:
    """Soft actor-critic heads (agent.heads: soft_actor_critic) for box actions: twin soft
    critics of every base reward on one shared trunk each, and a tanh-squashed Gaussian actor
    per head; compositions act on candidate actions proposed by the actors."""

    candidates: int = doc(
        16,
        "Actions each head's actor proposes when a composition of heads acts; every candidate "
        "(and, for greedy acting, each actor's mean) is scored by the composed Q.",
        ge=1,
    )
    autotune: bool = doc(
        True,
        "Tune each head's temperature so that its actor's entropy stays near target_entropy "
        "(agent.alpha is the starting value); false = every head keeps agent.alpha.",
    )
    target_entropy: float | None = doc(
        None, "Entropy (nats) each actor is tuned to; null = minus the action dimensions."
    )
    critic_hidden: list[int] | None = doc(
        None,
        "Hidden layer widths of the twin critics; null = agent.hidden (the actors keep "
        "agent.hidden either way).",
        ge=1,
    )
    shared_actor: bool = doc(
        True,
        "The K actors share one hidden trunk and one output layer of K means and log-stds; "
        "false = K separate actor networks of agent.hidden each.",
    )
    share_columns: bool = doc(
        False,
        "World-value heads: columns that learn the same problem (goal g paying r_max, or goal "
        "g paying r_min) are one column and one actor, at most 2 x G instead of K x G.",
    )
    clipped_double_q: bool = doc(
        True,
        "Targets, actors and composed acting use the smaller of the twin critics (which "
        "curbs overestimation but learns values biased low); false = their mean.",
    )


@dataclasses.dataclass
class AgentConfig:
    """Multi-head learner: soft-Q, successor-feature or soft actor-critic heads."""

    heads: Literal["soft_q", "successor_features", "soft_actor_critic"] = doc(
        "soft_q",
        "soft_q: one entropy-regularised Q per base reward (linear composition sums them); "
        "successor_features: psi(s, a; z) per base reward for policies conditioned on weights "
        "z, so that w . psi is the value of the policy that acts (see `successor`); "
        "soft_actor_critic: soft critics and actors per base reward for box actions (see `sac`).",
    )
    successor: SuccessorConfig = doc(SuccessorConfig, "Successor-feature heads.")
    sac: SoftActorCriticConfig = doc(SoftActorCriticConfig, "Soft actor-critic heads.")

    gamma: float = doc(0.99, "Discount factor.", ge=0, lt=1)
    alpha: float = doc(
        0.02,
        "Entropy temperature of the heads (soft actor-critic: its starting value, tuned with "
        "sac.autotune).",
        ge=0,
    )
    encoder: Literal["auto", "mlp", "cnn"] = doc(
        "auto",
        "Observation encoder: auto (from the world's observation: cnn for images, a sparse MLP "
        "for index observations, an MLP otherwise), mlp, or cnn (image observations only).",
    )
    hidden: list[int] = doc([256, 256], "Hidden layer widths of the encoder.", ge=1)
    lr: float = doc(5e-4, "Optimiser learning rate.", gt=0)
    lr_end: float | None = doc(
        None,
        "Learning rate at the end of the run, reached linearly from agent.lr over total_steps "
        "(every optimiser of the heads); null keeps agent.lr throughout.",
        gt=0,
    )
    loss: Literal["huber", "mse"] = doc("huber", "TD loss: huber (smooth L1) or mse.")
    double_q: bool = doc(True, "Online network picks next actions, target network values them.")
    max_grad_norm: float = doc(10.0, "Gradient-norm clipping threshold; 0 disables it.", ge=0)
    tau: float | None = doc(
        None,
        "Target-network Polyak factor; 1.0 = hard copy; null = the head type's default: 1.0 "
        "for soft_q and successor_features, 0.005 for soft_actor_critic.",
        gt=0,
        le=1,
    )
    target_period: int | None = doc(
        None,
        "Updates between target-network updates; null = every update for tau < 1, else the "
        "updates of about 500 environment steps (at least 1).",
        ge=1,
    )
    world_values: bool = doc(
        False,
        "Learn world-value heads Q[B, K, G, A] (one value per goal) with extended rewards: "
        "makes Boolean composition exact in deterministic goal-reaching worlds. With "
        "soft_actor_critic heads: a critic column and an actor per head and goal.",
    )
    penalty: float | None = doc(
        None,
        "Extended reward for ending at a goal other than g; null = r_min + step_reward * D "
        "- (r_max - r_min) with D = min(free cells, 1 / (1 - gamma)).",
    )
    goal_conditioned: bool = doc(
        False,
        "World-value heads over index observations of object rooms: compute goal g's values "
        "from the observation plus object g's own features, with weights shared by all goals "
        "(a universal value function approximator); generalises across random layouts.",
    )
    ensemble: int = doc(
        1,
        "Soft-Q heads: members of a bootstrapped ensemble, each a full set of heads on the "
        "shared encoder, trained on its own part of the replay; their disagreement is what "
        "the epistemic gate reads (zero_shot.py --epistemic). Acting uses their mean.",
        ge=1,
    )
    bootstrap: float = doc(
        0.5,
        "Chance that an ensemble member learns from a given replay slot (fixed per slot).",
        gt=0,
        le=1,
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        if self.goal_conditioned and not self.world_values:
            yield "goal_conditioned", "needs world_values: true"
        if self.heads == "successor_features" and self.world_values:
            yield "world_values", f"{self.heads} heads have no goal axis; set it to false"
        if self.heads != "soft_q" and self.ensemble > 1:
            yield "ensemble", f"bootstrapped ensembles are built for soft_q heads, not {self.heads}"
        if self.heads != "soft_q" and self.goal_conditioned:
            yield (
                "goal_conditioned",
                f"{self.heads} heads read vector observations; set it to false",
            )


@dataclasses.dataclass
class ReplayConfig:
    """Replay ring buffer and update schedule."""

    capacity: int = doc(100_000, "Transitions the replay ring holds.", ge=1)
    batch_size: int = doc(256, "Transitions per gradient update.", ge=1)
    learning_starts: int = doc(5_000, "Environment steps before updates begin.", ge=0)
    replay_ratio: float | None = doc(
        None,
        "Samples trained per env step: replay_ratio / batch_size updates per env step, "
        "replay_ratio * num_envs / batch_size per step of the vector env; null = one update "
        "per step of the vector env (batch_size / num_envs).",
        gt=0,
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        if self.batch_size > self.capacity:
            yield "batch_size", f"must not exceed capacity ({self.capacity}), got {self.batch_size}"


@dataclasses.dataclass
class TaskConfig:
    """Behaviour-task distribution and exploration schedule during training."""

    single_head_prob: float = doc(
        0.5,
        "Chance an episode's behaviour task is one base head; otherwise a random weight vector.",
        ge=0,
        le=1,
    )
    weight_dist: Literal["dirichlet", "uniform", "sphere"] = doc(
        "dirichlet",
        "Distribution of the random task weight vectors: dirichlet (positive, summing to 1), "
        "uniform (each in [-1, 1]) or sphere (unit vectors in every direction).",
    )
    fixed_weights: list[float] | None = doc(
        None,
        "Pursue this one weight vector over the heads in every episode (a directly trained "
        "baseline); null = draw tasks as above.",
    )
    epsilon_start: float | None = doc(
        None,
        "Initial chance of a uniformly random action; null = the head type's default: 1.0 for "
        "soft_q and successor_features, 0 for soft_actor_critic (its entropy explores).",
        ge=0,
        le=1,
    )
    epsilon_end: float | None = doc(
        None,
        "Final chance of a uniformly random action; null = the head type's default: 0.05 for "
        "soft_q and successor_features, 0 for soft_actor_critic.",
        ge=0,
        le=1,
    )
    epsilon_fraction: float = doc(
        0.3, "Fraction of training over which epsilon decays linearly.", ge=0, le=1
    )
    uniform_slots: float | None = doc(
        None,
        "Share of the env slots (the first ones) that act uniformly at random all through "
        "training, left out of the logged returns, so that every goal keeps being reached "
        "however the heads value it; null = 0.25 for world-value soft actor-critic heads, "
        "else 0.",
        ge=0,
        lt=1,
    )


@dataclasses.dataclass
class CheckpointConfig:
    """When checkpoints are written and what they hold. A run also writes one at its end and
    when it is interrupted (SIGINT or SIGTERM)."""

    every: int = doc(0, "Environment steps between checkpoints; 0 = none by steps.", ge=0)
    minutes: float = doc(5.0, "Wall-clock minutes between checkpoints; 0 = none by time.", ge=0)
    keep_last: int = doc(
        3, "Newest checkpoints kept; older ones are deleted as new ones land; 0 = keep all.", ge=0
    )
    replay: bool = doc(
        False,
        "Also save the replay buffer, every random-number state and the open episodes "
        "(compressed), so that a resumed run continues exactly as if never stopped: the same "
        "weights on the same machine. Without it a resumed run refills replay from fresh "
        "episodes before it updates again.",
    )


@dataclasses.dataclass
class Config:
    """One experiment: run settings plus the env, agent, replay and task sections."""

    seed: int = doc(0, "Seed of every random number generator.", ge=0, le=2**32 - 1)
    total_steps: int = doc(200_000, "Environment steps to train for (global_step units).", ge=1)
    device: str = doc("cpu", "Torch device for network, replay and envs, e.g. cpu or cuda.")
    device_graphs: bool | Literal["auto"] = doc(
        "auto",
        "Compile the world's step once on its fixed shapes (torch.compile): a few fused kernels "
        "a step instead of hundreds of small operations. Compiling takes 5-20 s on two CPU "
        "cores, so it pays on long runs: auto compiles where the run steps its vector world at "
        "least 100,000 times (total_steps / env.num_envs). Worlds that say their step is not "
        "worth it (Gymnasium, through numpy; gridworlds observed as planes) keep it, with a "
        "warning when true is set.",
    )
    torch_threads: int = doc(
        0,
        "CPU threads for torch; 0 = this run's share of the cores: all of them when it runs "
        "alone, cores // N while N of the project's processes (training runs, zero_shot.py, "
        "experiments) are live on the machine, and no more than other programs leave free "
        "(rechecked twice a second).",
        ge=0,
    )
    run_name: str = doc("", "Run directory name; empty = <config stem>_<seed>_<timestamp>.")
    runs_dir: str = doc("runs", "Directory that holds the run directories.")
    log_every: int = doc(5_000, "Environment steps between log flushes.", ge=1)
    checkpoint: CheckpointConfig = doc(CheckpointConfig, "Checkpoints.")
    eval_episodes: int = doc(200, "Episodes per evaluation.", ge=0)
    env: WorldConfig = dataclasses.field(
        default_factory=lambda: from_dict(WorldConfig, {}, "env"),
        metadata={"doc": "Environment (see the world sections below)."},
    )
    agent: AgentConfig = doc(AgentConfig, "Learner.")
    replay: ReplayConfig = doc(ReplayConfig, "Replay buffer and update schedule.")
    tasks: TaskConfig = doc(TaskConfig, "Behaviour tasks and exploration.")

    @classmethod
    def upgrade(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """A config saved before the checkpoint section: `checkpoint_every` = `checkpoint.every`."""
        if "checkpoint_every" not in data:
            return data
        upgraded = {key: value for key, value in data.items() if key != "checkpoint_every"}
        section = data.get("checkpoint")
        section = dict(section) if isinstance(section, Mapping) else {}
        upgraded["checkpoint"] = {"every": data["checkpoint_every"], **section}
        return upgraded

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several sections."""
        if self.run_name in (".", "..") or "/" in self.run_name or "\\" in self.run_name:
            yield "run_name", f"must be a plain folder name inside runs_dir, got {self.run_name!r}"
        starts = min(self.replay.learning_starts, self.replay.capacity)
        if starts >= self.total_steps:
            yield (
                "replay.learning_starts",
                f"updates begin after {starts} steps, but total_steps is {self.total_steps}: "
                "the run would never learn",
            )


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass `cls` from nested mappings, rejecting unknown keys, bad types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        where = path or "config"
        raise ConfigError(f"{where}: expected a section of keys, got {_show(data)}", path)
    upgrade = getattr(cls, "upgrade", None)
    if upgrade is not None:
        data = upgrade(data)
    variant = getattr(cls, "variant", None)
    if variant is not None:
        cls = variant(data, path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _unknown_key(path, key, list(fields))
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in data:
            raise ConfigError(f"{_join(path, name)}: missing required key", _join(path, name))
    hints = _hints(cls)
    kwargs = {name: _convert(hints[name], value, _join(path, name)) for name, value in data.items()}
    for name in fields.keys() - data.keys():
        if hasattr(hints[name], "variant"):  # a default section still picks its variant
            kwargs[name] = from_dict(hints[name], {}, _join(path, name))
    obj = cls(**kwargs)
    _check_values(obj, path)
    return obj


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML file (None = all defaults) and apply `key.sub=value` command-line overrides."""
    return with_overrides({} if path is None else _read_yaml(Path(path)), overrides)


def with_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> Config:
    """The config of nested mappings `data` (left unchanged) with `key.sub=value` overrides."""
    data = copy.deepcopy(dict(data))
    for item in overrides:
        _apply_override(data, item)
    return from_dict(Config, data)


def validate(cfg: T) -> T:
    """`cfg` checked again like a loaded one (a config built with `dataclasses.replace` skips
    the checks); a ConfigError names the first problem."""
    return from_dict(type(cfg), to_dict(cfg))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a config dataclass to plain dicts, lists and scalars that YAML and JSON can store."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config as YAML that `load_config` reads back to an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None))


def describe(cls: type = Config) -> str:
    """Render every dotted key with its type, allowed range, default and documentation."""
    rows = [("key", "type", "default", "description"), *_describe_rows(cls, "")]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a dataclass (cached: they never change)."""
    return get_type_hints(cls)


def _join(path: str, key: Any) -> str:
    """Dotted key of `key` inside section `path`."""
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    """Short repr of an offending value together with its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    """Readable name of a type annotation, e.g. `list[list[int]] | None`."""
    if tp is type(None):
        return "None"
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _unknown_key(path: str, key: Any, valid: list[str]) -> ConfigError:
    """Error for a key that is not in the schema, listing valid keys and a likely intended one."""
    where = f" in '{path}'" if path else ""
    message = f"unknown config key '{_join(path, key)}'; valid keys{where}: {', '.join(valid)}"
    guess = difflib.get_close_matches(str(key), valid, n=1)
    if guess:
        message += f" (did you mean '{guess[0]}'?)"
    return ConfigError(message, _join(path, key))


def _type_error(path: str, tp: Any, value: Any) -> ConfigError:
    """Error for a value of the wrong type."""
    return ConfigError(f"{path}: expected {_type_name(tp)}, got {_show(value)}", path)


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against annotation `tp` and return it in canonical form."""
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{path}: expected one of {allowed}, got {_show(value)}", path)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path)
    if origin is list or origin is tuple or tp in (list, tuple):
        return _convert_sequence(tp, value, path)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _type_error(path, tp, value)
        item = args[1] if args else Any
        return {k: _convert(item, v, _join(path, k)) for k, v in value.items()}
    return _convert_scalar(tp, value, path)


def _convert_union(tp: Any, value: Any, path: str) -> Any:
    """Convert to the first matching member of a union such as `X | None`."""
    options = get_args(tp)
    if value is None and type(None) in options:
        return None
    members = [option for option in options if option is not type(None)]
    errors = []
    for option in members:
        try:
            return _convert(option, value, path)
        except ConfigError as err:
            errors.append(err)
    if len(members) == 1 and errors[0].key != path:
        raise errors[0]
    raise _type_error(path, tp, value)


def _convert_sequence(tp: Any, value: Any, path: str) -> Any:
    """Convert a YAML sequence to `list[T]`, `tuple[T, ...]` or a fixed-length tuple."""
    if not isinstance(value, (list, tuple)):
        raise _type_error(path, tp, value)
    args = get_args(tp)
    if get_origin(tp) is list or tp is list:
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        items = [args[0]] * len(value)
    elif args:
        if len(args) != len(value):
            raise _type_error(path, tp, value)
        items = list(args)
    else:
        items = [Any] * len(value)
    pairs = enumerate(zip(items, value, strict=True))
    return tuple(_convert(item, v, f"{path}[{i}]") for i, (item, v) in pairs)


def _convert_scalar(tp: Any, value: Any, path: str) -> Any:
    """Check a scalar strictly: bools are not numbers, ints are accepted as floats."""
    if tp is Any:
        return value
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)
    else:
        raise TypeError(f"{path}: unsupported config annotation {tp!r}")
    raise _type_error(path, tp, value)


def _range_text(metadata: Mapping[str, Any]) -> str:
    """Interval notation for a field's bounds, e.g. `[0, 1)`."""
    low = f"[{metadata['ge']}" if "ge" in metadata else f"({metadata.get('gt', '-inf')}"
    high = f"{metadata['le']}]" if "le" in metadata else f"{metadata.get('lt', 'inf')})"
    return f"{low}, {high}"


def _out_of_bounds(value: Any, path: str, metadata: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield (key, number) for every number in `value` (recursing into lists) outside the bounds."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _out_of_bounds(item, f"{path}[{i}]", metadata)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        checks = [op(value, metadata[name]) for name, op in _BOUNDS.items() if name in metadata]
        if not all(checks):
            yield path, value


def _check_values(obj: Any, path: str) -> None:
    """Check the bounds of every field of one section, then its cross-field rules."""
    for f in dataclasses.fields(obj):
        key = _join(path, f.name)
        for where, number in _out_of_bounds(getattr(obj, f.name), key, f.metadata):
            allowed = _range_text(f.metadata)
            raise ConfigError(f"{where}: expected a value in {allowed}, got {number}", where)
    problems = getattr(obj, "problems", None)
    for name, problem in problems() if callable(problems) else ():
        raise ConfigError(f"{_join(path, name)}: {problem}", _join(path, name))


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and unreadable ones (`read_yaml`: syntax,
    duplicate keys, bytes that are not UTF-8, a directory) into ConfigErrors."""
    try:
        data = read_yaml(path)
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except YamlFileError as err:
        raise ConfigError(str(err)) from None
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; give at least the keys that differ from "
            "the defaults (see --help-config)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at top level, got {_show(data)}")
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    """Set `key.sub=value` (value parsed as YAML) inside nested dict `data`."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"bad override {item!r}: expected key=value, e.g. agent.lr=0.001")
    try:
        value = parse_yaml(raw, f"override {item!r}") if raw.strip() else ""
    except YamlFileError as err:
        raise ConfigError(str(err)) from None
    *sections, leaf = key.split(".")
    node = data
    for depth, name in enumerate(sections):
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        elif not isinstance(child, dict):
            section = ".".join(sections[: depth + 1])
            raise ConfigError(f"override {item!r}: '{section}' is not a section", section)
        node = child
    node[leaf] = value


def _plain(value: Any) -> Any:
    """Recursively turn dataclasses and tuples into dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _default_text(f: dataclasses.Field) -> str:
    """A field's default as JSON, or `required` when it has none."""
    if f.default is not dataclasses.MISSING:
        return json.dumps(_plain(f.default))
    if f.default_factory is not dataclasses.MISSING:
        return json.dumps(_plain(f.default_factory()))
    return "required"


def _describe_rows(cls: type, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """Yield (key, type, default, doc) rows for a section and, recursively, its subsections."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key, tp, text = _join(prefix, f.name), hints[f.name], f.metadata.get("doc", "")
        if dataclasses.is_dataclass(tp):
            yield key, "section", "", text
            yield from _describe_rows(tp, key)
            if tp is WorldConfig:
                yield from _describe_worlds(key)
            continue
        kind = _type_name(tp)
        if any(name in f.metadata for name in _BOUNDS):
            kind += f" in {_range_text(f.metadata)}"
        yield key, kind, _default_text(f), text


def _describe_worlds(prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """Rows of every registered world's own keys (those beyond `WorldConfig`)."""
    base = {f.name for f in dataclasses.fields(WorldConfig)}
    for name in registered_worlds():
        section = world_entry(name).config
        yield f"{prefix} ({name})", "section", "", (section.__doc__ or "").split("\n")[0]
        for row in _describe_rows(section, prefix):
            if row[0].split(".")[-1] not in base:
                yield row
