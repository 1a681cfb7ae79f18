"""Homeostatic control on exact foraging heads: the tabulated MDP against the world's own steps,
weighted-max composition, the acceptance figures of P1-P3 on a stub agent whose heads are the
exact soft-Q values, the protocol metrics by hand, and the drive-reduction world's reward."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents.heads import DiscreteHeads
from agents.homeostatic import FixedWeightAgent, HomeostaticAgent
from composable_rl.config import AgentConfig, load_config
from composable_rl.homeostasis import (
    HomeostaticController,
    drive_reduction_reward,
    in_band_fraction,
    integrated_abs_error,
    load_value_program,
    overshoot,
    rise_time,
    settling_time,
)
from composable_rl.maths.levers import Quantile
from composable_rl.maths.operators import weighted_max
from composable_rl.maths.oracle import soft_value_iteration
from composable_rl.registry import make_world
from envs.foraging import DEFAULT_HAZARD, DriveReductionWorld, ForagingWorld, tabulate_foraging
from envs.gridworld import NUM_ACTIONS
from experiments.homeostasis import (
    HOMEOSTATIC,
    MAXIMISER,
    Contender,
    over_consumption,
    salt_flip,
    setpoint_step,
)

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "configs" / "values" / "default.yaml"
FORAGING = ROOT / "configs" / "foraging.yaml"
GAMMA, ALPHA = 0.95, 0.01  # the heads' settings in configs/foraging.yaml
UP, RIGHT, DOWN, LEFT = range(4)
FOOD = 1 * 11 + 1  # flat cell of the default food


def exact_heads(world: ForagingWorld) -> torch.Tensor:
    """Exact soft-Q heads [S, K, A] float32 of every agent cell, one soft value iteration each."""
    mdp = tabulate_foraging(world)
    heads = [
        soft_value_iteration(mdp, mdp.reward[..., k], GAMMA, ALPHA)[0]
        for k in range(world.num_heads)
    ]
    return torch.stack(heads, 1).float()


class ExactHeads(DiscreteHeads):
    """A stand-in for a trained MultiHeadSoftQ whose heads are the exact values (plain heads)."""

    def __init__(self, world: ForagingWorld) -> None:
        super().__init__()
        self.head_names = list(world.head_names)
        self.action_spec = world.action_spec
        self.cfg = AgentConfig(gamma=GAMMA, alpha=ALPHA)
        self.q = torch.nn.Parameter(exact_heads(world), requires_grad=False)

    def head_values(self, obs: torch.Tensor) -> torch.Tensor:
        """The exact values [N, K, A] of the agents' cells."""
        return self.q[obs[:, 0]]


@pytest.fixture(scope="module")
def exact():
    """(contenders, program, heads' world) on exact heads, with configs/foraging.yaml's world."""
    cfg = load_config(FORAGING)
    assert (cfg.agent.gamma, cfg.agent.alpha) == (GAMMA, ALPHA)
    world = make_world(cfg.env, 1)
    heads = ExactHeads(world)
    program = load_value_program(PROGRAM, heads.head_names)

    def homeostatic(n: int, scale: list[float] | None) -> HomeostaticAgent:
        return HomeostaticAgent(heads, program, n, scale)

    def maximiser(n: int, scale: list[float] | None) -> FixedWeightAgent:
        return FixedWeightAgent(heads, program, head_scale=scale)

    found = [
        Contender(HOMEOSTATIC, homeostatic, cfg.env),
        Contender(MAXIMISER, maximiser, cfg.env),
    ]
    return found, program, world


def table(rows: list[dict]) -> dict[tuple[str, str], float]:
    """{(agent, metric): value} of protocol rows."""
    return {(row["agent"], row["metric"]): row["value"] for row in rows}


# --- The tabulated MDP -------------------------------------------------------------------------


@pytest.mark.parametrize("hazard", [None, DEFAULT_HAZARD])
def test_tabulated_mdp_agrees_with_the_world_on_every_free_cell_and_action(hazard):
    probe = ForagingWorld(num_envs=1, hazard=hazard)
    mdp = tabulate_foraging(probe)
    free = probe.free_cells
    cells = free.repeat_interleave(NUM_ACTIONS)
    actions = torch.arange(NUM_ACTIONS).repeat(free.numel())
    world = ForagingWorld(num_envs=cells.numel(), hazard=hazard, max_steps=10)
    world.agent = cells.clone()
    _, reward, terminated, truncated, info = world.step(actions)
    assert not (terminated | truncated).any()
    assert torch.equal(world.agent, mdp.next_state[0, cells, actions])
    assert torch.equal(reward.double(), mdp.reward[0, cells, actions])
    assert mdp.reward.shape[-1] == probe.num_heads
    # Every head pays somewhere; walls self-loop with no reward; nothing terminates.
    assert (mdp.reward.sum((0, 1, 2)) > 0).all()
    walls = probe.walls.flatten().nonzero().flatten()
    assert torch.equal(mdp.next_state[0, walls], walls[:, None].expand(-1, NUM_ACTIONS))
    assert mdp.reward[0, walls].abs().sum() == 0 and not mdp.terminal.any()
    assert torch.equal(mdp.valid[0], ~probe.walls.flatten())


