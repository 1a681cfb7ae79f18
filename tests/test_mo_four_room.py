"""Tabular model of MO-Gymnasium's four-room-v0: agreement with env.step, exact returns."""

import gymnasium as gym
import mo_gymnasium  # noqa: F401  (registers four-room-v0)
import numpy as np
import pytest
import torch

from composable_rl.maths.oracle import TabularMDP, backup
from envs.mo_four_room import exact_returns, four_room_mdp, state_index

HEADS = 3
RANDOM_RETURNS = (0.5515785871016894, 1.0160779939401507, 1.0160779939401507)


@pytest.fixture(scope="module")
def env() -> gym.Env:
    """The registered env, wrappers included, as a config's oracle would receive it."""
    return gym.make("four-room-v0", disable_env_checker=True)


@pytest.fixture(scope="module")
def models(env: gym.Env) -> list[tuple[TabularMDP, int, list[int] | None]]:
    """The full model and the one-head models, with their starts and head selections."""
    selections = [None] + [[head] for head in range(HEADS)]
    return [(*four_room_mdp(env, heads), heads) for heads in selections]


def check_step(
    env: gym.Env, models: list, obs: np.ndarray, action: int, step: tuple
) -> tuple[bool, bool, bool]:
    """Assert that every model predicts env.step's (obs, reward, terminated).

    Returns whether the step paid anything, terminated and truncated, to count what was covered.
    """
    next_obs, reward, terminated, truncated, _ = step
    reward = torch.as_tensor(reward, dtype=torch.float64)
    for mdp, _, heads in models:
        state = state_index(env, obs, heads)
        assert mdp.valid[0, state]
        assert int(mdp.next_state[0, state, action]) == state_index(env, next_obs, heads)
        expected = reward if heads is None else reward[heads]
        assert torch.equal(mdp.reward[0, state, action], expected)
        assert bool(mdp.terminal[0, state, action]) == terminated
    return bool(reward.any()), terminated, truncated


def test_state_space_and_fixed_start(env: gym.Env, models: list):
    full, start, _ = models[0]
    assert full.next_state.shape == (1, 169 * 2**12, 4)
    assert full.reward.shape == (1, 169 * 2**12, 4, HEADS)
    assert (full.goal == -1).all()
    for mdp, head_start, heads in models[1:]:
        assert mdp.next_state.shape == (1, 169 * 2**4, 4) and mdp.reward.shape[-1] == 1
        assert head_start == state_index(env, env.reset(seed=0)[0], heads)
    for seed in range(5):
        assert state_index(env, env.reset(seed=seed)[0]) == start


def test_models_match_env_on_random_walks(env: gym.Env, models: list):
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    episodes = paid = 0
    for _ in range(3000):
        action = int(rng.integers(4))
        step = env.step(action)
        reward, terminated, truncated = check_step(env, models, obs, action, step)
        paid += reward
        obs = step[0]
        if terminated or truncated:
            obs, _ = env.reset()
            episodes += 1
    assert episodes >= 10 and paid >= 10


def test_models_match_env_from_random_valid_states(env: gym.Env, models: list):
    """Steps from states a walk rarely reaches: many items collected, next to the goal."""
    base = env.unwrapped
    full = models[0][0]
    valid = torch.nonzero(full.valid[0]).flatten()
    generator = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(1)
    env.reset(seed=1)
    paid = terminations = 0
    for state in valid[torch.randint(len(valid), (3000,), generator=generator)].tolist():
        cell, mask = divmod(state, 2**12)
        collected = tuple((mask >> item) & 1 for item in range(12))
        base.state = (divmod(cell, base.width), collected)
        obs = base.state_to_array(base.state)
        assert state_index(env, obs) == state
        action = int(rng.integers(4))
        reward, terminated, _ = check_step(env, models, obs, action, base.step(action))
        paid += reward
        terminations += terminated
    assert paid >= 20 and terminations >= 3


def test_invalid_states_are_inert(models: list):
    for mdp, _, _ in models:
        invalid = ~mdp.valid[0]
        states = torch.nonzero(invalid).flatten()
        assert torch.equal(mdp.next_state[0][invalid], states[:, None].expand(-1, 4))
        assert not mdp.terminal[0][invalid].any() and (mdp.reward[0][invalid] == 0).all()


def test_exact_returns_values(env: gym.Env):
    optimal, random = exact_returns(env)
    assert optimal.tolist() == [5.0] * HEADS
    assert random.tolist() == pytest.approx(RANDOM_RETURNS, rel=1e-12)
    assert (optimal >= random).all()
    # Reflecting the maze in its anti-diagonal fixes start and goal and swaps shapes 2 and 3.
    assert random[1] == pytest.approx(float(random[2]), rel=1e-12)


def test_optimal_return_is_achieved_in_env(env: gym.Env, models: list):
    """The finite-horizon DP's greedy non-stationary policy earns exactly the optimum per head."""
    horizon = env.spec.max_episode_steps
    optimal, _ = exact_returns(env)
    for head, (mdp, start, heads) in enumerate(models[1:]):
        reward = mdp.reward[..., 0]
        values = [torch.zeros(mdp.valid.shape, dtype=torch.float64)]
        for _ in range(horizon):
            values.append(backup(mdp, reward, values[-1]).amax(-1))
        assert float(values[horizon][0, start]) == float(optimal[head])
        obs, _ = env.reset(seed=0)
        total, steps, done = 0.0, 0, False
        while not done:
            state = state_index(env, obs, heads)
            q = backup(mdp, reward, values[horizon - steps - 1])[0, state]
            obs, vector, terminated, truncated, _ = env.step(int(q.argmax()))
            total += float(vector[head])
            steps += 1
            done = terminated or truncated
        assert total == float(optimal[head])


def test_several_starts_are_refused():
    maze = mo_gymnasium.envs.four_room.four_room.MAZE.copy()
    maze[12, 1] = "_"
    with pytest.raises(ValueError, match="one start cell"):
        four_room_mdp(mo_gymnasium.envs.four_room.four_room.FourRoom(maze=maze))
