"""The continuous Office: its product oracle against brute force, the world's steps, shared
world-value columns, and skill machines over exact world values meeting the oracle."""

import dataclasses
import math

import pytest
import torch

from agents.component_rule import rule_machine_policy
from agents.composition import evaluate_temporal_task, skill_machine
from agents.factory import build, goal_warnings, resolve
from agents.world_value_actor_critic import WorldValueActorCritic, distinct_columns
from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.reward_machine import exclusive_labels
from composable_rl.maths import point_oracle as po
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.maths.levers import Quantile
from composable_rl.registry import make_world
from envs.check import check_world
from envs.office import PROPOSITIONS
from envs.point_goals import move_point
from envs.point_office import PointOffice, PointOfficeConfig, evaluate_point_temporal
from envs.temporal import machine_arrays, office_machine

TASKS = (
    "F(f & F g) & G !n",
    "F(e & F g) & G !n",
    "(F(f & F(e & F g)) | F(e & F(f & F g))) & G !n",
    "F(a & F(b & F(c & F d))) & G !n",
)


# Three discs of radius 0.3, a, b and a plant n, steps of 0.5: "a then b, never n" goes
# straight from one start; from the other the straight path to a crosses the plant.
CENTRES = torch.tensor([[1.0, 1.0], [2.6, 1.0], [1.8, 1.5]])
PROPS = ("a", "b", "n")
LABELS = torch.tensor([1, 2, 3])
STARTS = torch.tensor([[0.2, 1.0], [2.6, 2.0]])
EXTENT = torch.tensor([4.0, 3.0])


def brute_force_steps(start, table, accepting, rejecting, initial, depth):
    """Fewest steps to acceptance over sequences of up to `depth` full-speed moves in 16 even
    directions, straight at each disc, or standing still, entering a disc putting the point at
    its centre (depth + 1: none accepts); of the points within 0.05 of each other in one machine
    state, one goes on."""
    angles = torch.arange(16) * (2 * math.pi / 16)
    even = 0.5 * torch.stack([angles.cos(), angles.sin()], 1)
    position, state = start[None], torch.tensor([initial])
    for d in range(1, depth + 1):
        straight = po.straight_actions(
            position.repeat_interleave(3, 0), CENTRES.repeat(len(position), 1), 1.0
        ).view(-1, 3, 2)
        moves = torch.cat([even.expand(len(position), -1, -1), 0.5 * straight], 1)
        moves = torch.cat([moves, torch.zeros(len(position), 1, 2)], 1)  # [P, M, 2]
        moved = (position[:, None] + moves).reshape(-1, 2)
        state = state.repeat_interleave(moves.shape[1])
        inside = (moved[:, None] - CENTRES).norm(dim=-1) <= 0.3
        region = torch.where(inside.any(1), inside.float().argmax(1), -1)
        moved = torch.where(region[:, None] >= 0, CENTRES[region.clamp(min=0)], moved)
        state = table[state, torch.where(region >= 0, LABELS[region.clamp(min=0)], 0)]
        if accepting[state].any():
            return d
        keep = ~rejecting[state]
        position, state = moved[keep], state[keep]
        key = torch.cat([position.div(0.05).round(), state[:, None].float()], 1)  # prune
        _, first = torch.unique(key, dim=0, return_inverse=True)
        pick = torch.full((int(first.max()) + 1,), len(first)).scatter_reduce(
            0, first, torch.arange(len(first)), "amin"
        )
        position, state = position[pick], state[pick]
    return depth + 1


def test_the_product_oracle_is_a_bound_that_brute_force_meets_where_exact():
    machine = from_ltl("F(a & F b) & G !n", PROPS, exclusive_labels(PROPS))
    table, accepting, rejecting = machine_arrays(machine, exclusive_labels(PROPS), "cpu")
    steps, plan = po.product_steps(
        STARTS, CENTRES, LABELS, 0.3, 0.5, EXTENT, table, accepting, rejecting, machine.initial
    )
    found = [brute_force_steps(s, table, accepting, rejecting, machine.initial, 7) for s in STARTS]
    # left of a: a in 1 step, then b straight below the plant in 3; from the right the straight
    # path to a runs through the plant's centre, and the grid's plan around it is no longer
    assert steps.tolist() == [4, 7] and plan.tolist() == [4, 7]
    assert found == steps.tolist()


