"""Skill machines: edge choice on the machine, look-ahead targets, and zero-shot temporal tasks
on exact Office world values, scored against the product-BFS oracle."""

from types import SimpleNamespace

import pytest
import torch

from agents import composition
from agents.skill_machine import SkillMachineAgent
from composable_rl.config import AgentConfig
from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.reward_machine import Edge, RewardMachine
from composable_rl.languages.skill_machine import (
    continuation_targets,
    machine_values,
    planned_values,
    skill_expression,
)
from composable_rl.maths.levers import Quantile
from composable_rl.maths.oracle import task_reward, world_value_iteration
from envs.gridworld import tabulate
from envs.office import ALPHABET, PROPOSITIONS, OfficeWorld, cell_of
from envs.temporal import evaluate_temporal, office_machine

GAMMA, PENALTY = 0.95, -5.0
OFFICE_TASKS = (
    "F(f & F g) & G !n",
    "F(e & F g) & G !n",
    "(F(f & F(e & F g)) | F(e & F(f & F g))) & G !n",
    "F(a & F(b & F(c & F d))) & G !n",
    "F(a & F c) & G !e",
)


def small_machine() -> RewardMachine:
    """u0 -a-> done (reward 1) or u0 -b-> u1 -c-> done (reward 1); plants lead to fail."""
    return RewardMachine(
        propositions=("a", "b", "c", "n"),
        states=("u0", "u1", "done", "fail"),
        initial=0,
        accepting=frozenset({2}),
        edges=(
            Edge(0, 2, "a & !n", 1.0),
            Edge(0, 1, "b & !n", 0.0),
            Edge(1, 2, "c & !n", 1.0),
            Edge(0, 3, "n", 0.0),
            Edge(1, 3, "n", 0.0),
        ),
        alphabet=(frozenset(), *(frozenset({p}) for p in "abcn")),  # one proposition at a time
    )


def test_machine_values_and_the_best_edge_by_hand():
    machine = small_machine()
    assert machine_values(machine, 0.9).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert skill_expression(machine, 0, 0.9) == "a & ~n"  # 1 now beats 0.9 later
    assert skill_expression(machine, 1, 0.9) == "c & ~n"
    assert skill_expression(machine, 2, 0.9) is None and skill_expression(machine, 3, 0.9) is None


def test_ties_are_joined_by_or_and_true_is_the_max_head():
    either = from_ltl("F((f | e) & F g) & G !n", PROPOSITIONS, ALPHABET)
    assert skill_expression(either, either.initial, GAMMA) == "(e | f) & ~n"
    always = RewardMachine(("a",), ("u0", "done"), 0, frozenset({1}), (Edge(0, 1, "true", 1.0),))
    assert skill_expression(always, 0, GAMMA) == "MAX"


def test_planned_values_replace_the_terminal_reward():
    c, gamma = -0.1, 0.9
    base = c / (1 - gamma)
    # world value of reaching a goal in d = 3 steps with terminal reward 2
    value = c + gamma * c + gamma**2 * 2.0
    q = torch.tensor([[[value]]])
    out = planned_values(q, torch.tensor([[2.0]]), torch.tensor([[5.0]]), c, gamma)
    assert out.item() == pytest.approx(c + gamma * c + gamma**2 * 5.0)
    assert out.item() - base == pytest.approx((value - base) * (5.0 - base) / (2.0 - base))
    blocked = planned_values(q, torch.tensor([[2.0]]), torch.tensor([[-torch.inf]]), c, gamma)
    assert blocked.item() == -torch.inf


def test_continuation_targets_on_a_chain_of_goals():
    """Every goal is one step from every other. State 0: goal 0 leads to state 1, goal 1 breaks
    a rule (state 3). State 1: goal 0 stays, goal 1 finishes (state 2)."""
    c, gamma, r_max = -0.1, 0.9, 2.0
    terminal = torch.full((4, 2), r_max)
    one_step = terminal[:, None, :, None].expand(4, 2, 2, 1)  # value of a 1-step path = reward
    goal_next = torch.tensor([[1, 3], [1, 2], [2, 2], [3, 3]])
    accepting = torch.tensor([False, False, True, False])
    rejecting = torch.tensor([False, False, False, True])
    target = continuation_targets(
        one_step, terminal, goal_next, accepting, rejecting, c, gamma, r_max
    )
    assert target[1, 1].item() == r_max and target[0, 1].item() == -torch.inf
    assert target[0, 0].item() == pytest.approx(c + gamma * r_max)  # then one step to finish
    assert target[1, 0].item() == pytest.approx(c + gamma * r_max)


def exact_agent(world: OfficeWorld) -> SimpleNamespace:
    """A stand-in for a trained agent whose heads are the exact world values (alpha = 0)."""
    mdp = tabulate(world, world.objects[:1])
    heads = [
        world_value_iteration(
            mdp,
            task_reward(mdp, torch.where(member, world.r_max, world.r_min), world.step_reward),
            world.num_goals,
            PENALTY,
            GAMMA,
            0.0,
        )[0]
        for member in world.goal_membership.T
    ]
    q = torch.stack(heads, 1).float()  # [S, K, G, A]
    cfg = AgentConfig(gamma=GAMMA, alpha=0.0)
    return SimpleNamespace(
        candidate_values=lambda obs, generator=None: (q[obs[:, 0]], None),
        head_names=world.head_names,
        num_goals=14,
        cfg=cfg,
    )


