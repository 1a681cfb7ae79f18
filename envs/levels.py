"""Internal levels of the foraging worlds: variables in [0, 1] that drift every step and change
when a resource is consumed, with an optional death outside a viable range.

`Levels` is a mixin: a world calls `setup_levels` once its `resource_names` and `device` are
set, draws initial levels with `draw_levels`, and moves them with `update_levels` every step.
`LevelsConfig` holds the config keys that go with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from numbers import Real
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from composable_rl.config import WorldConfig, doc
from envs.gridworld import check_names

PerVariable = float | Sequence[float] | Mapping[str, float]
InitialRange = Sequence[float] | Mapping[str, Sequence[float]] | None

DEFAULT_VARIABLES = ("energy", "hydration", "sodium")
# the viable range of every level (death outside it, with `death`), for worlds and configs alike
VIABLE_LOW, VIABLE_HIGH = 0.05, 1.0
# A meal is worth 25 steps of drift; one bite is small beside the distance from a setpoint to the
# edge of its band, so that a satiated agent that eats once by accident stays in its band.
DEFAULT_DRIFT: Mapping[str, float] = MappingProxyType(
    {"energy": -0.003, "hydration": -0.003, "sodium": -0.001}
)
DEFAULT_CONSUMPTION: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "food": MappingProxyType({"energy": 0.075}),
        "water": MappingProxyType({"hydration": 0.075}),
        "salt": MappingProxyType({"sodium": 0.1, "hydration": -0.02}),
    }
)


class Levels:
    """Internal levels `internal` [N, V] float32 named by `variable_names`: `drift` [V] and
    `consumption` [R, V] (one row per resource of `resource_names`) are plain tensors that may
    be edited at run time."""

    resource_names: list[str]
    device: torch.device
    internal: Tensor

    def setup_levels(
        self,
        *,
        variables: Sequence[str] = DEFAULT_VARIABLES,
        drift: PerVariable = DEFAULT_DRIFT,
        consumption: Mapping[str, Mapping[str, float]] = DEFAULT_CONSUMPTION,
        initial_levels: PerVariable = 0.5,
        initial_range: InitialRange = None,
        death: bool = False,
        viable_low: PerVariable = VIABLE_LOW,
        viable_high: PerVariable = VIABLE_HIGH,
    ) -> None:
        """Check and store the variables' dynamics, initial levels and viable range."""
        self.variable_names = check_names(variables, "variable")
        self.num_variables = len(self.variable_names)
        self.death = death
        self.drift = self._per_variable(drift, "drift", 0.0)
        self.consumption = torch.zeros(
            len(self.resource_names), self.num_variables, device=self.device
        )
        for name, row in consumption.items():
            if name not in self.resource_names:
                raise ValueError(f"consumption: unknown resource {name!r}; {self.resource_names}")
            self.consumption[self.resource_names.index(name)] = self._per_variable(
                row, f"consumption of {name}", 0.0
            )
        initial = self._per_variable(initial_levels, "initial_levels", 0.5).double()
        low, high = self._initial_bounds(initial, initial_range)
        self._initial_low, self._initial_span = low, high - low
        self.viable_low = self._per_variable(viable_low, "viable_low", VIABLE_LOW)
        self.viable_high = self._per_variable(viable_high, "viable_high", VIABLE_HIGH)
        if not bool((self.viable_low < self.viable_high).all()):
            raise ValueError("viable_low must be below viable_high for every variable")

    def _per_variable(self, value: PerVariable, what: str, fill: float) -> Tensor:
        """float32 [V] from a number (all variables), a sequence (in order) or a mapping by
        name (unnamed variables get `fill`)."""
        names = self.variable_names
        if isinstance(value, Real):
            values = [float(value)] * len(names)
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(f"{what}: unknown variable {unknown[0]!r}; variables: {names}")
            values = [float(value.get(name, fill)) for name in names]
        else:
            values = [float(v) for v in value]
            if len(values) != len(names):
                raise ValueError(f"{what} needs {len(names)} values (one per {names})")
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _initial_bounds(self, initial: Tensor, spec: InitialRange) -> tuple[Tensor, Tensor]:
        """Per-variable (low, high) float64 [V] of the initial levels, checked within [0, 1]."""
        low, high = initial.clone(), initial.clone()
        if spec is not None:
            pairs = spec if isinstance(spec, Mapping) else dict.fromkeys(self.variable_names, spec)
            for name, pair in pairs.items():
                if name not in self.variable_names or len(pair) != 2:
                    raise ValueError(
                        f"initial_range: need [low, high] per variable of {self.variable_names},"
                        f" got {name!r}: {pair!r}"
                    )
                i = self.variable_names.index(name)
                low[i], high[i] = float(pair[0]), float(pair[1])
        if not bool(((low >= 0) & (low <= high) & (high <= 1)).all()):
            raise ValueError("initial levels and ranges must satisfy 0 <= low <= high <= 1")
        return low, high

    def draw_levels(self, uniform: Tensor) -> Tensor:
        """Initial levels float32 [B, V] from uniforms [B, V] in [0, 1)."""
        return (self._initial_low + self._initial_span * uniform).float()

    def update_levels(self, consumed: Tensor) -> Tensor:
        """One step of the levels: x <- clamp(x + drift + consumption[r], 0, 1) with r the
        resource consumed (consumed [N] long, -1 none); returns died [N] (always False without
        `death`): some level strictly outside [viable_low, viable_high]."""
        eaten = consumed >= 0
        delta = torch.where(eaten[:, None], self.consumption[consumed.clamp(min=0)], 0.0)
        self.internal = (self.internal + self.drift + delta).clamp(0.0, 1.0)
        outside = (self.internal < self.viable_low) | (self.internal > self.viable_high)
        return outside.any(1) if self.death else torch.zeros_like(eaten)

    def set_levels(
        self,
        levels: float | Sequence[float] | Tensor | Mapping[str, float],
        mask: Tensor | None = None,
    ) -> None:
        """Force internal levels in [0, 1] (all slots, or those of mask [N]): a number, [V] or
        [N, V] values, or a mapping that sets only the variables it names."""
        if isinstance(levels, Mapping):
            unknown = sorted(set(levels) - set(self.variable_names))
            if unknown:
                raise ValueError(f"unknown variable {unknown[0]!r}; {self.variable_names}")
            target = self.internal.clone()
            for name, value in levels.items():
                target[:, self.variable_names.index(name)] = float(value)
        else:
            value = torch.as_tensor(levels, dtype=torch.float32, device=self.device)
            if value.dim() > 2 or value.shape[-1:] not in ((), (self.num_variables,)):
                raise ValueError(
                    f"levels must be a number, [V] or [N, V], got {tuple(value.shape)}"
                )
            target = value.expand_as(self.internal).clone()
        if not bool(((target >= 0) & (target <= 1)).all()):
            raise ValueError("internal levels must lie in [0, 1]")
        self.internal = (
            target if mask is None else torch.where(mask[:, None], target, self.internal)
        )

    def set_consumption(self, resource: str, variable: str, delta: float) -> None:
        """Change at run time how much consuming `resource` changes `variable`."""
        if resource not in self.resource_names or variable not in self.variable_names:
            raise ValueError(
                f"unknown resource {resource!r} or variable {variable!r}; resources "
                f"{self.resource_names}, variables {self.variable_names}"
            )
        r, v = self.resource_names.index(resource), self.variable_names.index(variable)
        self.consumption[r, v] = float(delta)