def test_legs_count_steps_from_centres_and_a_machine_that_moves_on_no_label_is_refused():
    lower, upper = po.region_legs(STARTS, CENTRES, 0.3, 0.5, EXTENT, 0.05)
    legs = [[1, 3, 2], [3, 1, 2], [2, 2, 1]]  # a, b 1.6 apart: ceil(1.3 / 0.5)
    assert lower[2:].tolist() == legs and upper[2:].tolist() == legs  # the plant misses a-b
    assert lower[:2].tolist() == [[1, 5, 3], [4, 2, 2]]
    clear = po.clear_paths(STARTS, CENTRES.expand(2, -1, -1), 0.3)
    assert clear.tolist() == [[True, False, False], [False, True, True]]  # a, n in the way
    assert torch.equal(upper[:2], lower[:2])  # and the grid's plans around them cost nothing
    table = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]])  # label 0 moves state 0 on
    none = torch.tensor([False, True])
    with pytest.raises(ValueError, match="without a label"):
        po.product_steps(STARTS, CENTRES, LABELS, 0.3, 0.5, EXTENT, table, none, ~none & False, 0)


def test_a_grid_plan_is_a_walk_of_steps_and_a_plant_in_line_costs_a_step():
    world = PointOffice(PointOfficeConfig(), 1, "cpu")
    a, b = world.goal_names.index("a(1,1)"), world.goal_names.index("b(1,7)")
    args = (world.centres, world.radius, world.step_length)
    lower, upper = po.region_legs(world.centres[a : a + 1], *args, world.extent, 0.05)
    assert lower[0, b] == 7 and upper[0, b] == 8  # the plant n(1,4) lies halfway from a to b
    steps, points, *_ = po.grid_plans(*args, world.extent, 0.05)
    centres, position, walked = world.centres.double(), world.centres[a].double(), 0
    while (position - centres[b]).norm() > world.radius:
        gap = (points - position).norm(dim=-1)
        if walked and (position - centres[b]).norm() <= world.radius + world.step_length:
            towards = centres[b] - position  # a full step towards b's centre ends in b
            target = position + towards * min(1.0, world.step_length / float(towards.norm()))
        else:
            best = torch.where(gap <= world.step_length, steps[b], torch.inf).flatten().argmin()
            target = points.view(-1, 2)[best]
        assert (target - position).norm() <= world.step_length
        position, walked = target, walked + 1
        inside = (centres - position).norm(dim=-1) <= world.radius
        assert not inside.any() or inside.nonzero().flatten().tolist() == [b]
    assert walked == 8


def test_the_world_keeps_the_contract_and_steps_enter_discs_and_pay_each_head():
    section = PointOfficeConfig(bound_heads=True)
    world = PointOffice(section, 3, "cpu")
    check_world(world)
    assert world.head_names[-2:] == ["MAX", "MIN"] and len(world.goal_names) == 14
    coffee = world.goal_names.index("f(8,2)")
    world.agent = torch.tensor([[8.5, 2.1], [0.0, 0.0], [6.0, 4.0]])
    _, reward, terminated, _, info = world.step(torch.tensor([[0.0, 1.0], [-1.0, -1.0], [1, 0]]))
    assert terminated.tolist() == [True, False, False] and info["goal"][0] == coffee
    f, n = world.head_names.index("f"), world.head_names.index("n")
    assert reward[0, f] == section.r_max and reward[0, n] == section.r_min
    assert (reward[1:] == section.step_reward).all()
    assert world.labels(world.centres).tolist() == world.goal_labels.tolist()
    corner = world.observe(torch.tensor([[0.0, 9.0]]), world.objects[:1])
    assert corner.shape == (1, 2 + 2 * 14) and torch.equal(corner[0, :2], torch.tensor([-1.0, 1.0]))
    offset = corner[0, 2:].view(14, 2)[coffee]  # the disc's offset over the room's longer side
    assert torch.allclose(offset, torch.tensor([8.5 / 12, -6.5 / 12]))


