"""Homeostatic control: PID drives on toy plants, value programs, batching, drive reduction."""

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.homeostasis import (
    Drives,
    DriveSpec,
    HomeostaticController,
    PIDParams,
    ValueProgramError,
    drive_reduction_reward,
    homeostatic_drive,
    load_value_program,
)
from composable_rl.maths.levers import Quantile

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "values" / "default.yaml"
HEADS = ["food", "water", "salt"]
PROGRAM = {
    "variables": {
        "energy": {"setpoint": 0.6, "band": [0.3, 0.9], "kp": 4.0, "ki": 0.02, "dead_band": 0.05},
        "hydration": {"setpoint": 0.6, "band": [0.3, 0.9], "kp": 4.0, "ki": 0.02},
        "sodium": {"setpoint": 0.5, "band": [0.3, 0.7], "kp": 4.0, "ki": 0.02, "kd": 0.5},
    },
    "weights": {"food": "energy", "water": "hydration - 0.5*energy", "salt": "sodium"},
}


def one_drive(**spec: float | None) -> Drives:
    """A single variable's drive for one env, in float64."""
    return Drives.from_specs({"x": DriveSpec(**spec)}, 1, dtype=torch.float64)


def plant(
    drives: Drives,
    x0: float,
    steps: int,
    *,
    blocked: int = 0,
    actuator: float = float("inf"),
    dt: float = 0.1,
    leak: float = 0.2,
) -> list[float]:
    """Levels of the toy plant x <- clip(x + dt*(a - leak), 0, 1), a = clip(u, actuator).

    The actuator does nothing for the first `blocked` steps (no food in reach).
    """
    x, levels = torch.tensor([[x0]], dtype=torch.float64), []
    for t in range(steps):
        u = drives.step(x)
        action = torch.zeros_like(u) if t < blocked else u.clamp(-actuator, actuator)
        x = (x + dt * (action - leak)).clamp(0.0, 1.0)
        levels.append(x.item())
    return levels


def settling_step(levels: list[float], target: float, tolerance: float) -> int:
    """First step from which every level stays within tolerance of target."""
    outside = [t for t, level in enumerate(levels) if abs(level - target) > tolerance]
    return outside[-1] + 1 if outside else 0


def test_step_response_settles_at_the_setpoint():
    levels = plant(one_drive(setpoint=0.6, kp=2.0, ki=0.05), 0.2, 300)
    assert settling_step(levels, 0.6, 0.01) <= 100
    assert max(levels) <= 0.6 + 0.01
    # Without the integral term the leak leaves a steady offset leak / kp = 0.1.
    p_only = plant(one_drive(setpoint=0.6, kp=2.0), 0.2, 300)
    assert p_only[-1] == pytest.approx(0.5, abs=1e-6)


def test_integral_limit_prevents_windup():
    def overshoot(integral_limit: float) -> float:
        spec = {"setpoint": 0.5, "kp": 2.0, "ki": 0.05, "integral_limit": integral_limit}
        return max(plant(one_drive(**spec), 0.5, 600, blocked=300)[300:]) - 0.5

    assert overshoot(float("inf")) > 0.4  # wound up: drives the level to the top of its range
    assert overshoot(0.5) < 0.15


def test_conditional_integration_prevents_windup_when_the_output_saturates():
    def overshoot(output_limit: float | None) -> float:
        spec = {"setpoint": 0.5, "kp": 2.0, "ki": 0.05, "integral_limit": float("inf")}
        drives = one_drive(output_limit=output_limit, **spec)
        return max(plant(drives, 0.5, 600, blocked=300, actuator=1.0)[300:]) - 0.5

    assert overshoot(None) > 0.4  # the controller does not know the actuator saturates
    assert overshoot(1.0) < 0.05


def test_derivative_on_measurement_gives_no_kick_on_a_setpoint_step():
    drives = one_drive(setpoint=0.5, kp=1.0, kd=5.0)
    x = torch.tensor([[0.4]], dtype=torch.float64)
    before = [drives.step(x).item() for _ in range(3)]
    drives.set_setpoint("x", 0.8)
    after = drives.step(x).item()
    assert before == pytest.approx([0.1, 0.1, 0.1])
    assert after == pytest.approx(0.4)  # only kp * the new error; kd * 0.3 would add 1.5
    assert drives.step(x - 0.1).item() == pytest.approx(0.5 + 5.0 * 0.1)  # D sees x moving


