"""The point-goals world and its exact oracle: brute force, the world contract, evaluation, and
Boolean composition of exact world values over candidate actions."""

import math

import pytest
import torch

from agents import training
from agents.component_rule import rule_choice
from agents.composition import evaluate_task
from agents.factory import build, resolve
from agents.soft_actor_critic import SoftActorCritic
from agents.world_value_actor_critic import WorldValueActorCritic
from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.languages.boolean_tasks import boolean_tasks
from composable_rl.languages.expressions import Binary, evaluate, parse
from composable_rl.maths import point_oracle as po
from composable_rl.maths.functional import wrong_goal_penalty
from composable_rl.registry import make_world
from composable_rl.replay import Batch
from envs.check import check_world
from envs.point_goals import (
    EVAL_SEED,
    PointGoals,
    PointGoalsConfig,
    goal_task_returns,
    score_goal_task,
)
from envs.point_goals import evaluate as evaluate_world

# Three goals close to the start, one of them straight behind another: every optimum needs at
# most four steps of 0.3.
SMALL = PointGoalsConfig(
    size=3.0,
    dt=0.3,
    goal_radius=0.25,
    start_radius=0.2,
    colours=["red"],
    shapes=["a", "b", "c"],
    goal_positions=[[2.0, 1.5], [2.45, 1.5], [1.5, 0.7]],
)


def small_world(num_envs: int) -> PointGoals:
    return PointGoals(SMALL, num_envs, "cpu")