def test_starts_lie_outside_the_discs_or_anywhere():
    unlabelled = PointOffice(PointOfficeConfig(starts="unlabelled"), 256, "cpu")
    assert (unlabelled.region(unlabelled.agent) < 0).all()
    standard = PointOffice(PointOfficeConfig(starts="standard"), 2, "cpu")
    assert standard.agent.tolist() == [[2.5, 1.5]] * 2
    anywhere = PointOffice(PointOfficeConfig(), 4096, "cpu")
    assert (anywhere.region(anywhere.agent) >= 0).any()  # training starts inside discs too
    assert (anywhere.agent >= 0).all() and (anywhere.agent <= anywhere.extent).all()


@pytest.mark.parametrize(
    ("env", "key"),
    [({"radius": 0.8}, "radius"), ({"dt": 1.0}, "dt"), ({"radius": 0.75, "dt": 1.0}, "radius")],
)
def test_bad_sections_name_the_key(env, key):
    with pytest.raises(ConfigError, match=f"env.{key}"):
        from_dict(Config, {"env": {"name": "point_office", **env}})


def test_shared_columns_stand_for_every_head_and_goal_of_the_same_problem():
    membership = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0]], dtype=torch.bool)
    learned, column = distinct_columns(membership)
    assert learned.tolist() == [3, 1, 5, 0, 4, 2]  # (1, 0), (0, 1), (1, 2), then the members
    kinds = membership.T.flatten()  # column (k, g) at k * 3 + g
    assert torch.equal(kinds[learned][column], kinds)  # each (k, g) stands on its own kind
    assert all(column[learned[d]] == d for d in range(len(learned)))


def office_agent(**sac):
    cfg = from_dict(
        Config,
        {
            "env": {"name": "point_office", "num_envs": 4, "bound_heads": True},
            "agent": {
                "heads": "soft_actor_critic",
                "world_values": True,
                "hidden": [16],
                "sac": {"candidates": 2, **sac},
            },
        },
    )
    return cfg, *build(cfg)


def test_shared_columns_learn_2g_columns_and_give_k_x_g_values():
    _, world, agent = office_agent(share_columns=True)
    assert isinstance(agent, WorldValueActorCritic)
    k, g = len(world.head_names), len(world.goal_names)
    assert agent.log_alpha.shape == (2 * g,)
    obs = world.reset(0)
    values, actions = agent.candidate_values(obs)
    coffee = world.goal_names.index("f(8,2)")
    f, e, big = (world.head_names.index(h) for h in ("f", "e", "MAX"))
    assert values.shape[:3] == (4, k, g) and actions.shape == (4, values.shape[3], 2)
    assert torch.equal(values[:, f, coffee], values[:, big, coffee])  # both pay r_max there
    assert not torch.equal(values[:, e, coffee], values[:, f, coffee])
    assert agent.actor_means(obs).shape == (4, k * g, 2)