@dataclasses.dataclass
class LevelsConfig(WorldConfig):
    """The internal-levels keys of a foraging world's section. A null value keeps the world's
    default."""

    drift: dict[str, float] | None = doc(
        None,
        "Change of each internal variable per step; null = energy and hydration -0.003, "
        "sodium -0.001.",
    )
    consumption: dict[str, dict[str, float]] | None = doc(
        None,
        "Per resource, the change of each variable when it is consumed; null = food "
        "energy +0.075, water hydration +0.075, salt sodium +0.1 and hydration -0.02.",
    )
    initial_range: list[float] = doc(
        [0.1, 0.9], "Every level starts uniform in [low, high].", ge=0, le=1
    )
    death: bool = doc(False, "End an episode when a level leaves [viable_low, viable_high].")
    viable_low: float = doc(VIABLE_LOW, "Death below this level (with death).", ge=0, le=1)
    viable_high: float = doc(VIABLE_HIGH, "Death above this level (with death).", ge=0, le=1)

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        if len(self.initial_range) != 2 or self.initial_range[0] > self.initial_range[1]:
            yield "initial_range", f"expected [low, high], got {self.initial_range}"
        if self.viable_low >= self.viable_high:
            yield "viable_low", f"must be below viable_high ({self.viable_high})"

    def levels_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `Levels.setup_levels` that this section sets."""
        kwargs: dict[str, Any] = {
            "initial_range": tuple(self.initial_range),
            "death": self.death,
            "viable_low": self.viable_low,
            "viable_high": self.viable_high,
        }
        for key in ("drift", "consumption"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs
