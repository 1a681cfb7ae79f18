"""Gymnasium face: API compliance, equivalence with the batched engine, no auto-reset."""

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs
from envs import FORAGING_ID, OBJECT_ROOMS_ID, OFFICE_ID
from envs.gym_env import ObjectRoomsEnv, engine_seed
from envs.object_rooms import ObjectRooms
from tests.scalarize import scalarized

WEIGHTS = np.array([1.0, -0.5, 0.0, 0.25, 0.0], dtype=np.float32)


def test_check_env_passes_on_scalarized_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(scalarized(ObjectRoomsEnv(render_mode="rgb_array"), WEIGHTS))
        check_env(scalarized(gym.make(OBJECT_ROOMS_ID, render_mode="rgb_array"), WEIGHTS))


def test_spaces_and_registration():
    env = gym.make(OBJECT_ROOMS_ID, layout="open5", max_steps=7)
    assert env.observation_space == gym.spaces.Box(0, 1, (7, 7, 7), np.uint8)
    assert env.action_space == gym.spaces.Discrete(4)
    reward_space = env.get_wrapper_attr("reward_space")
    assert reward_space.shape == (5,) and reward_space.dtype == np.float32
    assert reward_space.low[0] == pytest.approx(-0.1) and reward_space.high[0] == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn "Overriding environment"
        importlib.reload(envs)
    assert OBJECT_ROOMS_ID in gym.registry


def test_vector_reward_and_no_auto_reset():
    env = ObjectRoomsEnv(layout="open5", colours=("blue",), object_positions=[[1, 2], [1, 3]])
    env.reset(seed=0)
    env.world.agent = torch.tensor([1 * 7 + 1])
    obs, reward, terminated, truncated, info = env.step(1)
    assert terminated and not truncated and info == {"goal": 0}
    assert reward.dtype == np.float32 and reward.tolist() == pytest.approx([2.0, 2.0, -0.1])
    assert reward in env.reward_space
    assert obs[1, 1, 2] == 1 and obs[2, 1, 2] == 1  # agent stands on the collected object
    assert env.render()[16 * 1 + 8, 16 * 2 + 8].tolist() != env.render()[0, 0].tolist()
    with pytest.raises(ValueError):
        env.step(4)


def test_reset_semantics():
    env = ObjectRoomsEnv()
    first, _ = env.reset(seed=42)
    second, _ = env.reset()
    again, _ = env.reset(seed=42)
    assert np.array_equal(first, again) and not np.array_equal(first, second)
    world = ObjectRooms(num_envs=1)
    world.reset(42)
    world.start_episodes(torch.ones(1, dtype=torch.bool))
    assert np.array_equal(second, world.observe(world.agent, world.objects)[0].numpy())
    unseeded = ObjectRoomsEnv()
    obs, _ = unseeded.reset()
    assert obs in unseeded.observation_space


def test_batched_engine_matches_gym_envs_step_for_step():
    num, steps, seed = 64, 60, 777
    kwargs = {"max_steps": 12}
    batched = ObjectRooms(num_envs=num, **kwargs)
    obs = batched.reset(seed)
    singles = [ObjectRoomsEnv(**kwargs) for _ in range(num)]
    single_obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    assert np.array_equal(obs.numpy(), single_obs)
    actions = torch.randint(0, 4, (steps, num), generator=torch.Generator().manual_seed(0))
    episodes = 0
    for t in range(steps):
        obs, reward, terminated, truncated, info = batched.step(actions[t])
        for i, env in enumerate(singles):
            o, r, term, trunc, inf = env.step(int(actions[t, i]))
            assert np.array_equal(info["final_obs"][i].numpy(), o)
            assert np.array_equal(reward[i].numpy(), r)
            assert (bool(terminated[i]), bool(truncated[i])) == (term, trunc)
            assert int(info["goal"][i]) == inf["goal"]
            if term or trunc:
                episodes += 1
                o, _ = env.reset()
            assert np.array_equal(obs[i].numpy(), o)
    assert episodes > 3 * num


def test_every_world_is_registered():
    for env_id in (envs.OBJECT_ROOMS_ID, envs.OFFICE_ID, envs.FORAGING_ID):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
        assert env.get_wrapper_attr("reward_space").shape == (env.unwrapped.world.num_heads,)


@pytest.mark.parametrize("importing", ["import envs", "pass"], ids=["import", "prefix"])
def test_ids_made_in_a_fresh_interpreter(tmp_path, importing):
    """After `import envs`, or with the package named in the id, every id is made; importing
    the library alone registers none (it knows no world)."""
    prefix = "" if importing != "pass" else "envs:"
    makes = "; ".join(
        f"gymnasium.make('{prefix}{env_id}').reset(seed=0)"
        for env_id in (OBJECT_ROOMS_ID, OFFICE_ID, FORAGING_ID)
    )
    root = str(Path(envs.__file__).parents[1])  # where CI's editable install points too
    environ = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    bare = "import composable_rl; assert 'composable_rl/Office-v0' not in gymnasium.registry"
    code = f"import gymnasium; {bare}; {importing}; {makes}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_engine_seed_keeps_64_bits_and_hashes_larger_seeds():
    assert engine_seed(0) == 0 and engine_seed(2**63 - 1) == 2**63 - 1
    assert engine_seed(2**63) == -(2**63) and engine_seed(2**64 - 1) == -1
    keys = {engine_seed(seed) for seed in (0, 1, 2**64, 2**64 + 1, 2**100)}
    assert len(keys) == 5 and all(-(2**63) <= key < 2**63 for key in keys)
    batched = ObjectRooms(num_envs=2)
    obs = batched.reset(2**64 - 2)  # slot 1 plays seed 2**64 - 1, wrapped as torch wraps it
    assert np.array_equal(obs[1].numpy(), ObjectRoomsEnv().reset(seed=2**64 - 1)[0])


def test_reset_takes_every_seed_gymnasium_takes():
    for env_id in (OBJECT_ROOMS_ID, OFFICE_ID, FORAGING_ID):
        env = gym.make(env_id)
        for seed in (2**64, 2**100):
            obs, _ = env.reset(seed=seed)
            assert obs in env.observation_space
            assert np.array_equal(obs, env.reset(seed=seed)[0])
            assert env.reset()[0] in env.observation_space  # the seed's next episode
        for seed, text in ((-1, "greater or equal to zero"), (1.5, "python integer")):
            with pytest.raises(gym.error.Error, match=text):
                env.reset(seed=seed)