# Exact world values of the primitive world over candidate actions straight at each disc:
# column (k, g) pays head k's reward at g, the wrong-goal penalty at any other disc, and is
# reached straight where the segment is clear (a lower bound elsewhere).
class ExactOfficeHeads:
    def __init__(self, world: PointOffice, gamma: float) -> None:
        self.world, self.num_goals = world, len(world.goal_names)
        self.head_names = world.head_names
        self.cfg = type("Cfg", (), {"gamma": gamma, "alpha": 0.0})()
        self.penalty = wrong_goal_penalty(
            world.r_min, world.r_max, world.step_reward, world.num_states
        )

    def candidate_values(self, obs, generator=None):
        w, g = self.world, self.num_goals
        position = (obs[:, :2] + 1) / 2 * w.extent
        n = len(position)
        targets = w.centres.repeat(n, 1)
        moves = po.straight_actions(position.repeat_interleave(g, 0), targets, w.speed)
        moves = torch.cat([moves.view(n, g, 2), torch.zeros(n, 1, 2)], 1)  # + standing still
        c = moves.shape[1]
        after = move_point(
            position.repeat_interleave(c, 0), moves.view(-1, 2), w.speed, w.dt, w.extent
        )
        entered = w.region(after)
        paid = w.goal_reward.T.double()  # [K, G]
        column = torch.full((len(w.head_names), g, g), self.penalty, dtype=torch.float64)
        column[:, torch.arange(g), torch.arange(g)] = paid  # [K, column g, disc h]
        steps = po.goal_steps(after, w.centres.expand(len(after), -1, -1), w.radius, w.step_length)
        clear = po.clear_paths(after, w.centres.expand(len(after), -1, -1), w.radius)
        gamma = self.cfg.gamma
        arrive = po.arrival_values(steps[:, None, None], column, w.step_reward, 10**6, gamma)
        arrive = arrive.masked_fill(~clear[:, None, None], -torch.inf).amax(-1)  # [NC, K, G]
        onward = w.step_reward + gamma * arrive
        ended = column.permute(2, 0, 1)[entered.clamp(min=0)]  # [NC, K, G]
        q = torch.where(entered[:, None, None] >= 0, ended, onward)
        return q.view(n, c, *q.shape[1:]).permute(0, 2, 3, 1).float(), moves


def exact_skill_machine(world: PointOffice, gamma: float):
    heads = ExactOfficeHeads(world, gamma)

    def make_policy(machine):
        return skill_machine(world, heads, machine, plan=True).act

    return make_policy


@pytest.mark.parametrize(("task", "exact"), zip(TASKS, (True, True, True, False), strict=True))
def test_skill_machines_on_exact_world_values_take_the_oracle_steps(task, exact):
    section = PointOfficeConfig(bound_heads=True)
    world = PointOffice(section, 1, "cpu")
    rows = evaluate_point_temporal(
        section, task, exact_skill_machine(world, 0.95), 32, 10_000, "cpu"
    )
    for row in rows:
        assert row["success"] == 1.0 and row["violations"] == 0.0
        assert row["steps"] >= row["oracle_steps"]
    # from the standard start the oracle is exact but on "a, b, c, d" (plants lie between the
    # letters); these heads know only straight moves at discs, and meet it where it is exact
    assert (rows[0]["exact"] == 1.0) == exact
    assert (rows[0]["steps"] == rows[0]["oracle_steps"]) == exact


PLANT = 1 + PROPOSITIONS.index("n")  # the plants' label index


class PlantLovingHeads(ExactOfficeHeads):
    """The exact values, except that every move into a plant is valued r_max by every column."""

    def candidate_values(self, obs, generator=None):
        q, moves = super().candidate_values(obs, generator)
        w, n, c = self.world, *moves.shape[:2]
        position = (obs[:, :2] + 1) / 2 * w.extent
        moved = move_point(
            position.repeat_interleave(c, 0), moves.view(-1, 2), w.speed, w.dt, w.extent
        )
        entered = w.region(moved).view(n, c)
        plant = (entered >= 0) & (w.goal_labels[entered.clamp(min=0)] == PLANT)
        return q.masked_fill(plant[:, None, None], w.r_max), moves


def test_the_step_model_names_the_disc_each_move_enters_erring_on_the_safe_side():
    world = PointOffice(PointOfficeConfig(), 2, "cpu")
    coffee = world.goal_names.index("f(8,2)")
    world.agent = torch.tensor([[8.5, 2.1], [6.5, 4.5]])
    obs = world.observe(world.agent, world.objects)
    moves = torch.tensor([[[0.0, 1.0], [0.0, -1.0]], [[1.0, 0.0], [-1.0, 0.0]]])
    assert world.entered_goals(obs, moves).tolist() == [
        [coffee, -1],
        [world.goal_names.index("e(7,4)"), -1],
    ]
    edge = world.centres[coffee] + torch.tensor([world.radius + 5e-5, 0.0])  # just outside
    world.agent = torch.stack([edge - torch.tensor([0.8, 0.0]), edge + 1])
    obs = world.observe(world.agent, world.objects)
    assert world.entered_goals(obs, torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]]))[:, 0].tolist() == [
        coffee,
        -1,
    ]