def brute_force_steps(world: PointGoals, start: torch.Tensor, depth: int) -> torch.Tensor:
    """Fewest steps [G] to end an episode at each goal over every sequence of up to `depth`
    full-speed moves in 36 even directions and straight at each goal (depth + 1: none does)."""
    centres = world.objects[0]
    angles = torch.arange(36) * (2 * math.pi / 36)
    even = torch.stack([angles.cos(), angles.sin()], 1)
    straight = po.straight_actions(start.expand(len(centres), 2), centres, 1.0)
    moves = world.speed * torch.cat([even, straight])
    best = torch.full((len(centres),), depth + 1)
    agent = start[None]
    for d in range(1, depth + 1):
        agent = agent.repeat_interleave(len(moves), 0)
        actions = moves.repeat(len(agent) // len(moves), 1)
        objects = centres.expand(len(agent), -1, -1)
        agent, _, terminated, goal = world.transition(agent, objects, actions)
        for g in goal[terminated].unique().tolist():
            best[g] = min(best[g], d)
        agent = agent[~terminated]
    return best


def test_oracle_steps_are_a_bound_that_brute_force_meets_on_clear_paths():
    world = small_world(6)
    starts = world.agent.clone()
    steps = po.goal_steps(starts, world.objects, world.radius, world.step_length)
    clear = po.clear_paths(starts, world.objects, world.radius)
    assert (~clear[:, 1]).all() and clear[:, [0, 2]].all()  # goal b hides behind goal a
    for i, start in enumerate(starts):
        found = brute_force_steps(world, start, depth=4)
        assert (found >= steps[i]).all()  # no sequence beats the oracle's count
        assert torch.equal(found[clear[i]], steps[i][clear[i]])  # and straight paths meet it


def test_a_blocked_best_goal_makes_the_optimum_an_upper_bound():
    world = small_world(4)
    only_b = torch.tensor([-0.1, 2.0, -0.1])
    best, goal, exact = world.optimum(only_b)
    assert (goal == 1).all() and not exact.any()
    returns, success, _ = goal_task_returns(
        world, straight_policy(world, torch.eye(4)[2]), torch.zeros(4, 1), only_b
    )
    assert (returns <= best + 1e-9).all()
    assert not success.any()  # the straight path ends at goal a first
    world.reset(EVAL_SEED)
    best, goal, exact = world.optimum(torch.tensor([2.0, -0.1, -0.1]))
    assert (goal == 0).all() and exact.all()


def test_arrival_values_discount_and_reward_steps():
    steps = torch.tensor([[1, 3, 60]])
    rewards = torch.tensor([2.0, 2.0, 2.0])
    plain = po.arrival_values(steps, rewards, -0.1, 50)
    assert torch.allclose(plain, torch.tensor([[2.0, 1.8, -math.inf]], dtype=torch.float64))
    discounted = po.arrival_values(steps, rewards, -0.1, 50, gamma=0.9)
    expected = -0.1 * (1 + 0.9) + 0.9**2 * 2.0
    assert discounted[0, 1].item() == pytest.approx(expected)
    # When steps pay, the best arrival is the last one.
    late = po.arrival_values(steps, rewards, 0.1, 50)
    assert late[0, 0].item() == pytest.approx(0.1 * 49 + 2.0)


def straight_policy(world: PointGoals, weights: torch.Tensor | None = None):
    """The oracle's policy for the task paying `weights`-mixed head rewards (or the slot's own
    context weights): straight at full speed to the goal of the best arrival value."""

    def act(obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        position = (obs[:, :2] + 1) * world.size / 2
        centres = position[:, None] + obs[:, 2:].view(len(obs), -1, 2) * world.size
        w = context if weights is None else weights.expand(len(obs), -1)
        paid = w.float() @ world.goal_reward.T  # [N, G]
        steps = po.goal_steps(position, centres, world.radius, world.step_length)
        value = po.arrival_values(steps, paid, world.step_reward, world.episode_steps)
        target = centres[torch.arange(len(obs)), value.argmax(1)]
        return po.straight_actions(position, target, world.speed)

    return act


@pytest.mark.parametrize("placement", ["fixed", "random"])
def test_the_world_keeps_the_contract_and_the_oracle_policy_scores_one(placement):
    section = PointGoalsConfig(placement=placement, bound_heads=True)
    world = PointGoals(section, 16, "cpu")
    check_world(world)
    assert world.head_names == ["beige", "blue", "purple", "circle", "square", "MAX", "MIN"]
    rows = evaluate_world(section, straight_policy(world), 32, "cpu")
    for row in rows:
        assert row["normalized_return"] == pytest.approx(1.0), row
        assert row["exact_fraction"] == 1.0 and row["success"] == (row["task"] != "MIN")
        assert row["random_return"] < -3.0  # a random walk seldom reaches a goal in 50 steps


def test_a_uniform_policy_scores_near_zero():
    section = PointGoalsConfig()
    world = PointGoals(section, 1, "cpu")
    generator = torch.Generator().manual_seed(1)

    def uniform(obs, context):
        return world.action_spec.sample(len(obs), generator)

    row = score_goal_task(section, uniform, world.goal_reward[:, 3], 256)
    assert abs(row["normalized_return"]) < 0.05


def test_steps_cap_speed_end_at_goals_and_pay_each_head():
    world = PointGoals(PointGoalsConfig(num_envs=2), 2, "cpu")
    world.agent = torch.tensor([[2.5, 2.5], [2.5, 2.5]])
    world.objects = world.fixed.expand(2, -1, -1).clone()
    obs, reward, terminated, truncated, info = world.step(torch.tensor([[9.0, 0.0], [0.0, 0.0]]))
    assert info["final_obs"][0, 0].item() == pytest.approx(2 * 2.75 / 5 - 1)  # |u| capped at 1
    assert not terminated.any() and (reward == -0.1).all()
    world.agent = torch.tensor([[2.5 + 1.8 - 0.5, 2.5], [2.5, 2.5]])  # 0.1 from beige_circle
    _, reward, terminated, _, info = world.step(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert terminated.tolist() == [True, False] and info["goal"].tolist() == [0, -1]
    assert reward[0].tolist() == pytest.approx([2.0, -0.1, -0.1, 2.0, -0.1])


def test_random_placement_is_drawn_per_episode_and_resumes_exactly():
    section = PointGoalsConfig(placement="random")
    world = PointGoals(section, 4, "cpu")
    first = world.objects.clone()
    again = PointGoals(section, 4, "cpu")
    assert torch.equal(first, again.objects)  # a seed's layouts are its own
    assert not torch.allclose(first[0], first[1])
    world.start_episodes(torch.ones(4, dtype=torch.bool))
    assert not torch.allclose(first, world.objects)
    saved = world.state_dict()
    actions = torch.full((4, 2), 0.3)
    expected = world.step(actions)[0]
    again.load_state_dict(saved)
    assert torch.equal(again.step(actions)[0], expected)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"dt": 1.0}, "env.dt"),
        ({"goal_radius": 0.95, "size": 8.0}, "env.goal_radius"),
        ({"start_radius": 1.5}, "env.start_radius"),
        ({"ring_radius": 2.4, "placement": "random"}, "env.ring_radius"),
        ({"goal_positions": [[1.0, 1.0]]}, "env.goal_positions"),
        ({"goal_positions": [[2.6, 2.6]] * 6}, "env.goal_positions"),
        ({"heads": ["green"]}, "env.heads"),
    ],
)
def test_bad_sections_name_the_key(env, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(Config, {"env": {"name": "point_goals", **env}})


def test_the_registry_builds_the_world_from_a_config():
    cfg = from_dict(Config, {"env": {"name": "point_goals", "num_envs": 3}})
    world = make_world(cfg.env)
    assert isinstance(world, PointGoals) and world.num_envs == 3


# Exact world values: Q_k(x, g, u) of head k's extended reward (the wrong-goal penalty at any
# goal but g), at the candidate actions straight towards each goal (the actors' proposals).
def world_values(
    world: PointGoals, paid: torch.Tensor, gamma: float, penalty: float | None = None
) -> torch.Tensor:
    """Exact world values [N, G, C] at the world's positions for goal rewards paid [G]: column
    g pays paid[g] at goal g and `penalty` (default: the agent's) at any other, and ends at
    whichever goal is best (goal g itself, unless the penalty is no worse than paid[g])."""
    n, goals = world.agent.shape[0], world.objects.shape[1]
    if penalty is None:
        penalty = wrong_goal_penalty(world.r_min, world.r_max, world.step_reward, world.num_states)
    centres = world.objects.repeat_interleave(goals, 0)
    position = world.agent.repeat_interleave(goals, 0)
    targets = world.objects.reshape(-1, 2)
    moves = po.straight_actions(position, targets, world.speed)
    after, _, ended, goal = world.transition(position, centres, moves)
    steps = po.goal_steps(after, centres, world.radius, world.step_length)
    paid = paid.double()
    column_rewards = torch.full((goals, goals), penalty, dtype=torch.float64)
    column_rewards.diagonal().copy_(paid)  # [column g, goal h]
    onward = world.step_reward + gamma * torch.stack(
        [
            po.arrival_values(steps, rewards, world.step_reward, 10**6, gamma).amax(1)
            for rewards in column_rewards
        ],
        1,
    )
    arrived = column_rewards.T[goal.clamp(min=0)]  # [N * C, G]: the column's reward of goal
    q = torch.where(ended[:, None], arrived, onward)  # [N * C, G]
    return q.view(n, goals, goals).transpose(1, 2)


def composed_policy(world: PointGoals, expression, gamma: float, penalty: float | None = None):
    """Greedy acting on the expression's composed exact world values over the candidates."""
    names = [*world.head_names]

    def act(obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        heads = {
            name: world_values(world, world.goal_reward[:, k], gamma, penalty)
            for k, name in enumerate(names)
        }
        bounds = (heads["MAX"], heads["MIN"])
        composed = evaluate(expression, heads, bounds=bounds)  # [N, G, C]
        choice = composed.amax(1).argmax(1)
        return po.straight_actions(
            world.agent, world.objects[torch.arange(len(obs)), choice], world.speed
        )

    return act


@pytest.mark.parametrize(
    ("gamma", "penalty"), [(0.95, None), (1.0, None), (0.95, -0.1)]
)  # the agent's default wrong-goal penalty, and r_min (point_goals_random.yaml)
def test_every_boolean_task_is_solved_by_composing_exact_world_values(gamma, penalty):
    section = PointGoalsConfig(bound_heads=True, placement="random")
    world = PointGoals(section, 32, "cpu")
    attributes = world.head_names[:-2]
    tasks = boolean_tasks(attributes, world.goal_membership[:, :-2])
    assert len(tasks) == 63
    for text, mask in tasks:
        paid = torch.where(mask, world.r_max, world.r_min)
        world.reset(EVAL_SEED)
        best, _, exact = world.optimum(paid)
        returns, success, _ = goal_task_returns(
            world, composed_policy(world, text, gamma, penalty), torch.zeros(32, 1), paid
        )
        assert exact.all() and success.all(), text
        assert torch.allclose(returns, best, atol=1e-9), text


def component_rule(world: PointGoals, expression, gamma: float):
    """The library's component-action rule on exact world values, where the actor of column
    (k, g) moves straight to goal g."""
    heads, goals = len(world.head_names), world.objects.shape[1]

    def act(obs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        exact = [world_values(world, world.goal_reward[:, k], gamma) for k in range(heads)]
        values = torch.stack(exact, 1).repeat(1, 1, 1, heads)  # [N, K, G, K * G]
        _, chosen = rule_choice(expression, values, world.head_names)
        target = world.objects[torch.arange(len(obs)), chosen % goals]
        return po.straight_actions(world.agent, target, world.speed)

    return act


def test_the_component_action_rule_misses_a_conjunction_that_composed_values_solve():
    # blue_circle and purple_square lie near the start; the one blue square is far away.
    positions = [[2.5, 0.7], [4.2, 4.2], [3.5, 2.5], [2.5, 4.3], [0.8, 0.8], [1.4, 2.5]]
    section = PointGoalsConfig(goal_positions=positions, start_radius=0.0, bound_heads=True)
    world = PointGoals(section, 1, "cpu")
    expression = parse("blue & square")
    assert isinstance(expression, Binary)
    paid = torch.where(world.goal_membership[:, 1] & world.goal_membership[:, 4], 2.0, -0.1)
    best, goal, _ = world.optimum(paid)
    assert goal.item() == 3
    context = torch.zeros(1, 1)
    composed, solved, _ = goal_task_returns(
        world, composed_policy(world, expression, 1.0), context, paid
    )
    rule, rule_solved, _ = goal_task_returns(
        world, component_rule(world, expression, 1.0), context, paid
    )
    assert composed.item() == pytest.approx(best.item()) and solved.item()
    assert not rule_solved.item() and rule.item() < best.item() - 1.0


def world_value_agent(**agent):
    """World-value soft actor-critic heads for a small point-goals world."""
    cfg = from_dict(
        Config,
        {
            "env": {"name": "point_goals", "num_envs": 4, "bound_heads": True},
            "agent": {
                "heads": "soft_actor_critic",
                "world_values": True,
                "hidden": [16],
                "sac": {"candidates": 2},
                **agent,
            },
        },
    )
    return build(cfg)


def test_world_value_heads_have_a_column_and_an_actor_per_head_and_goal():
    world, agent = world_value_agent()
    assert isinstance(agent, WorldValueActorCritic) and agent.head_names == world.head_names
    k, g = len(world.head_names), len(world.goal_names)
    obs = world.reset(0)
    candidates = torch.zeros(4, 3, 2)
    assert agent.head_values_at(obs, candidates).shape == (4, k, g, 3)
    assert agent.log_alpha.shape == (k * g,)
    actions = agent.act(obs, torch.eye(k)[1], alpha=0.0)
    assert actions.shape == (4, 2) and actions.abs().max() <= world.speed
    composed = agent.act_on(obs, lambda q: q[:, 1] - q[:, 3], alpha=0.0)
    assert composed.shape == (4, 2)


def test_world_value_heads_learn_extended_rewards_with_per_head_diagnostics(monkeypatch):
    world, agent = world_value_agent()
    k, g = len(world.head_names), len(world.goal_names)
    obs = world.reset(0)
    batch = Batch(
        obs, torch.zeros(4, 2), torch.ones(4, k), torch.ones(4, dtype=torch.bool), obs,
        torch.tensor([0, 1, -1, 2]),
    )  # fmt: skip
    seen = {}
    original = SoftActorCritic.update

    def spy(self, inner):
        seen["reward"] = inner.reward
        return original(self, inner)

    monkeypatch.setattr(SoftActorCritic, "update", spy)
    stats = agent.update(batch)
    reward = seen["reward"].view(4, k, g)
    assert (reward[0, :, 0] == 1).all() and (reward[0, :, 1:] == agent.penalty).all()
    assert (reward[2] == 1).all()  # no goal reached: the head's own reward in every column
    assert all(stats[key].shape == (k,) for key in ("td_error", "q_mean", "entropy", "alpha"))


def test_in_training_slot_i_pursues_its_task_at_goal_i_mod_g(monkeypatch):
    world, agent = world_value_agent()
    k, g = len(world.head_names), len(world.goal_names)
    composers = []

    def spy(obs, compose, **_):
        composers.append(compose)
        return torch.zeros(len(obs), 2)

    monkeypatch.setattr(agent, "act_on", spy)
    obs, weights = world.reset(0), torch.eye(k)[:4]
    agent.act(obs, weights, behaviour=True)
    agent.act(obs, weights)
    goal_index = torch.arange(g, dtype=torch.float32).view(1, 1, g, 1).expand(4, k, g, 3)
    behaviour, acting = (compose(goal_index) for compose in composers)
    assert behaviour.shape == (4, 1, 3) and torch.equal(behaviour[:, 0, 0], torch.arange(4.0) % g)
    assert acting.shape == (4, g, 3)  # acting scores every goal


def tiny_run(total_steps: int) -> Config:
    """A run config of world-value heads on 4 point-goals slots, updates from 32 steps on."""
    return from_dict(
        Config,
        {
            "env": {"name": "point_goals", "num_envs": 4, "bound_heads": True},
            "agent": {"heads": "soft_actor_critic", "world_values": True, "hidden": [8]},
            "replay": {"learning_starts": 32, "batch_size": 16},
            "total_steps": total_steps,
            "eval_episodes": 1,
        },
    )


def test_the_first_slots_act_uniformly_all_through_training(monkeypatch, tmp_path):
    cfg = tiny_run(40)
    assert resolve(cfg, make_world(cfg.env)).tasks.uniform_slots == 0.25
    sent = []
    step = PointGoals.step

    def record(self, actions):
        sent.append(actions.clone())
        return step(self, actions)

    def still(self, obs, context, **_):
        return torch.zeros(obs.shape[0], 2)

    monkeypatch.setattr(WorldValueActorCritic, "act", still)
    monkeypatch.setattr(PointGoals, "step", record)
    training.train(cfg, tmp_path / "run", progress=False)
    moves = torch.stack(sent[:10])  # the training steps, before the final evaluation's
    assert (moves[:, 0] != 0).all() and (moves[:, 1:] == 0).all()


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"env": {"name": "linear_quadratic"}}, "agent.world_values"),
        ({"env": {"name": "point_goals"}, "agent": {"goal_conditioned": True}}, "goal_conditioned"),
    ],
)
def test_world_values_need_goals_and_vector_observations(sections, key):
    agent = {"heads": "soft_actor_critic", "world_values": True, **sections.get("agent", {})}
    with pytest.raises(ConfigError, match=key):
        build(from_dict(Config, {"env": sections["env"], "agent": agent}))


def test_boolean_tasks_on_point_goals_are_scored_against_the_oracle():
    _, agent = world_value_agent()
    cfg = from_dict(Config, {"env": {"name": "point_goals", "bound_heads": True}})
    world = make_world(cfg.env, 1)
    row = evaluate_task(cfg, world, agent, "blue & ~square", 8, EVAL_SEED)
    assert row["exact_fraction"] == 1.0 and row["oracle_return"] > 0
    assert row["normalized_return"] is not None
