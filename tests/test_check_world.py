"""check_world: a small correct corridor world passes, and each broken variant is reported with
a line naming its defect."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from composable_rl.config import ConfigError, from_dict
from composable_rl.registry import make_world, registered_worlds, world_entry
from composable_rl.world import GoalWorld, LabelledWorld, StepModel, TabularWorld
from envs.check import ACTION_SPEC, WorldContractError, check_world
from envs.point_office import PointOffice, PointOfficeConfig
from tests.corridor_world import Corridor


def problems_of(world: object, steps: int = 60) -> list[str]:
    """The problems check_world reports for `world` (empty for a correct one)."""
    try:
        check_world(world, steps=steps)
    except WorldContractError as err:
        assert str(err).count("\n") == len(err.problems)  # one line per problem
        return err.problems
    return []


def assert_reported(problems: list[str], fragment: str) -> None:
    """Exactly one problem line names `fragment`."""
    hits = [line for line in problems if fragment in line]
    assert len(hits) == 1, f"{fragment!r} not reported once in {problems}"


def test_correct_corridor_passes_and_claims_its_capabilities():
    """A correct GoalWorld, TabularWorld and LabelledWorld passes every rule."""
    world = Corridor()
    assert isinstance(world, GoalWorld)
    assert isinstance(world, TabularWorld)
    assert isinstance(world, LabelledWorld)
    assert check_world(world) is None


def test_error_is_a_value_error_listing_problems():
    """WorldContractError is a ValueError whose problems are its message lines."""
    world = Corridor()
    world.action_spec = 2
    with pytest.raises(ValueError, match="action_spec: expected an ActionSpec") as caught:
        check_world(world)
    assert isinstance(caught.value, WorldContractError)
    assert caught.value.problems == [f"action_spec: expected {ACTION_SPEC}, got 2"]


def test_a_world_with_num_actions_is_told_what_replaced_it():
    world = Corridor()
    del world.action_spec
    world.num_actions = 2
    assert problems_of(world) == [
        f"action_spec: missing, expected {ACTION_SPEC}; num_actions is replaced by "
        "action_spec = ActionSpec.discrete(n)"
    ]


def test_missing_and_mistyped_core_attributes():
    """Core attributes: a missing one and a mistyped one are named."""
    world = Corridor()
    del world.device
    world.head_names = ["a", "a"]
    problems = problems_of(world)
    assert_reported(problems, "device: missing, expected a torch.device")
    assert_reported(problems, "head_names: expected a non-empty list of distinct str")


class WideReward(Corridor):
    """Pays three reward columns for two head names."""

    def step(self, actions):
        """The corridor's step with the first reward column repeated."""
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, torch.cat([reward, reward[:, :1]], 1), terminated, truncated, info


def test_reward_wider_than_head_names():
    """reward [N, K] must have K == len(head_names)."""
    assert_reported(
        problems_of(WideReward()),
        "step() reward shape: expected [4, 2] (num_envs, len(head_names)), got [4, 3]",
    )


class FloatObs(Corridor):
    """Index observations as float32 instead of the spec's long."""

    def reset(self, seed=0):
        """The corridor's reset, cast to float."""
        return super().reset(seed).float()


def test_observation_dtype_differs_from_spec():
    """Observations carry observation_spec.dtype."""
    assert_reported(
        problems_of(FloatObs()), "reset() obs dtype: expected torch.int64, got torch.float32"
    )


class FlatObs(Corridor):
    """Observations [N] instead of [N, 1]."""

    def step(self, actions):
        """The corridor's step with the observation axis dropped."""
        obs, reward, terminated, truncated, info = super().step(actions)
        info["final_obs"] = info["final_obs"][:, 0]
        return obs[:, 0], reward, terminated, truncated, info


def test_observation_of_wrong_shape():
    """Observations (and final observations) are [N, *spec.shape]."""
    problems = problems_of(FlatObs())
    assert_reported(problems, "step() obs shape: expected [4, 1] (batch, *spec.shape), got [4]")
    assert_reported(problems, "step() info['final_obs'] shape: expected [4, 1]")


class NoFinalObs(Corridor):
    """Forgets info["final_obs"]."""

    def step(self, actions):
        """The corridor's step without final_obs."""
        obs, reward, terminated, truncated, info = super().step(actions)
        del info["final_obs"]
        return obs, reward, terminated, truncated, info


def test_missing_final_obs():
    """info must hold final_obs."""
    assert_reported(problems_of(NoFinalObs()), "step() info['final_obs']: missing")