def test_dead_band_gives_exactly_zero_drive_and_holds_the_integral():
    drives = one_drive(setpoint=0.5, kp=2.0, ki=0.1, dead_band=0.05)
    for level in (0.451, 0.47, 0.5, 0.53, 0.549):
        assert drives.step(torch.tensor([[level]], dtype=torch.float64)).item() == 0.0
    assert drives.integral.item() == 0.0
    just_outside = drives.step(torch.tensor([[0.449]], dtype=torch.float64)).item()
    assert just_outside == pytest.approx((2.0 + 0.1) * 0.001)
    held = drives.integral.item()
    assert drives.step(torch.tensor([[0.5]], dtype=torch.float64)).item() == 0.0
    assert drives.integral.item() == held


def test_dead_band_gives_zero_head_weight_and_a_need_outside_it_does_not():
    program = load_value_program(DEFAULT, HEADS)
    controller = HomeostaticController(program, 2)
    x = torch.tensor([[0.41, 0.6, 0.5], [0.37, 0.6, 0.5]])
    weights = controller.weights(x)
    assert weights[0].tolist() == [0.0, 0.0, 0.0]
    assert weights[1, 0] > 0 and weights[1, 1:].tolist() == [0.0, 0.0]


def test_setpoint_change_at_run_time_moves_the_equilibrium():
    drives = one_drive(setpoint=0.6, kp=2.0, ki=0.05)
    assert plant(drives, 0.6, 200)[-1] == pytest.approx(0.6, abs=1e-3)
    drives.set_setpoint("x", 0.4)
    assert plant(drives, 0.6, 300)[-1] == pytest.approx(0.4, abs=1e-3)


def test_set_setpoint_in_some_envs_only():
    controller = HomeostaticController(load_value_program(DEFAULT, HEADS), 3)
    controller.drives.set_setpoint("sodium", 0.2, env_mask=torch.tensor([False, True, False]))
    controller.drives.set_setpoint("energy", torch.tensor([0.7, 0.8, 0.9]))
    expected = torch.tensor([[0.7, 0.6, 0.5], [0.8, 0.6, 0.2], [0.9, 0.6, 0.5]])
    torch.testing.assert_close(controller.drives.params.setpoint, expected)
    with pytest.raises(ValueError, match="unknown variable 'salt'; variables: energy"):
        controller.drives.set_setpoint("salt", 0.1)


def test_sodium_above_setpoint_gives_negative_salt_weight():
    controller = HomeostaticController(load_value_program(DEFAULT, HEADS), 2)
    weights = controller.weights(torch.tensor([[0.4, 0.6, 0.65], [0.4, 0.6, 0.35]]))
    salt = HEADS.index("salt")
    assert weights[0, salt] < 0 < weights[1, salt]
    assert weights[:, HEADS.index("food")].tolist() == [0.0, 0.0]  # satiated: no food seeking


def test_value_program_maps_drives_linearly_and_unlisted_heads_get_zero():
    program = load_value_program(PROGRAM, [*HEADS, "hazard"])
    drives = torch.tensor([[0.2, 1.0, -0.4], [0.0, 0.3, 0.1]])
    expected = torch.tensor([[0.2, 0.9, -0.4, 0.0], [0.0, 0.3, 0.1, 0.0]])
    torch.testing.assert_close(program.head_weights(drives), expected)
    assert program.variable_names == ("energy", "hydration", "sodium")
    in_band = program.in_band(torch.tensor([[0.3, 0.95, 0.5]]))
    assert in_band.tolist() == [[True, False, True]]


def test_controller_tags_for_logging():
    controller = HomeostaticController(load_value_program(DEFAULT, HEADS), 2)
    controller.weights(torch.tensor([[0.4, 0.6, 0.5], [0.2, 0.6, 0.5]]))
    tags = controller.tags()
    assert set(tags) == {
        f"homeostasis/{v}/{k}" for v in PROGRAM["variables"] for k in ("level", "weight")
    }
    assert tags["homeostasis/energy/level"].item() == pytest.approx(0.3)
    drives = controller.last_drives[:, 0].mean()
    assert tags["homeostasis/energy/weight"].item() == pytest.approx(drives.item())


def test_combine_rules_compose_the_weighted_heads(tmp_path):
    q = torch.tensor([[[1.0, 5.0], [4.0, 0.0], [2.0, 2.0]]])  # [N=1, K=3, A=2]
    weights = torch.tensor([[2.0, 1.0, -0.5]])
    program = load_value_program(DEFAULT, HEADS)
    assert program.combine == "max"
    # wanted heads: max(2*[1, 5], 1*[4, 0]) = [4, 10]; unwanted salt: -0.5*[2, 2]
    assert program.compose(q, weights).tolist() == [[3.0, 9.0]]
    text = DEFAULT.read_text().replace("combine: max", "combine: sum")
    (tmp_path / "values.yaml").write_text(text)
    summed = load_value_program(tmp_path / "values.yaml", HEADS).compose(q, weights)
    assert summed.tolist() == [[5.0, 9.0]]