@pytest.fixture(scope="module")
def office():
    world = OfficeWorld(num_envs=1, bound_heads=True)
    return world, exact_agent(world)


def run(world, agent, task: str, plan: bool, starts: str) -> dict:
    machine = composition.skill_machine(world, agent, office_machine(task), plan)
    return evaluate_temporal(task, machine.act, starts, episodes=300)


@pytest.mark.parametrize("task", OFFICE_TASKS)
def test_look_ahead_skill_machine_is_optimal_on_exact_world_values(office, task):
    world, agent = office
    for starts in ("standard", "random"):
        row = run(world, agent, task, True, starts)
        assert row["success"] == 1.0 and row["violations"] == 0.0
        assert row["steps"] == row["oracle_steps"]


def test_edge_choice_alone_succeeds_but_can_walk_further(office):
    world, agent = office
    row = run(world, agent, OFFICE_TASKS[0], False, "standard")
    assert row["success"] == 1.0 and row["violations"] == 0.0
    assert (row["steps"], row["oracle_steps"]) == (31.0, 15.0)  # nearest coffee, not the best


def test_agent_needs_world_values_with_bounds(office):
    world, agent = office
    plain = SimpleNamespace(**{**vars(agent), "num_goals": 0})
    with pytest.raises(ValueError, match="world-value heads"):
        SkillMachineAgent(
            plain,
            office_machine(OFFICE_TASKS[0]),
            world.alphabet,
            world.labels(world.goal_cells),
            world.goal_membership,
            world.observe(world.goal_cells, None),
            -0.1,
            2.0,
            -0.1,
        )


def test_a_quantilising_skill_machine_is_greedy_at_zero_and_never_breaks_a_rule_at_small_q(office):
    world, agent = office
    machine = office_machine(OFFICE_TASKS[0])  # coffee, then office, never the plant
    greedy = evaluate_temporal(OFFICE_TASKS[0], run_machine(world, agent, machine, None), "random")
    zero = evaluate_temporal(OFFICE_TASKS[0], run_machine(world, agent, machine, 0.0), "random")
    assert zero == greedy
    # q = 0.5 over 4 uniform moves keeps the two best: never a step onto the plant (-inf)
    half = evaluate_temporal(OFFICE_TASKS[0], run_machine(world, agent, machine, 0.5), "random")
    assert half["violations"] == 0.0 and half["success"] == 1.0
    assert half["steps"] > greedy["steps"]  # it wanders, within the better half of the moves
    with pytest.raises(ValueError, match="uniform base"):
        run_machine(world, agent, machine, 0.5, "f")


class SteppedOffice(OfficeWorld):
    """The grid Office with its own step as a step model: the goal of the next cell, -1 none."""

    def entered_goals(self, obs, actions):
        """The goal [N, C] of the cell each of C moves leads to from index observations [N, 1]."""
        return self.cell_goal[self.next_cell[obs[:, :1], actions]]


def test_a_shield_from_a_step_model_keeps_even_a_uniform_walk_off_the_plants(office):
    """At q = 1 the quantiliser is its base: uniform over every move, or over the moves that the
    step model says enter no plant."""
    world, agent = office
    machine = office_machine(OFFICE_TASKS[0])
    walk = run_machine(world, agent, machine, 1.0)
    assert evaluate_temporal(OFFICE_TASKS[0], walk, "random")["violations"] > 0
    stepped = SteppedOffice(num_envs=1, bound_heads=True)
    walk = composition.skill_machine(stepped, agent, machine, True, Quantile(1.0), True).act
    assert evaluate_temporal(OFFICE_TASKS[0], walk, "random")["violations"] == 0.0


def test_the_shield_judges_a_step_onto_no_goal_by_the_empty_label(office):
    """In "G a" a step that enters no goal fails the task; beside a, only entering it is safe."""
    _, agent = office
    world = SteppedOffice(num_envs=1, bound_heads=True)
    machine = composition.skill_machine(world, agent, office_machine("G a"), True, shield=True)
    start, moves = torch.tensor([[cell_of(1, 2)]]), torch.arange(4)[None]
    goals = world.entered_goals(start, moves)
    onto_a = (goals >= 0) & (world.goal_labels[goals.clamp(min=0)] == 1 + PROPOSITIONS.index("a"))
    assert 0 < onto_a.sum() < 4
    assert torch.equal(machine.safe(start, torch.zeros(1, dtype=torch.long), moves), onto_a)


def run_machine(world, agent, machine, q: float | None, base: str | None = None):
    """The act of a look-ahead skill machine, quantilised at q (None: greedy)."""
    quantile = None if q is None else Quantile(q, base)
    return composition.skill_machine(world, agent, machine, True, quantile).act
