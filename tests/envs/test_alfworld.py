"""The household family (``agentropy/ALFWorld-v0``): generator rules, the real engine, the oracle,
the cache and the official-dataset loader. The shared contract (check_env, determinism, fuzz) is
in test_contract.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest
from agentropy.envs.alfworld import assets
from agentropy.envs.alfworld import generator as gen
from agentropy.envs.alfworld.env import TASKS_PER_TYPE, ALFWorldEnv, task_sentence
from agentropy.envs.alfworld.generate import generate
from agentropy.envs.alfworld.store import GameStore

from agentropy import envs  # noqa: F401

TASK_TYPES = assets.ALFRED_TASK_TYPES
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("household-cache")


@pytest.fixture(scope="module")
def env(cache):
    env = gym.make("agentropy/ALFWorld-v0", cache_dir=cache, max_episode_steps=200)
    yield env
    env.close()


def _play_expert(env, **reset_kwargs):
    obs, info = env.reset(**reset_kwargs)
    commands = []
    terminated = truncated = False
    while not (terminated or truncated):
        assert info["expert_action"] is not None, (info["task_id"], obs)
        commands.append(info["expert_action"])
        obs, reward, terminated, truncated, info = env.step(commands[-1])
        assert info["action_is_valid"], (commands, obs)
    return info, commands


# ------------------------------------------------------------------------ generator (no engine)
def _scene_rule_violations(scene: gen.Scene) -> list[str]:
    vocab = assets.vocabulary()
    p, errors = scene.params, []
    rec = {r.id: r for r in scene.receptacles}
    room = assets.room_type(scene.floor_plan)
    if room not in vocab.rooms[scene.task_type]:
        errors.append(f"{scene.task_type} in a {room}")
    if (scene.split == "valid_unseen") != (scene.floor_plan in gen.HELD_OUT_FLOOR_PLANS):
        errors.append(f"{scene.split} on FloorPlan{scene.floor_plan}")
    affordance = {"pick_clean_then_place_in_recep": (vocab.cleanable, "SinkBasin"),
                  "pick_heat_then_place_in_recep": (vocab.heatable, "Microwave"),
                  "pick_cool_then_place_in_recep": (vocab.coolable, "Fridge")}
    if scene.task_type in affordance:
        kinds, appliance = affordance[scene.task_type]
        if p.object_target not in kinds or p.parent_target == appliance:
            errors.append(f"bad state-change task {p}")
        if not any(r.type == appliance for r in scene.receptacles):
            errors.append(f"no {appliance}")
    if scene.task_type == "look_at_obj_in_light":
        if p.parent_target or p.toggle_target not in vocab.toggleable:
            errors.append(f"bad look_at task {p}")
    else:
        if p.object_target not in vocab.holds[p.parent_target]:
            errors.append(f"{p.parent_target} cannot hold {p.object_target}")
        if not any(r.type == p.parent_target for r in scene.receptacles):
            errors.append("no parent receptacle")
    if scene.task_type == "pick_two_obj_and_place" and p.parent_target in gen.PICK_TWO_EXCLUDED:
        errors.append(f"pick_two into {p.parent_target}")
    targets = [t for t in scene.objects if t.type == p.object_target]
    low = 2 if scene.task_type == "pick_two_obj_and_place" else 1
    if not low <= len(targets) <= gen.SCENE_SIZES[scene.scene_size].max_targets:
        errors.append(f"{len(targets)} targets")
    for t in scene.objects:
        host = rec[t.receptacle]
        if t.type in vocab.toggleable:
            if host.type not in gen.LAMP_HOSTS:
                errors.append(f"lamp on a {host.type}")
        elif t.type not in vocab.holds[host.type]:
            errors.append(f"{t.type} in a {host.type}")
        if t.type == p.object_target and host.type == p.parent_target:
            errors.append("a target starts in a parent-type receptacle (won at step 0)")
        if t.cool != (t.type == p.object_target and host.type == "Fridge" and t.type in vocab.coolable):
            errors.append(f"wrong cool flag on {t.id}")
    if p.toggle_target and not any(t.type == p.toggle_target for t in scene.objects):
        errors.append("no lamp to use")
    agent_point = scene.agent_location.split("|")[1:3]
    if any(r.location.split("|")[1:3] == agent_point for r in scene.receptacles):
        errors.append("the agent starts at a receptacle")
    ids = [r.id for r in scene.receptacles] + [t.id for t in scene.objects]
    if len(set(ids)) != len(ids):
        errors.append("duplicate ids")
    limit = gen.SCENE_SIZES[scene.scene_size].max_receptacles
    if limit is not None and len(scene.receptacles) > limit:
        errors.append(f"{len(scene.receptacles)} receptacles")
    return errors


@pytest.mark.parametrize("scene_size", ["small", "full"])
def test_scenes_follow_the_sampling_and_placement_rules(scene_size):
    for split in gen.SPLITS:
        for task_type in TASK_TYPES:
            for seed in range(12):
                scene = gen.sample_scene(split, task_type, seed, scene_size)
                assert _scene_rule_violations(scene) == [], scene.rng_key


def test_a_game_is_a_pure_function_of_its_key():
    a = gen.sample_scene("train", "pick_heat_then_place_in_recep", 7)
    b = gen.sample_scene("train", "pick_heat_then_place_in_recep", 7)
    assert a == b and gen.problem_text(a) == gen.problem_text(b)
    assert gen.oracle_walkthrough(a) == gen.oracle_walkthrough(b)
    others = [gen.sample_scene("valid_seen", "pick_heat_then_place_in_recep", 7),
              gen.sample_scene("train", "pick_heat_then_place_in_recep", 7, "medium"),
              gen.sample_scene("train", "pick_heat_then_place_in_recep", 8)]
    assert all(gen.problem_text(o) != gen.problem_text(a) for o in others)


def _index_space_hashes(scene_size: str, per_type: dict[str, int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for split, count in per_type.items():
        for task_type in TASK_TYPES:
            for seed in range(count):
                problem = gen.problem_text(gen.sample_scene(split, task_type, seed, scene_size))
                out.setdefault(hashlib.sha1(problem.encode()).hexdigest(), []).append(
                    f"{split}|{task_type}|{seed}")
    return out


def test_no_game_repeats_within_or_across_splits():
    hashes = _index_space_hashes("small", {"train": 40, "valid_seen": 24, "valid_unseen": 24})
    assert [keys for keys in hashes.values() if len(keys) > 1] == []


@pytest.mark.slow
@pytest.mark.parametrize("scene_size", sorted(gen.SCENE_SIZES))
def test_the_whole_task_index_space_has_no_duplicate_game(scene_size):
    hashes = _index_space_hashes(scene_size, TASKS_PER_TYPE)
    assert sum(map(len, hashes.values())) == 6 * sum(TASKS_PER_TYPE.values())
    assert [keys for keys in hashes.values() if len(keys) > 1] == []


def test_held_out_floor_plans_never_appear_in_train_or_valid_seen():
    held = set(gen.HELD_OUT_FLOOR_PLANS)
    assert {assets.room_type(n) for n in held} == set(assets.ROOM_TYPES)  # one per room type
    assert held.isdisjoint(gen.split_floor_plans("train"))
    assert gen.split_floor_plans("train") == gen.split_floor_plans("valid_seen")
    assert set(gen.split_floor_plans("valid_unseen")) == held
    assert len(gen.split_floor_plans("train")) == 116  # 120 shipped floor plans - 4 held out
    used = {gen.sample_scene(s, t, seed).floor_plan
            for s in ("train", "valid_seen") for t in TASK_TYPES for seed in range(30)}
    assert used.isdisjoint(held)


def test_task_indices_and_kwargs():
    env = ALFWorldEnv()  # no engine starts until reset
    assert env.num_tasks == 6 * TASKS_PER_TYPE["train"]
    two = ALFWorldEnv(split="valid_unseen", task_types=[2, "pick_two_obj_and_place"])
    assert two.task_types == ("look_at_obj_in_light", "pick_two_obj_and_place")
    assert two.num_tasks == 2 * TASKS_PER_TYPE["valid_unseen"]
    for bad in ({"split": "test"}, {"task_types": ["slice"]}, {"task_types": [7]}, {"task_types": []},
                {"scene_size": "huge"}, {"source": "web"}):
        with pytest.raises(ValueError):
            ALFWorldEnv(**bad)
    intro = "-= Welcome =-\n\nYou see x.\n\nYour task is to: put a mug in desk."
    assert task_sentence(intro) == "put a mug in desk"


def test_generation_is_deterministic_across_processes_and_has_no_side_effects(tmp_path):
    """Two fresh interpreters with different hash seeds play the same game identically; the engine
    creates no ~/.cache/alfworld, leaves ALFWORLD_DATA unset and sys.argv untouched."""
    script = textwrap.dedent("""
        import hashlib, os, sys
        import gymnasium as gym, envs
        argv = list(sys.argv)
        env = gym.make("agentropy/ALFWorld-v0", split="valid_unseen", cache_dir=sys.argv[1])
        out = []
        obs, info = env.reset(options={"task": 5})
        out.append(obs)
        for t in range(6):
            c = info["admissible_commands"]
            obs, r, te, tr, info = env.step(c[(3 * t + 1) % len(c)])
            out.append(obs + "|".join(c) + str(info["expert_action"]))
        env.close()
        assert sys.argv == argv, sys.argv
        assert "ALFWORLD_DATA" not in os.environ
        assert not os.path.exists(os.path.expanduser("~/.cache/alfworld"))
        print(hashlib.sha1("\\n".join(out).encode()).hexdigest())
    """)
    digests = []
    for hash_seed in ("1", "2"):
        home = tmp_path / f"home{hash_seed}"
        home.mkdir()
        run_env = {k: v for k, v in os.environ.items() if k not in ("ALFWORLD_DATA", "XDG_CACHE_HOME")}
        run_env.update(HOME=str(home), PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
        done = subprocess.run([sys.executable, "-c", script, str(home / "games")], env=run_env,
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        digests.append(done.stdout.strip().splitlines()[-1])
        assert not (home / ".cache" / "alfworld").exists()
    assert digests[0] == digests[1]


# --------------------------------------------------------------------------- the real engine
@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_the_oracle_wins_every_task_type_through_the_engine(env, task_type):
    k = TASK_TYPES.index(task_type)
    info, commands = _play_expert(env, options={"task": 6 * 1 + k})  # seed 1 of this type
    assert info["won"] and info["score"] == 1.0
    assert info["task_id"] == f"household/{task_type}/train/1"
    stored = GameStore(env.unwrapped.cache_dir).get("train", task_type, 1)
    assert stored.loaded is False  # cached: generated and verified once
    assert stored.files.game["solvable"] is True and stored.files.walkthrough == commands
    traj = stored.files.traj_data
    assert traj["task_type"] == task_type and traj["generator"]["seed"] == 1
    assert traj["scene"]["floor_plan"].startswith("FloorPlan") and traj["pddl_params"]["object_target"]
    grammar = stored.files.game["grammar"]
    assert grammar.count(info["task"]) == 1 and "UNKNOWN GOAL" not in grammar


def test_the_expert_recovers_from_detours_and_wrong_pickups(env):
    """Off the stored walkthrough, the oracle re-plans from the engine's facts."""
    for task in (5, 9, 10):  # pick_two, heat, cool (seed 0 and 1)
        obs, info = env.reset(options={"task": task})
        target = env.unwrapped._params.object_target.lower()
        # Walk somewhere, and pick up the first object that is not a target where possible.
        for _ in range(4):
            wrong = [c for c in info["admissible_commands"]
                     if c.startswith(("take", "go to", "open")) and target not in c]
            obs, _, terminated, _, info = env.step(wrong[-1])
            assert info["action_is_valid"] and not terminated
        while not info["won"]:
            assert info["expert_action"] is not None, obs
            obs, _, terminated, truncated, info = env.step(info["expert_action"])
            assert not truncated
        assert info["score"] == 1.0