def test_a_model_shield_keeps_heads_that_overvalue_plants_out_of_every_plant():
    section = PointOfficeConfig(bound_heads=True)
    world = PointOffice(section, 1, "cpu")

    def rows(heads, shield, quantile=None):
        def make_policy(machine):
            return skill_machine(world, heads, machine, True, quantile, shield).act

        return evaluate_point_temporal(section, TASKS[0], make_policy, 32, 10_000, "cpu")

    exact, loving = ExactOfficeHeads(world, 0.95), PlantLovingHeads(world, 0.95)
    assert rows(loving, False)[1]["violations"] > 0  # random starts beside a plant go in
    assert rows(loving, True) == rows(exact, False)  # the shield leaves the exact choices
    drawn = rows(loving, True, Quantile(0.5))  # quantilised over the safe candidates only
    assert all(row["violations"] == 0.0 for row in drawn)
    # where every action enters a plant the shield keeps them all
    agent = skill_machine(world, loving, office_machine(TASKS[0]), True, shield=True)
    beside = world.centres[world.goal_labels == PLANT][:1] + torch.tensor([[0.0, 0.6]])
    obs = world.observe(beside, world.objects[:1])
    into = torch.tensor([[[0.0, -1.0], [0.1, -1.0]]])
    assert agent.safe(obs, torch.zeros(1, dtype=torch.long), into).tolist() == [[True, True]]
    both = torch.tensor([[[0.0, -1.0], [0.0, 1.0]]])
    assert agent.safe(obs, torch.zeros(1, dtype=torch.long), both).tolist() == [[False, True]]


def test_a_model_shield_needs_a_world_with_a_step_model():
    office = {"env": {"name": "office", "bound_heads": True}, "agent": {"world_values": True}}
    world, discrete = build(from_dict(Config, office))
    with pytest.raises(ValueError, match="--model-shield needs a world that knows"):
        skill_machine(world, discrete, office_machine(TASKS[0]), True, shield=True)


def test_the_rule_runs_each_machine_state_and_needs_world_value_actor_critics():
    cfg, world, agent = office_agent(share_columns=True)
    machine = office_machine(TASKS[0])
    policy = rule_machine_policy(agent, machine)
    obs = world.reset(0)
    actions = policy(obs, torch.arange(4) % len(machine.states))
    assert actions.shape == (4, 2) and actions.abs().max() <= world.speed
    rows = evaluate_temporal_task(cfg, world, agent, TASKS[0], 4, 10_000, rule=True)
    assert [row["start"] for row in rows] == ["standard", "random"]
    shielded = evaluate_temporal_task(cfg, world, agent, TASKS[0], 4, 10_000, shield=True)
    assert [(row["shield"], row["violations"]) for row in shielded] == [("model", 0.0)] * 2
    with pytest.raises(ValueError, match="as published, without a shield"):
        evaluate_temporal_task(cfg, world, agent, TASKS[0], 4, 10_000, rule=True, shield=True)
    office = {"env": {"name": "office", "bound_heads": True}, "agent": {"world_values": True}}
    _, discrete = build(from_dict(Config, office))
    with pytest.raises(ValueError, match="world-value soft actor-critic"):
        rule_machine_policy(discrete, machine)


def test_a_run_whose_slots_leave_goals_unsought_is_warned_naming_the_keys():
    cfg, world, _ = office_agent()
    few = goal_warnings(resolve(cfg, world), world)  # 4 slots, the first acting uniformly
    assert len(few) == 1 and "env.num_envs 4" in few[0] and "tasks.uniform_slots" in few[0]
    assert "'a(1,1)'" in few[0] and "'d(10,1)'" not in few[0] and "at least 18" in few[0]
    enough = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, num_envs=18))
    world = make_world(enough.env)
    assert goal_warnings(resolve(enough, world), world) == []
    every = dataclasses.replace(enough, tasks=dataclasses.replace(enough.tasks, uniform_slots=1.0))
    (none,) = goal_warnings(resolve(every, world), world)
    assert "lower tasks.uniform_slots below 1" in none