class StaleFinalObs(Corridor):
    """final_obs is the observation before the step, so it differs from obs on running slots."""

    def step(self, actions):
        """The corridor's step with final_obs taken before moving on running slots."""
        before = self.cell[:, None].clone()
        obs, reward, terminated, truncated, info = super().step(actions)
        finished = (terminated | truncated)[:, None]
        info["final_obs"] = torch.where(finished, info["final_obs"], before)
        return obs, reward, terminated, truncated, info


def test_final_obs_differs_on_running_slots():
    """final_obs equals obs on slots that did not finish."""
    assert_reported(
        problems_of(StaleFinalObs()), "step() info['final_obs'] on running slots: differs from obs"
    )


class DriftingReset(Corridor):
    """Ignores part of the seed: every reset starts one cell further along."""

    calls = 0

    def reset(self, seed=0):
        """The corridor's reset with a seed that grows on every call."""
        self.calls += 1
        return super().reset(seed + self.calls)


def test_reset_not_deterministic_in_its_seed():
    """Two runs from the same seed and actions must agree."""
    assert_reported(
        problems_of(DriftingReset()),
        "seeded determinism: two runs of reset(seed=0) with the same actions differ first",
    )


class DoubleEnding(Corridor):
    """Marks every terminated slot truncated as well."""

    def step(self, actions):
        """The corridor's step with truncated also set where terminated."""
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, reward, terminated, truncated | terminated, info


def test_terminated_and_truncated_together():
    """A slot is never both terminated and truncated."""
    assert_reported(problems_of(DoubleEnding()), "step() terminated and truncated: both true")


def test_tensors_off_the_world_device():
    """Observations live on world.device; an unusable device is reported, not raised."""
    world = Corridor()
    world.device = torch.device("meta")
    assert_reported(problems_of(world), "reset() obs device: expected meta (world.device), got cpu")
    world.device = torch.device("cuda", 99)
    assert_reported(problems_of(world), "device: creating a tensor on cuda:99 raised")


def test_goal_membership_of_wrong_shape():
    """goal_membership is [len(goal_names), len(head_names)]."""
    world = Corridor()
    world.goal_membership = torch.ones(3, 2, dtype=torch.bool)
    assert_reported(
        problems_of(world),
        "GoalWorld goal_membership shape: expected [2, 2] (len(goal_names), len(head_names)), "
        "got [3, 2]",
    )


class GoalNamesOnly:
    """A bare world with goal_names but none of GoalWorld's other attributes."""

    def __init__(self) -> None:
        """Copy the corridor's core attributes and its goal names only."""
        self.inner = Corridor()
        for name in ("num_envs", "device", "observation_spec", "action_spec", "head_names"):
            setattr(self, name, getattr(self.inner, name))
        self.goal_names = self.inner.goal_names

    def reset(self, seed: int = 0) -> Tensor:
        """The corridor's reset."""
        return self.inner.reset(seed)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """The corridor's step."""
        return self.inner.step(actions)


def test_partial_goal_world_names_the_missing_attributes():
    """A world with some GoalWorld attributes is told which ones it lacks."""
    problems = problems_of(GoalNamesOnly())
    assert problems == [
        "GoalWorld (partial): has goal_names but lacks goal_membership, r_max, r_min, "
        "step_reward, num_states, goal_slots"
    ]


class FailingStep(Corridor):
    """Raises on the third step."""

    steps_taken = 0

    def step(self, actions):
        """The corridor's step, until the third call."""
        self.steps_taken += 1
        if self.steps_taken == 3:
            raise RuntimeError("corridor exploded")
        return super().step(actions)


def test_step_exception_is_reported_not_raised():
    """An exception in step() becomes a problem and skips the determinism check."""
    problems = problems_of(FailingStep())
    assert_reported(problems, "step() raised RuntimeError: corridor exploded")
    assert not any("seeded determinism" in line for line in problems)  # skipped


def test_reset_exception_is_reported_not_raised():
    """An exception in reset() becomes the only problem."""
    world = Corridor()
    world.reset = lambda seed=0: 1 / 0
    assert problems_of(world) == ["reset(seed=0) raised ZeroDivisionError: division by zero"]


class OutOfRange(Corridor):
    """Index observations one past num_features."""

    def reset(self, seed=0):
        """The corridor's reset shifted past the last feature."""
        return super().reset(seed) + self.length


def test_index_observation_out_of_range():
    """Index observations lie in [0, num_features)."""
    assert_reported(
        problems_of(OutOfRange()),
        "reset() obs values: expected in [0, 5) (spec.num_features), got range [",
    )


class SloppyGoals(Corridor):
    """Never terminates, and names the right-hand goal 2 (there are two goals)."""

    def step(self, actions):
        """The corridor's step with goal 1 renamed 2 and terminated cleared."""
        obs, reward, terminated, truncated, info = super().step(actions)
        info["goal"] = torch.where(info["goal"] == 1, 2, info["goal"])
        return obs, reward, torch.zeros_like(terminated), truncated, info