def _mutated(path: str, value: object) -> dict:
    """PROGRAM with the dotted key `path` set to value (None deletes it)."""
    data = copy.deepcopy(PROGRAM)
    *sections, leaf = path.split(".")
    node = data
    for name in sections:
        node = node[name]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "key", "fragments"),
    [
        ("variabels", {}, "variabels", ["valid keys: variables, weights, combine"]),
        ("variables.energy.gain", 1.0, "variables.energy.gain", ["setpoint", "dead_band"]),
        ("variables.energy.setpoint", None, "variables.energy.setpoint", ["missing"]),
        ("variables.energy.band", [0.9, 0.3], "variables.energy.band", ["low < high"]),
        ("variables.energy.band", [0.1, 0.5, 0.9], "variables.energy.band", ["expected"]),
        ("variables.sodium.setpoint", 0.8, "variables.sodium.setpoint", ["outside the band"]),
        ("variables.energy.kp", -1.0, "variables.energy.kp", ["[0, inf)"]),
        ("variables.hydration.ki", -0.1, "variables.hydration.ki", ["[0, inf)"]),
        ("variables.sodium.kd", -2.0, "variables.sodium.kd", ["[0, inf)"]),
        ("variables.energy.dead_band", -0.1, "variables.energy.dead_band", ["[0, inf)"]),
        ("variables", {}, "variables", ["at least one variable"]),
        ("weights.fod", "energy", "weights.fod", ["unknown head 'fod'", "food, water, salt"]),
        (
            "weights.salt",
            "sodum",
            "weights.salt",
            ["unknown variable 'sodum'", "energy, hydration, sodium", "\n  sodum\n  ^"],
        ),
        ("weights.food", "energy & hydration", "weights.food", ["must be linear"]),
        ("weights.food", "max(energy, sodium)", "weights.food", ["must be linear"]),
        ("weights.food", 0.5, "weights.food", ["expected str"]),
        ("weights.food", "energy +", "weights.food", ["end of expression", "^"]),
        ("combine", "mean", "combine", ["'max', 'sum'", "'mean'"]),
        ("quantile", 1.5, "quantile", ["1.5", "[0, 1]"]),
        ("quantile_base", "food", "quantile_base", ["give quantile too"]),
        ("constraints", ["G !lava"], "constraints[0]", ["unknown proposition 'lava'", "^"]),
        ("constraints", ["F !salt"], "constraints[0]", ["reads `G !p`", "'F !salt'"]),
        ("constraints", ["G salt"], "constraints[0]", ["reads `G !p`"]),
        ("constraints", ["G !salt | F food"], "constraints[0]", ["reads `G !p`"]),
        ("shield_threshold", 0.0, "shield_threshold", ["(0, inf)"]),
    ],
)
def test_value_program_errors_name_the_culprit(path, value, key, fragments):
    with pytest.raises(ValueProgramError) as info:
        load_value_program(_mutated(path, value), HEADS)
    assert isinstance(info.value, ValueError)
    assert info.value.key == key
    message = str(info.value)
    assert key in message
    for fragment in fragments:
        assert fragment in message


def test_a_value_program_may_quantilise_over_a_heads_soft_policy():
    program = load_value_program({**PROGRAM, "quantile": 0.2, "quantile_base": "water"}, HEADS)
    assert program.quantile == Quantile(0.2, "water")
    assert load_value_program(PROGRAM, HEADS).quantile is None
    with pytest.raises(ValueProgramError, match="quantile_base: unknown head 'fod'; heads: food"):
        load_value_program({**PROGRAM, "quantile": 0.2, "quantile_base": "fod"}, HEADS)


def test_constraints_name_cost_heads_and_the_shield_masks_what_they_forbid():
    program = load_value_program({**PROGRAM, "constraints": ["G !(salt | water)"]}, HEADS)
    assert program.constraints == (1, 2) and program.shield_threshold == 0.5
    # two envs, heads food, water, salt over three actions
    q = torch.tensor(
        [
            [[5.0, 4.0, 3.0], [0.0, -1.0, 0.0], [0.0, 0.0, -0.9]],  # actions 1, 2 break them
            [[5.0, 4.0, 3.0], [-2.0, -1.0, -3.0], [0.0, 0.0, 0.0]],  # only action 1 is least bad
        ]
    )
    composed = q[:, 0]
    shielded = program.shield(q, composed)
    assert shielded.tolist() == [[5.0, -torch.inf, -torch.inf], [-torch.inf, 4.0, -torch.inf]]
    assert load_value_program(PROGRAM, HEADS).shield(q, composed) is composed
    with pytest.raises(ValueProgramError, match="constraints: the shield does not combine"):
        load_value_program({**PROGRAM, "constraints": ["G !salt"], "quantile": 0.5}, HEADS)


