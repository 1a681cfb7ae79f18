"""Homeostatic control: batched PID drives over internal variables, and value programs.

Internal variables x [N, V] (N envs, V variables such as energy, hydration and sodium, in [0, 1])
are held near setpoints x*. The error e = x* - x (positive = a need) feeds one discrete-time PID
per env and variable, in units of one env step, giving drives u [N, V]; a value program maps the
drives to head weights w [N, K] with linear expressions (`expressions`). The heads never
see x, so moving a setpoint revalues them zero-shot. `drive_reduction_reward` is the reward of
the Keramati & Gutkin (2014) baseline, which has to be retrained when a setpoint moves.

PID, per env and variable (clip(v, L) clamps v to [-L, L]):

    e'  = sign(e) * max(|e| - dead_band, 0)           dead-zoned error
    I_t = clip(I_{t-1} + ki * e', integral_limit)     integral term, in drive units
    u_t = clip(kp * e' + I_t + kd * (x_{t-1} - x_t), output_limit)

- Derivative on the measurement: the D term sees x_{t-1} - x_t, not the change of e, so a setpoint
  step gives no derivative kick.
- Anti-windup, both ways: the integral term is clamped to +-integral_limit, and it is held
  (conditional integration) on a step whose output saturates at +-output_limit while e' pushes
  further into saturation.
- Dead band (satisficing): while |e| <= dead_band (with dead_band > 0) the drive is exactly 0 and
  the integral term is held, neither growing nor cleared, so that a bias learned against a steady
  leak is still there when x leaves the band. Outside the band the P and I terms see e', so the
  drive rises continuously from 0 instead of jumping at the band edge.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from composable_rl.config import ConfigError, doc, from_dict
from composable_rl.languages import expressions
from composable_rl.languages.ltl import Junction, Prop, Temporal, parse_ltl
from composable_rl.languages.tokens import NAME, ExpressionError
from composable_rl.languages.yaml_file import YamlFileError, read_yaml
from composable_rl.maths.functional import compose_linear
from composable_rl.maths.levers import Quantile, shielded
from composable_rl.maths.operators import weighted_max

__all__ = [
    "DriveSpec",
    "Drives",
    "HomeostaticController",
    "PIDParams",
    "ValueProgram",
    "ValueProgramError",
    "drive_reduction_reward",
    "homeostatic_drive",
    "in_band_fraction",
    "integrated_abs_error",
    "load_value_program",
    "overshoot",
    "pid_step",
    "rise_time",
    "settling_time",
]


class ValueProgramError(ConfigError):
    """An invalid value program (a ValueError); `key` is the dotted path of the culprit."""


@dataclasses.dataclass(frozen=True)
class DriveSpec:
    """One internal variable of a value program: its setpoint, viable band and PID gains."""

    setpoint: float = doc(dataclasses.MISSING, "Target level x* of the variable.")
    band: tuple[float, float] = doc((0.0, 1.0), "Viable range [low, high]; holds the setpoint.")
    kp: float = doc(1.0, "Proportional gain.", ge=0)
    ki: float = doc(0.0, "Integral gain (per step).", ge=0)
    kd: float = doc(0.0, "Derivative gain, on the measurement (per step).", ge=0)
    dead_band: float = doc(0.0, "|x* - x| up to which the drive is exactly 0; 0 = none.", ge=0)
    integral_limit: float = doc(
        1.0, "Bound on the integral term, in drive units (anti-windup); .inf = none.", ge=0
    )
    output_limit: float | None = doc(
        None, "Bound on |drive|; saturation also holds the integral. null = no clip.", gt=0
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for the rules that tie the setpoint to the band."""
        low, high = self.band
        if not low < high:
            yield "band", f"expected [low, high] with low < high, got [{low}, {high}]"
        elif not low <= self.setpoint <= high:
            yield "setpoint", f"{self.setpoint} is outside the band [{low}, {high}]"