def test_bad_and_near_miss_commands_leave_the_game_intact(cache):
    play = gym.make("agentropy/ALFWorld-v0", cache_dir=cache, check_admissible=False)
    control = gym.make("agentropy/ALFWorld-v0", cache_dir=cache)
    try:
        _, info = play.reset(options={"task": 3})
        _, control_info = control.reset(options={"task": 3})
        near_misses = ["take apple 1 from fridge 1", "put mug 1 in desk 1", "go to cabinet 99",
                       "heat egg 1 with microwave 1", "use desklamp 1", "move", "go", "look at me"]
        for command in near_misses:
            obs, reward, terminated, truncated, info2 = play.step(command)
            assert info2["action_is_valid"] is False and reward == 0.0 and not terminated, command
            assert info2["admissible_commands"] == info["admissible_commands"]
        # Case and spacing are normalised to the admissible spelling.
        first = info["expert_action"]
        obs, _, _, _, info2 = play.step("  " + first.upper().replace(" ", "   ") + " ")
        obs_c, _, _, _, info_c = control.step(first)
        assert info2["action_is_valid"] and obs == obs_c
        assert info2["admissible_commands"] == info_c["admissible_commands"]
    finally:
        play.close(), control.close()


def test_the_engine_memoisation_changes_no_output():
    """Engine memoises textworld's SAS translation and grammar parsing; the plain PddlEnv calls
    must give exactly the same texts and admissible lists."""
    from agentropy.envs.alfworld.engine import Engine

    scene = gen.sample_scene("valid_seen", "pick_two_obj_and_place", 1)
    game = gen.game_files(scene, None, solvable=False).game
    engine = Engine()

    def play(load, reset, step):
        load(dict(game))
        state = reset()
        out = [state.feedback]
        for t in range(12):
            commands = state["admissible_commands"]
            state = step(commands[(5 * t + 2) % len(commands)])
            out.append(state.feedback + "|" + "|".join(state["admissible_commands"]) + str(state["won"]))
        return out

    argv = list(sys.argv)
    memoised = play(engine.load, engine.reset, engine.step)
    plain = play(engine._env.load, engine._env.reset, lambda c: engine._env.step(c)[0])
    sys.argv = argv  # the plain calls overwrite it
    assert memoised == plain