def test_missing_value_program_file_is_reported(tmp_path):
    with pytest.raises(ValueProgramError, match="missing.yaml: file not found"):
        load_value_program(tmp_path / "missing.yaml", HEADS)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_batched_controller_equals_single_env_controllers(seed):
    generator = torch.Generator().manual_seed(seed)
    program = load_value_program(PROGRAM, HEADS)
    n, steps = 8, 12
    setpoints = 0.3 + 0.4 * torch.rand(n, generator=generator)
    levels = torch.rand(steps, n, 3, generator=generator)
    resets = torch.rand(steps, n, generator=generator) < 0.2
    batched = HomeostaticController(program, n)
    batched.drives.set_setpoint("sodium", setpoints)
    singles = [HomeostaticController(program, 1) for _ in range(n)]
    for i, single in enumerate(singles):
        single.drives.set_setpoint("sodium", setpoints[i])
    for t in range(steps):
        weights = batched.weights(levels[t], resets[t])
        for i, single in enumerate(singles):
            expected = single.weights(levels[t, i : i + 1], resets[t, i : i + 1])
            torch.testing.assert_close(weights[i : i + 1], expected, rtol=0, atol=0)


def test_per_env_gains_match_single_env_drives():
    generator = torch.Generator().manual_seed(0)
    n = 8
    params = PIDParams(
        setpoint=torch.rand(n, 2, generator=generator),
        kp=torch.rand(n, 2, generator=generator) * 4,
        ki=torch.rand(n, 2, generator=generator) * 0.1,
        kd=torch.rand(n, 2, generator=generator),
        dead_band=torch.rand(n, 2, generator=generator) * 0.1,
        integral_limit=torch.rand(n, 2, generator=generator),
        output_limit=1 + torch.rand(n, 2, generator=generator),
    )
    levels = torch.rand(10, n, 2, generator=generator)
    batched = Drives(["a", "b"], n, params)
    row = {name: getattr(params, name) for name in PIDParams.__dataclass_fields__}
    singles = [
        Drives(["a", "b"], 1, PIDParams(**{k: v[i] for k, v in row.items()})) for i in range(n)
    ]
    for x in levels:
        drives = batched.step(x)
        for i, single in enumerate(singles):
            torch.testing.assert_close(drives[i : i + 1], single.step(x[i : i + 1]), rtol=0, atol=0)


def test_drive_reduction_reward_by_hand():
    setpoint = torch.tensor([0.5, 0.5], dtype=torch.float64)
    x_t = torch.tensor([[0.3, 0.5], [0.5, 0.9]], dtype=torch.float64)
    x_tp1 = torch.tensor([[0.4, 0.5], [0.5, 0.5]], dtype=torch.float64)
    # (0.2^4)^(1/2) - (0.1^4)^(1/2) = 0.04 - 0.01; (0.4^4)^(1/2) - 0 = 0.16
    reward = drive_reduction_reward(x_t, x_tp1, setpoint)
    assert reward.tolist() == pytest.approx([0.03, 0.16])
    # n = m = 1: the L1 distance; overshooting past the setpoint is punished.
    reward = drive_reduction_reward(
        x_t, torch.tensor([[0.8, 0.5], [0.5, 0.9]], dtype=torch.float64), setpoint, 1, 1
    )
    assert reward.tolist() == pytest.approx([-0.1, 0.0])
    d = homeostatic_drive(torch.tensor([0.2, 0.4]), torch.tensor([0.5, 0.5]), n=2, m=1)
    assert d.item() == pytest.approx(0.09 + 0.01)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=2, max_size=6),
    st.floats(1.5, 5),
)
def test_drive_reduction_rewards_telescope(path, n):
    levels = torch.tensor(path, dtype=torch.float64)
    setpoint = torch.tensor([0.6, 0.6, 0.5], dtype=torch.float64)
    rewards = drive_reduction_reward(levels[:-1], levels[1:], setpoint, n, 1.2)
    total = homeostatic_drive(levels[0], setpoint, n, 1.2) - homeostatic_drive(
        levels[-1], setpoint, n, 1.2
    )
    assert rewards.sum().item() == pytest.approx(total.item(), abs=1e-9)