def test_tabulate_foraging_refuses_regrowth():
    with pytest.raises(ValueError, match="regrow"):
        tabulate_foraging(ForagingWorld(num_envs=1, regrow=3))


# --- weighted_max ------------------------------------------------------------------------------


def test_weighted_max_by_hand():
    q = torch.tensor(
        [
            [[1.0, 5.0], [4.0, 0.0], [2.0, 3.0]],
            [[1.0, 5.0], [4.0, 0.0], [2.0, 3.0]],
            [[1.0, 5.0], [4.0, 0.0], [2.0, 3.0]],
            [[1.0, 5.0], [4.0, 0.0], [2.0, 3.0]],
        ]
    )  # [B=4, K=3, A=2]
    weights = torch.tensor(
        [
            [2.0, 1.0, 0.0],  # max(2*[1, 5], 1*[4, 0]) = [4, 10]
            [1.0, 0.5, -1.0],  # max([1, 5], [2, 0]) - [2, 3] = [0, 2]
            [-1.0, 0.0, -2.0],  # nothing wanted: 0 - [1, 5] - [4, 6]
            [0.0, 0.0, 0.0],
        ]
    )
    out = weighted_max(q, weights)
    assert out.tolist() == [[4.0, 10.0], [0.0, 2.0], [-5.0, -11.0], [0.0, 0.0]]
    # Not the weighted sum: two wanted heads do not add up.
    assert out[0].tolist() != (q[0] * weights[0][:, None]).sum(0).tolist()
    # Extra trailing axes (e.g. goals) broadcast the weights.
    stacked = weighted_max(q[:, :, None, :].expand(-1, -1, 2, -1), weights)
    assert torch.equal(stacked, out[:, None, :].expand(-1, 2, -1))
    # A zero weight does not count as wanted, even when every wanted value is negative.
    negative = torch.tensor([[[-1.0, -3.0], [5.0, 5.0]]])
    assert weighted_max(negative, torch.tensor([[1.0, 0.0]])).tolist() == [[-1.0, -3.0]]


def test_greedy_weighted_max_on_exact_heads_reaches_a_resource_from_every_free_cell():
    world = make_world(load_config(FORAGING).env, 1)
    mdp = tabulate_foraging(world)
    q = exact_heads(world)  # [S, K, A]
    composed = weighted_max(q, torch.ones(q.shape[0], world.num_heads))
    policy = composed.argmax(-1)
    # Fewest steps to end a step on a resource, by relaxation on the tabulated moves.
    pays = mdp.reward[0].sum(-1) > 0  # [S, A]
    fewest = torch.full((q.shape[0],), 10_000)
    for _ in range(q.shape[0]):
        via = torch.where(pays, 1, 1 + fewest[mdp.next_state[0]])
        fewest = torch.minimum(fewest, via.amin(-1))
    for cell in world.free_cells.tolist():
        state, reached = cell, None
        for t in range(60):
            action = int(policy[state])
            if pays[state, action]:
                reached = t + 1
                break
            state = int(mdp.next_state[0, state, action])
        assert reached is not None, f"no resource from cell {cell}"
        assert reached == int(fewest[cell]), cell  # the nearest resource, by a shortest path


def test_a_value_program_quantile_acts_greedy_at_zero_and_keeps_the_top_mass(exact):
    _, program, world = exact
    heads = ExactHeads(world)
    cells = world.free_cells[:40]
    obs = torch.zeros(len(cells), 1, dtype=torch.long)
    obs[:, 0] = cells
    levels = torch.full((len(cells), 3), 0.1)  # every need high
    greedy = HomeostaticAgent(heads, program, len(cells), alpha=0.0).act(obs, levels)
    zero = replace(program, quantile=Quantile(0.0))
    assert torch.equal(HomeostaticAgent(heads, zero, len(cells)).act(obs, levels), greedy)
    # q = 0.5 over 4 uniform actions: one of the two best, never the others
    weights = HomeostaticController(program, len(cells)).weights(levels)  # a first step's
    composed = program.compose(heads.head_values(obs), weights)
    top_two = composed.argsort(dim=-1, descending=True, stable=True)[:, :2]
    half = replace(program, quantile=Quantile(0.5))
    for seed in range(5):
        agent = HomeostaticAgent(heads, half, len(cells))
        acted = agent.act(obs, levels, generator=torch.Generator().manual_seed(seed))
        assert (top_two == acted[:, None]).any(1).all()