def test_the_cache_is_reused_and_written_atomically(tmp_path):
    store = GameStore(tmp_path, "small")
    first = store.get("valid_seen", "pick_and_place_simple", 0)
    again = store.get("valid_seen", "pick_and_place_simple", 0)
    assert first.loaded and not again.loaded
    assert again.files == gen.read_game(first.folder) and first.folder == again.folder
    parts = first.folder.relative_to(tmp_path).parts
    assert parts[:3] == (f"gen-v{gen.GENERATOR_VERSION}", "small", "valid_seen")
    # A second writer of the same game keeps the first copy and leaves no temporary folder.
    before = (first.folder / "game.tw-pddl").stat().st_mtime_ns
    gen.write_game(first.files, first.folder)
    assert (first.folder / "game.tw-pddl").stat().st_mtime_ns == before
    assert [p.name for p in first.folder.parent.iterdir()] == [first.folder.name]
    # A stale entry (the generator changed without a version bump) is regenerated.
    (first.folder / "initial_state.pddl").write_text("(define (problem stale))")
    fresh = store.get("valid_seen", "pick_and_place_simple", 0)
    assert fresh.loaded and fresh.files == first.files == gen.read_game(first.folder)


# ---------------------------------------------------------------------- the official loader
def test_the_official_loader_plays_an_alfworld_layout(tmp_path, cache, monkeypatch):
    data = tmp_path / "alfworld_data"
    report = generate("valid_seen", seeds=[0], task_types=TASK_TYPES[:3], cache_dir=cache, out=data)
    assert report.games == 3 and report.duplicates == 0
    split_dir = data / "json_2.1.1" / "valid_seen"
    folders = sorted(p for p in split_dir.glob("*/trial_*"))
    assert len(folders) == 3
    # What AlfredTWEnv skips is skipped: movable/Sliced paths and unsolvable games.
    shutil.copytree(folders[0], split_dir / "pick_and_place_with_movable_recep-X-Y-Z-1" / "trial_1")
    unsolvable = split_dir / "pick_and_place_simple-Zzz-None-Desk-301" / "trial_1"
    shutil.copytree(folders[0], unsolvable)
    game = json.loads((unsolvable / "game.tw-pddl").read_text())
    (unsolvable / "game.tw-pddl").write_text(json.dumps({**game, "solvable": False}))
    # An official game may come without a walkthrough: the oracle plans from the engine's facts.
    game = json.loads((folders[1] / "game.tw-pddl").read_text())
    (folders[1] / "game.tw-pddl").write_text(json.dumps({**game, "walkthrough": None}))

    monkeypatch.setenv("ALFWORLD_DATA", str(data))
    official = gym.make("agentropy/ALFWorld-v0", split="valid_seen", source="official", cache_dir=tmp_path)
    try:
        assert official.unwrapped.num_tasks == 3
        ids = []
        for task in range(3):
            info, _ = _play_expert(official, options={"task": task})
            assert info["won"]
            ids.append(info["task_id"])
        expected = [f"household/{f.parent.name.split('-')[0]}/valid_seen/{f.parent.name}/{f.name}"
                    for f in folders]
        assert ids == expected
        assert len(list(tmp_path.glob("official-index-*.json"))) == 1
    finally:
        official.close()
    only = ALFWorldEnv(split="valid_seen", source="official", data_path=data, task_types=[3],
                       cache_dir=tmp_path)
    assert only.num_tasks == 1
    with pytest.raises(FileNotFoundError):
        ALFWorldEnv(split="valid_unseen", source="official", data_path=data)