@dataclasses.dataclass(frozen=True)
class _ProgramFile:
    """The keys of a value-program file, as written."""

    variables: dict[str, DriveSpec] = doc(
        dataclasses.MISSING, "Internal variables by name, in the order of the columns of x."
    )
    weights: dict[str, str] = doc(
        dataclasses.MISSING, "Per head, a linear expression over the drives (variable names)."
    )
    combine: Literal["max", "sum"] = doc(
        "max",
        "How weighted heads make one Q: max (max over wanted heads of w_k Q_k plus the "
        "unwanted ones' w_k Q_k, operators.weighted_max) or sum (sum_k w_k Q_k).",
    )
    quantile: float | None = doc(
        None,
        "Act with the q-quantiliser of the composed Q (composable_rl.maths.levers), q in [0, 1]: "
        "1 is the base policy, 0 greedy; null = sample at the agent's temperature.",
        ge=0,
        le=1,
    )
    quantile_base: str | None = doc(
        None, "The head whose soft policy is the quantiliser's base; null = uniform actions."
    )
    constraints: list[str] = doc(
        [],
        "Safety formulas `G !p` or `G !(p | q)`, p a cost head (-1 per violation), enforced "
        "as a shield on the composed values: an action is masked where a constraint head "
        "expects a violation after it that its safest action avoids.",
    )
    shield_threshold: float = doc(
        0.5, "How far below its safest action a constraint head may value an action.", gt=0
    )


@dataclasses.dataclass(frozen=True)
class PIDParams:
    """PID parameters, each a tensor broadcastable to [N, V]; output_limit = inf means no clip."""

    setpoint: Tensor
    kp: Tensor
    ki: Tensor
    kd: Tensor
    dead_band: Tensor
    integral_limit: Tensor
    output_limit: Tensor


def pid_step(
    params: PIDParams, x: Tensor, x_prev: Tensor, integral: Tensor
) -> tuple[Tensor, Tensor]:
    """One PID step for every env and variable: (drive u, next integral term), both [N, V]."""
    error = params.setpoint - x
    slack = error.abs() - params.dead_band
    inside = (params.dead_band > 0) & (slack <= 0)
    shrunk = torch.sign(error) * slack.clamp_min(0)
    pd = params.kp * shrunk + params.kd * (x_prev - x)
    limit = params.integral_limit
    trial = (integral + params.ki * shrunk).clamp(-limit, limit)
    raw = pd + trial
    saturated = (raw.abs() > params.output_limit) & (raw * shrunk > 0)
    integral = torch.where(inside | saturated, integral, trial)
    drive = (pd + integral).clamp(-params.output_limit, params.output_limit)
    return drive.masked_fill(inside, 0.0), integral