def test_weighted_sum_of_exact_heads_stalls_between_equally_wanted_resources():
    world = make_world(load_config(FORAGING).env, 1)
    mdp = tabulate_foraging(world)
    q = exact_heads(world)
    policy = torch.einsum("ska->sa", q).argmax(-1)  # weights (1, 1, 1), summed
    pays = (mdp.reward[0].sum(-1) > 0).gather(1, policy[:, None])[:, 0]
    state = world.free_cells.clone()
    consumed = torch.zeros_like(state, dtype=torch.bool)
    for _ in range(60):
        consumed |= pays[state]
        state = mdp.next_state[0, state, policy[state]]
    assert int((~consumed).sum()) == 52  # of 72 free cells (docs/homeostasis.md quotes it)


# --- P1-P3 on exact heads ----------------------------------------------------------------------


def test_p1_setpoint_step_homeostatic_stays_in_band_and_the_maximiser_dies(exact):
    found, program, _ = exact
    assert program.setpoints[0] == 0.4
    rows, traces = setpoint_step(found, program, 20, 1000, "energy", 0.8, 0.1, 10_000, None)
    got = table(rows)
    assert got[HOMEOSTATIC, "time_in_band_worst"] >= 0.9
    assert got[HOMEOSTATIC, "deaths"] == 0.0
    assert got[HOMEOSTATIC, "final_mean"] == pytest.approx(0.8, abs=0.05)
    assert got[HOMEOSTATIC, "settling_steps_tol0.1"] < 500  # settles within the 500 steps after
    assert got[MAXIMISER, "deaths"] > 0
    assert got[MAXIMISER, "time_in_band"] < got[HOMEOSTATIC, "time_in_band"]
    home = traces[HOMEOSTATIC]
    assert home.levels.shape == (1000, 20, 3) and home.weights.shape == (1000, 20, 3)
    assert home.setpoints[499, 0] == 0.4 and home.setpoints[500, 0] == 0.8
    assert traces[MAXIMISER].weights is None


def test_p2_salt_flip_homeostatic_seeks_salt_only_when_depleted(exact):
    found, program, world = exact
    got = table(salt_flip(found, program, world, 100, 50, 0.8, 0.1, 10_000))
    assert got[HOMEOSTATIC, "p_salt_replete"] < 0.1
    assert got[HOMEOSTATIC, "p_salt_depleted"] > 0.8
    assert abs(got[HOMEOSTATIC, "p_food_depleted"] - got[HOMEOSTATIC, "p_food_replete"]) <= 0.1
    assert abs(got[MAXIMISER, "p_salt_replete"] - got[MAXIMISER, "p_salt_depleted"]) <= 0.1


def test_p3_scaled_food_makes_the_maximiser_overeat_but_not_the_homeostatic_agent(exact):
    found, program, world = exact
    got = table(over_consumption(found, program, world, 20, 1000, 200, 10.0, 10_000))
    assert got[HOMEOSTATIC, "above_band"] <= 0.01
    assert got[MAXIMISER, "above_band"] > 0.5
    assert got[MAXIMISER, "energy_offset"] > got[HOMEOSTATIC, "energy_offset"]
    assert abs(got[HOMEOSTATIC, "energy_offset"]) < 0.05


# --- Metrics by hand ---------------------------------------------------------------------------


def test_settling_time_by_hand():
    x = torch.tensor(
        [
            [0.0, 0.5, 0.5, 0.5],
            [0.3, 0.5, 0.9, 0.5],
            [0.45, 0.5, 0.5, 0.5],
            [0.55, 0.5, 0.5, 0.9],
        ]
    )  # [T=4, N=4]: enters at 2; always in; leaves and comes back; leaves at the end
    assert settling_time(x, 0.5, 0.1).tolist() == [2, 0, 2, 4]
    assert settling_time(x, 0.5, 0.1).dtype == torch.long
    assert settling_time(torch.zeros(7, 2), 1.0, 0.1).tolist() == [7, 7]  # never settles: T
    assert rise_time(x, 0.5, 0.1).tolist() == [2, 0, 0, 0]  # first entry, not the last
    assert rise_time(torch.zeros(7, 2), 1.0, 0.1).tolist() == [7, 7]