@pytest.mark.slow
def test_generated_games_play_in_alfworlds_own_env(tmp_path, cache):
    """The games are ALFWorld's format: alfworld's AlfredTWEnv finds them and their stored
    walkthroughs win there too."""
    data = tmp_path / "data"
    generate("valid_unseen", seeds=[0], task_types=TASK_TYPES[3:5], cache_dir=cache, out=data)
    from agentropy.envs.alfworld.engine import _modules

    _modules()  # imports alfworld without creating ~/.cache/alfworld
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    root = str(data / "json_2.1.1" / "valid_unseen")
    config = {
        "env": {"type": "AlfredTWEnv", "task_types": [4, 5], "goal_desc_human_anns_prob": 0.0,
                "domain_randomization": False, "expert_type": "handcoded"},
        "dataset": {"data_path": root, "eval_id_data_path": root, "eval_ood_data_path": root,
                    "num_train_games": -1, "num_eval_games": -1},
        "general": {"training_method": "dagger"},
        "dagger": {"training": {"max_nb_steps_per_episode": 50}},
    }
    alfred = AlfredTWEnv(config, train_eval="eval_out_of_distribution")
    assert alfred.num_games == 2
    env = alfred.init_env(batch_size=1)
    try:
        for _ in range(2):
            _, infos = env.reset()
            walkthrough = json.loads(Path(infos["extra.gamefile"][0]).read_text())["walkthrough"]
            for command in walkthrough:
                assert command in infos["admissible_commands"][0]
                _, _, dones, infos = env.step([command])
            assert infos["won"][0] and dones[0]
    finally:
        env.close()


# ------------------------------------------------------------------------------- slow sweeps
@pytest.mark.slow
def test_the_oracle_wins_on_every_split_and_scene_size(cache):
    for split, scene_size, seeds in (("valid_seen", "small", range(2)), ("valid_unseen", "small", range(2)),
                                     ("train", "full", range(1))):
        env = gym.make("agentropy/ALFWorld-v0", split=split, scene_size=scene_size, cache_dir=cache,
                       max_episode_steps=100)
        try:
            for seed in seeds:
                for k in range(6):
                    info, _ = _play_expert(env, options={"task": 6 * seed + k})
                    assert info["won"], info["task_id"]
        finally:
            env.close()