def test_goal_reached_without_terminating_and_goal_out_of_range():
    """GoalWorld step rules: goal indices in [-1, G) and goals are terminal."""
    problems = problems_of(SloppyGoals())
    assert_reported(problems, "step() info['goal'] values: expected in [-1, 2)")
    assert_reported(problems, "step() info['goal'] without terminated: slots")


class OneActionModel(Corridor):
    """A tabular model that forgets the second action."""

    def tabular_episodes(self):
        """The corridor's model with next_state cut to one action."""
        mdp, which, start = super().tabular_episodes()
        mdp.next_state = mdp.next_state[..., :1]
        return mdp, which, start


def test_tabular_and_labelled_defects():
    """TabularWorld model shapes and LabelledWorld label indices."""
    world = OneActionModel()
    world.goal_labels = torch.tensor([1, 3])
    problems = problems_of(world)
    assert_reported(
        problems, "TabularWorld tabular_episodes() mdp.next_state shape: expected [1, 5, 2]"
    )
    assert_reported(problems, "LabelledWorld goal_labels values: expected in [0, 3)")


class BlindOffice(PointOffice):
    """The continuous Office with a step model that never names a disc."""

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """No entry, whatever the move."""
        return torch.full(actions.shape[:2], -1)


class FlatOffice(PointOffice):
    """The continuous Office with a step model that leaves out the actions' axis."""

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The right goals, one per slot instead of one per action."""
        return super().entered_goals(obs, actions)[:, 0]


class TiledOffice(PointOffice):
    """The continuous Office with a step model that pairs slots with other slots' actions."""

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The goals of the actions read slot-major as if action-major."""
        n, c = actions.shape[:2]
        return super().entered_goals(obs, actions.transpose(0, 1).reshape(n, c, -1))


class BrokenModelOffice(PointOffice):
    """The continuous Office with a step model that raises."""

    def entered_goals(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Always fails."""
        raise RuntimeError("no model today")


def test_a_step_model_that_misses_an_entry_or_drops_an_axis_is_reported():
    """entered_goals() is [N, C] and names every goal a step enters, for every action."""
    assert isinstance(PointOffice(PointOfficeConfig(), 1, "cpu"), StepModel)
    assert problems_of(PointOffice(PointOfficeConfig(), 8, "cpu")) == []
    for broken in (BlindOffice, TiledOffice):
        (missed,) = problems_of(broken(PointOfficeConfig(), 8, "cpu"))
        assert missed.startswith("StepModel entered_goals(): slots [") and "(first at" in missed
    (flat,) = problems_of(FlatOffice(PointOfficeConfig(), 8, "cpu"))
    assert flat.startswith("StepModel entered_goals() shape: expected [8, 2]")
    (raised,) = problems_of(BrokenModelOffice(PointOfficeConfig(), 8, "cpu"))
    assert raised.startswith("StepModel entered_goals() raised RuntimeError: no model today")


def test_internal_levels_of_wrong_width():
    """internal is [N, len(variable_names)]."""
    world = Corridor()
    world.variable_names = ["energy"]
    world.internal = torch.zeros(4, 2)
    assert_reported(
        problems_of(world),
        "InternalLevels internal after reset() shape: expected [4, 1] "
        "(num_envs, len(variable_names)), got [4, 2]",
    )


class TwoDefects(WideReward, DoubleEnding):
    """Wide rewards and double endings at once."""


def test_two_defects_are_both_reported():
    """Every defect gets its own line, not just the first one found."""
    problems = problems_of(TwoDefects())
    assert_reported(problems, "step() reward shape")
    assert_reported(problems, "step() terminated and truncated: both true")


def test_each_step_defect_is_reported_once_with_its_first_step():
    """A defect repeated on every step is one line, naming the step it first appeared."""
    problems = problems_of(WideReward())
    assert len(problems) == 1
    assert problems[0].endswith("(first at step 1)")


def default_section(name: str) -> object | None:
    """The default config section of a registered world (None when it needs more keys)."""
    data = {"name": name, "id": "CartPole-v1"} if name == "gymnasium" else {"name": name}
    try:
        return from_dict(world_entry(name).config, data)
    except ConfigError:
        return None


@pytest.mark.parametrize("name", registered_worlds())
def test_registered_world_passes(name):
    """Every registered world, built from its default section, keeps the contract."""
    section = default_section(name)
    assert section is not None, f"world {name!r} has no valid default section"
    check_world(make_world(section, num_envs=3), steps=50)