def test_overshoot_up_and_down_by_hand():
    x = torch.tensor([[0.5, 0.9], [0.85, 0.7], [0.78, 0.6]])  # [T=3, N=2]
    assert overshoot(x, 0.8).tolist() == pytest.approx([0.05, 0.1])
    assert overshoot(x, 0.8, up=False).tolist() == pytest.approx([0.3, 0.2])
    assert overshoot(x, 1.0).tolist() == [0.0, 0.0]  # never past: 0, not negative


def test_integrated_abs_error_by_hand():
    x = torch.tensor([[0.5, 0.9], [0.85, 0.7], [0.78, 0.6]])
    assert integrated_abs_error(x, 0.8).tolist() == pytest.approx([0.3 + 0.05 + 0.02, 0.4])
    assert integrated_abs_error(torch.full((5, 1), 0.8), 0.8).tolist() == [0.0]


def test_in_band_fraction_counts_dead_steps_as_out_of_band():
    in_band = torch.tensor(
        [
            [[True, True], [True, True], [True, False]],
            [[True, True], [True, True], [True, True]],
            [[True, True], [True, True], [True, True]],
            [[False, True], [True, True], [True, True]],
        ]
    )  # [T=4, N=3, V=2]
    alive = torch.tensor(
        [[True, True, True], [True, True, True], [True, False, True], [True, False, True]]
    )
    assert in_band_fraction(in_band, alive).tolist() == [0.75, 0.5, 0.75]
    assert in_band_fraction(in_band, torch.ones(4, 3, dtype=torch.bool)).tolist() == [
        0.75,
        1.0,
        0.75,
    ]


def test_value_program_bands_and_in_band():
    program = load_value_program(PROGRAM, ["food", "water", "salt"])
    assert program.setpoints == (0.4, 0.6, 0.5)
    assert program.bands.flatten().tolist() == pytest.approx([0.2, 0.95, 0.2, 0.95, 0.2, 0.8])
    x = torch.tensor([[0.2, 0.5, 0.8], [0.19, 0.96, 0.81]])
    assert program.in_band(x).tolist() == [[True, True, True], [False, False, False]]


# --- The drive-reduction world -----------------------------------------------------------------


def test_drive_reduction_world_reward_and_observation_by_hand():
    cfg = load_config(ROOT / "configs" / "foraging_drive.yaml")
    kwargs = {**cfg.env.world_kwargs(), "initial_range": None, "start": (1, 2)}
    world = DriveReductionWorld(num_envs=2, **kwargs)
    assert isinstance(world, DriveReductionWorld)
    assert world.head_names == ["drive_reduction"] and world.num_heads == 1
    assert world.setpoints.tolist() == pytest.approx([0.4, 0.6, 0.5])
    assert world.reward_scale == 100.0 and world.obs_shape == (4,)
    world.set_levels(torch.tensor([[0.3, 0.6, 0.5], [0.55, 0.35, 0.95]]))
    obs = world.current_obs()
    # agent cell, then floor(10 x) per variable, each in its own block of 10 features
    assert obs.tolist() == [
        [FOOD + 1, 121 + 3, 131 + 6, 141 + 5],
        [FOOD + 1, 121 + 5, 131 + 3, 150],
    ]
    before = world.internal.clone()
    obs, reward, _, _, info = world.step(torch.tensor([LEFT, DOWN]))  # food; nothing
    after = info["internal"]
    assert after[0, 0] > before[0, 0] and after[1, 0] < before[1, 0]
    setpoint = torch.tensor([0.4, 0.6, 0.5])

    def drive(x: torch.Tensor) -> torch.Tensor:
        return ((setpoint - x).abs() ** 4).sum(-1).sqrt()

    expected = 100.0 * (drive(before) - drive(after))
    assert reward.shape == (2, 1)
    assert reward[:, 0].tolist() == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-5)
    assert reward[:, 0].tolist() == pytest.approx(
        (100.0 * drive_reduction_reward(before, after, setpoint)).tolist()
    )
    assert reward[0, 0] > 0  # eating while hungry nears the setpoints
    bins = (after * 10).long().clamp(max=9)
    assert torch.equal(obs[:, 1:], 121 + 10 * torch.arange(3) + bins)