class Drives:
    """Batched PID drives of N envs x V named variables, with per-env parameters and state."""

    def __init__(self, names: Sequence[str], num_envs: int, params: PIDParams) -> None:
        self.names = tuple(names)
        shape = (num_envs, len(self.names))
        self.params = PIDParams(
            **{
                f.name: getattr(params, f.name).expand(shape).clone()
                for f in dataclasses.fields(PIDParams)
            }
        )
        setpoint = self.params.setpoint
        self._integral = torch.zeros_like(setpoint)
        self._x_prev = torch.zeros_like(setpoint)
        self._fresh = torch.ones(num_envs, dtype=torch.bool, device=setpoint.device)

    @classmethod
    def from_specs(
        cls,
        specs: Mapping[str, DriveSpec],
        num_envs: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Drives:
        """Drives with every env sharing the setpoints and gains of a value program."""

        def column(name: str) -> Tensor:
            values = [getattr(spec, name) for spec in specs.values()]
            values = [float("inf") if v is None else v for v in values]
            return torch.tensor(values, dtype=dtype, device=device)

        params = PIDParams(**{f.name: column(f.name) for f in dataclasses.fields(PIDParams)})
        return cls(list(specs), num_envs, params)

    @property
    def integral(self) -> Tensor:
        """Integral terms [N, V], in drive units (read-only view for logging and tests)."""
        return self._integral

    def step(self, x: Tensor, reset_mask: Tensor | None = None) -> Tensor:
        """Drives u [N, V] for levels x [N, V]; envs in reset_mask [N] start afresh first.

        A fresh env (new, or reset) has a zero integral term and no previous measurement, so its
        derivative term is 0 on this step.
        """
        if x.shape != self.params.setpoint.shape:
            raise ValueError(
                f"levels must be {list(self.params.setpoint.shape)}, got {list(x.shape)}"
            )
        fresh = self._fresh if reset_mask is None else self._fresh | reset_mask
        fresh = fresh.unsqueeze(-1)
        x_prev = torch.where(fresh, x, self._x_prev)
        integral = self._integral.masked_fill(fresh, 0.0)
        drive, self._integral = pid_step(self.params, x, x_prev, integral)
        self._x_prev = x.detach().clone()
        self._fresh.fill_(False)
        return drive

    def set_setpoint(
        self, variable: str, value: float | Tensor, env_mask: Tensor | None = None
    ) -> None:
        """Move one variable's setpoint at run time, in every env or in those of env_mask [N]."""
        if variable not in self.names:
            raise ValueError(f"unknown variable {variable!r}; variables: {', '.join(self.names)}")
        column = self.params.setpoint[:, self.names.index(variable)]
        value = torch.as_tensor(value, dtype=column.dtype, device=column.device)
        column.copy_(
            value.expand_as(column) if env_mask is None else torch.where(env_mask, value, column)
        )


@dataclasses.dataclass(frozen=True)
class ValueProgram:
    """A validated value program: drives per variable, a linear weight per head, the rule
    (`combine`: max or sum) that turns the weighted heads into one Q, and the quantiliser that
    acts on it (None: the agent's Boltzmann sampling)."""

    variables: dict[str, DriveSpec]
    heads: tuple[str, ...]
    weights: dict[str, expressions.Expr]
    combine: str = "max"
    quantile: Quantile | None = None
    constraints: tuple[int, ...] = ()
    shield_threshold: float = 0.5

    @property
    def setpoints(self) -> tuple[float, ...]:
        """Setpoints in the order of the variables."""
        return tuple(spec.setpoint for spec in self.variables.values())

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Variable names in the order of the columns of x and u."""
        return tuple(self.variables)

    def head_weights(self, drives: Tensor) -> Tensor:
        """Head weights [..., K] (order of `heads`) from drives [..., V]; unlisted heads get 0."""
        values = {name: drives[..., i] for i, name in enumerate(self.variables)}
        zero = drives.new_zeros(drives.shape[:-1])
        columns = [
            expressions.evaluate(self.weights[h], values) if h in self.weights else zero
            for h in self.heads
        ]
        return torch.stack(columns, dim=-1)

    def compose(self, q: Tensor, weights: Tensor) -> Tensor:
        """One Q [N, A] from head values q [N, K, A] and head weights [N, K], by `combine`."""
        if self.combine == "max":
            return weighted_max(q, weights)
        return compose_linear(q, weights.to(q.dtype))

    def shield(self, q: Tensor, composed: Tensor) -> Tensor:
        """The composed values [N, ..., A] with the actions the constraint heads of head values
        q [N, K, ..., A] mask set to -inf (unchanged without constraints)."""
        if not self.constraints:
            return composed
        costs = q[:, list(self.constraints)].movedim(1, -2)
        return shielded(composed, costs, self.shield_threshold)

    @property
    def bands(self) -> Tensor:
        """Viable bands [V, 2] of [low, high], in the order of the variables."""
        return torch.tensor([spec.band for spec in self.variables.values()])

    def in_band(self, x: Tensor) -> Tensor:
        """Bool [..., V]: which levels lie inside their viable band."""
        low, high = self.bands.to(dtype=x.dtype, device=x.device).unbind(-1)
        return (x >= low) & (x <= high)


def load_value_program(
    source: str | Path | Mapping[str, Any], head_names: Sequence[str]
) -> ValueProgram:
    """Read a value program from a YAML file or a mapping and check it against the heads."""
    where = "value program" if isinstance(source, Mapping) else f"value program {source}"
    data = source if isinstance(source, Mapping) else _read_yaml(Path(source), where)
    try:
        spec = from_dict(_ProgramFile, data)
    except ConfigError as err:
        raise ValueProgramError(f"{where}: {err}", err.key) from None
    heads, variables = tuple(head_names), tuple(spec.variables)
    if not variables:
        raise ValueProgramError(f"{where}: variables: needs at least one variable", "variables")
    for name in variables:
        if not NAME.fullmatch(name):
            key = f"variables.{name}"
            raise ValueProgramError(f"{where}: {key}: variable names must be identifiers", key)
    weights = {}
    for head, text in spec.weights.items():
        key = f"weights.{head}"
        if head not in heads:
            message = f"{key}: unknown head {head!r}; heads: {', '.join(heads)}"
            raise ValueProgramError(f"{where}: {message}", key)
        weights[head] = _parse_checked(text, variables, "variable", key, where)
        if not expressions.is_linear(weights[head]):
            message = f"{key}: must be linear (a weighted sum of drives), got {text!r}"
            raise ValueProgramError(f"{where}: {message}", key)
    if spec.quantile_base is not None and spec.quantile is None:
        message = "quantile_base: names the quantiliser's base policy; give quantile too"
        raise ValueProgramError(f"{where}: {message}", "quantile_base")
    if spec.quantile_base is not None and spec.quantile_base not in heads:
        message = f"quantile_base: unknown head {spec.quantile_base!r}; heads: {', '.join(heads)}"
        raise ValueProgramError(f"{where}: {message}", "quantile_base")
    quantile = None if spec.quantile is None else Quantile(spec.quantile, spec.quantile_base)
    if spec.constraints and quantile is not None:
        message = "constraints: the shield does not combine with quantile yet; give one of them"
        raise ValueProgramError(f"{where}: {message}", "constraints")
    constraints = [
        head
        for i, text in enumerate(spec.constraints)
        for head in _constraint_heads(text, heads, f"constraints[{i}]", where)
    ]
    return ValueProgram(
        dict(spec.variables),
        heads,
        weights,
        spec.combine,
        quantile,
        tuple(sorted(set(constraints))),
        spec.shield_threshold,
    )


def _constraint_heads(text: str, heads: Sequence[str], key: str, where: str) -> list[int]:
    """The indices of the cost heads of a safety formula `G !p` or `G !(p | q ...)`."""
    try:
        formula = parse_ltl(text, heads)
    except ExpressionError as err:
        raise ValueProgramError(f"{where}: {key}: {err}", key) from None
    body = formula.body if isinstance(formula, Temporal) and formula.op == "G" else None
    props = body.args if isinstance(body, Junction) and body.op == "&" else (body,)
    if not all(isinstance(p, Prop) and not p.positive for p in props):
        message = f"{key}: a constraint reads `G !p` or `G !(p | q)` over heads, got {text!r}"
        raise ValueProgramError(f"{where}: {message}", key)
    return [heads.index(p.name) for p in props]


def _read_yaml(path: Path, where: str) -> Any:
    """A YAML document, with missing files and unreadable ones (`read_yaml`) as
    ValueProgramErrors."""
    try:
        return read_yaml(path)
    except FileNotFoundError:
        raise ValueProgramError(f"{where}: file not found") from None
    except YamlFileError as err:
        raise ValueProgramError(str(err)) from None


def _parse_checked(
    text: str, known: Sequence[str], kind: str, key: str, where: str
) -> expressions.Expr:
    """Parse an expression whose names must be in `known`; errors keep the parser's caret."""
    try:
        tree = expressions.parse(text)
        unknown = sorted(expressions.head_names(tree) - set(known))
        if unknown:
            position = re.search(rf"\b{unknown[0]}\b", text).start()
            reason = f"unknown {kind} {unknown[0]!r}; {kind}s: {', '.join(known)}"
            raise ExpressionError(reason, text, position)
    except ExpressionError as err:
        raise ValueProgramError(f"{where}: {key}: {err}", key) from None
    return tree


class HomeostaticController:
    """Steps the drives of a value program for N envs and maps them to head weights [N, K].

    For logging it keeps the last levels x, drives u and head weights w. The tag
    `homeostasis/<var>/weight` is the variable's drive u_i: its weight in the value program,
    equal to the weight of the head it drives when each head reads one variable (default.yaml).
    """

    def __init__(
        self,
        program: ValueProgram,
        num_envs: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.program = program
        self.drives = Drives.from_specs(program.variables, num_envs, device=device, dtype=dtype)
        self.levels = torch.zeros_like(self.drives.params.setpoint)
        self.last_drives = torch.zeros_like(self.levels)
        self.last_weights = self.levels.new_zeros(num_envs, len(program.heads))

    def weights(self, x: Tensor, reset_mask: Tensor | None = None) -> Tensor:
        """Step the PIDs on levels x [N, V] and return the head weights [N, K]."""
        self.last_drives = self.drives.step(x, reset_mask)
        self.levels = x.detach().clone()
        self.last_weights = self.program.head_weights(self.last_drives)
        return self.last_weights

    def tags(self) -> dict[str, Tensor]:
        """`homeostasis/<var>/level` and `/weight` (drive), means over envs as 0-d tensors."""
        levels, drives = self.levels.mean(0), self.last_drives.mean(0)
        tags = {}
        for i, name in enumerate(self.program.variable_names):
            tags[f"homeostasis/{name}/level"] = levels[i]
            tags[f"homeostasis/{name}/weight"] = drives[i]
        return tags


def in_band_fraction(in_band: Tensor, alive: Tensor) -> Tensor:
    """Per env, the fraction of steps alive with every level in its band: in_band [T, N, V] bool
    (`ValueProgram.in_band`), alive [T, N] bool -> [N] (a dead step counts as out of band)."""
    return (in_band.all(-1) & alive).float().mean(0)


def settling_time(x: Tensor, target: float, tol: float) -> Tensor:
    """Per env, steps until x [T, N] enters target +- tol for good -> [N] long (T = never)."""
    outside = (x - target).abs() > tol
    steps = torch.arange(1, x.shape[0] + 1, device=x.device)[:, None]
    return (outside.long() * steps).amax(0)


def rise_time(x: Tensor, target: float, tol: float) -> Tensor:
    """Per env, steps before x [T, N] first comes within target +- tol -> [N] long (T = never)."""
    inside = (x - target).abs() <= tol
    return torch.where(inside.any(0), inside.long().argmax(0), x.shape[0])


def overshoot(x: Tensor, target: float, up: bool = True) -> Tensor:
    """Per env, how far x [T, N] goes past the target in the direction of a step -> [N] (>= 0)."""
    past = x - target if up else target - x
    return past.clamp(min=0).amax(0)


def integrated_abs_error(x: Tensor, target: float) -> Tensor:
    """Per env, sum over steps of |target - x| for x [T, N] -> [N]."""
    return (target - x).abs().sum(0)


def homeostatic_drive(x: Tensor, setpoint: Tensor, n: float = 4.0, m: float = 2.0) -> Tensor:
    """Keramati & Gutkin's drive D(x) = (sum_i |x*_i - x_i|^n)^(1/m) over the last axis.

    The paper asks for n > m > 1: D then grows faster than linearly with the deficit, so the same
    intake is worth more to a more deprived agent. The defaults n = 4, m = 2 satisfy it.
    """
    return (setpoint - x).abs().pow(n).sum(-1).pow(1.0 / m)


def drive_reduction_reward(
    x_t: Tensor, x_tp1: Tensor, setpoint: Tensor, n: float = 4.0, m: float = 2.0
) -> Tensor:
    """Homeostatic reward r_t = D(x_t) - D(x_{t+1}) [...]: positive when a step nears x*."""
    return homeostatic_drive(x_t, setpoint, n, m) - homeostatic_drive(x_tp1, setpoint, n, m)
