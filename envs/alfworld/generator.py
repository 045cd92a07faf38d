"""Procedural ALFWorld games on the shipped ALFRED domain, grammar, vocabularies and floor plans.

The official ALFWorld game files cannot be downloaded here, so this module writes games in the
same format (docs/alfworld.md sections 1-3) from what the ``alfworld`` wheel ships (see
:mod:`agentropy.envs.alfworld.assets`). A game is a pure function of ``(split, task type, seed, scene
size)`` and the generator version: the random generator is seeded with ``"<split>|<task>|<seed>"``
(plus the scene size when it is not the default), so splits never share a game.

Recipe (docs/alfworld.md section 5), following ALFRED's sampling rules (Shridhar et al., 2020, "ALFRED",
and ``gen/scripts/generate_trajectories.py`` in ALFRED, read for the rules, not copied):

1. Draw a floor plan of a room type the task allows (heat and cool: kitchens; clean: kitchens and
   bathrooms; look_at: living rooms and bedrooms; pick and pick_two: all), from the split's floor
   plans: ``valid_unseen`` plays only :data:`HELD_OUT_FLOOR_PLANS`, the other splits never do.
2. Receptacles: the floor plan's ids and poses (``-openable.json``); types the room has but whose
   pose is unknown (stove burners, coffee machines, towel holders...) get synthetic instances at
   reachable points (stove burners: four, in two pairs sharing a location).
3. The task: an object type with the task's affordance and a parent receptacle type that can hold
   it, both present; the parent is never the task's appliance (SinkBasin, Microwave, Fridge), and
   pick_two never uses CoffeeMachine, ToiletPaperHanger or HandTowelHolder. look_at draws a lamp
   type present and a receptacle to host it.
4. Scene size (:data:`SCENE_SIZES`): the receptacles the task needs plus random others up to the
   size's limit; distractor object types up to its limit, each placed 1..n times in receptacles
   that can hold them; 1..4 target instances (2..4 for pick_two), none in a parent-type receptacle
   (goals are existential over types, so that would be won at step 0). Target-type objects that
   start in a fridge are cold, as in ALFRED. Lamps always sit in a receptacle (a lamp in none can
   never be used).
5. The agent starts at a reachable point that is no receptacle's location (the intro then lists the
   room's receptacles, as in ALFWorld).
6. The scripted oracle (:mod:`agentropy.envs.alfworld.oracle`) computes the shortest walkthrough; the game
   is marked solvable only after the walkthrough has been replayed through the real engine (every
   command admissible, ``won`` at the end): see :func:`agentropy.envs.alfworld.engine.verify`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentropy.envs.alfworld import assets
from agentropy.envs.alfworld.oracle import TaskParams, World, plan

__all__ = [
    "GENERATOR_VERSION",
    "HELD_OUT_FLOOR_PLANS",
    "SCENE_SIZES",
    "SPLITS",
    "GameFiles",
    "Receptacle",
    "Scene",
    "SceneSize",
    "Thing",
    "display_names",
    "escape",
    "game_files",
    "read_game",
    "sample_scene",
    "split_floor_plans",
    "write_game",
]

#: Bump when generated games change for the same key; part of the cache path.
GENERATOR_VERSION = 1
SPLITS = ("train", "valid_seen", "valid_unseen")
#: ALFRED's valid_unseen floor plans, one per room type (a kitchen, a living room, a bedroom and a
#: bathroom). ``valid_unseen`` games use only these; ``train`` and ``valid_seen`` never do.
HELD_OUT_FLOOR_PLANS: tuple[int, ...] = (10, 219, 308, 424)
#: Receptacle types a lamp may stand on.
LAMP_HOSTS = frozenset({"Desk", "SideTable", "Dresser", "DiningTable", "CoffeeTable", "ArmChair", "Sofa"})
#: Parent types pick_two never uses (ALFRED).
PICK_TWO_EXCLUDED = frozenset({"CoffeeMachine", "ToiletPaperHanger", "HandTowelHolder"})
_AFFORDANCE = {
    "pick_clean_then_place_in_recep": ("cleanable", "SinkBasin"),
    "pick_heat_then_place_in_recep": ("heatable", "Microwave"),
    "pick_cool_then_place_in_recep": ("coolable", "Fridge"),
}
_ESCAPES = (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_"))
_AGENT_HORIZON = 30
_MAX_DRAWS = 200


@dataclass(frozen=True)
class SceneSize:
    """How much of a floor plan a game keeps. Engine speed falls with scene size: every admissible
    command is re-rendered in Python at every step (docs/alfworld.md section 5).

    Attributes:
        max_receptacles: receptacle instances kept (``None``: all of the floor plan's).
        max_object_types: distractor object types besides the target (``None``: all present).
        max_instances: instances per distractor type, drawn from 1..max_instances.
        max_targets: target instances, drawn from 1..max_targets (2..max_targets for pick_two).
    """

    max_receptacles: int | None
    max_object_types: int | None
    max_instances: int
    max_targets: int


#: ``small`` (the default) keeps CPU training fast; ``full`` is the realistic ALFWorld scale
#: (every receptacle of the floor plan, every object type 1-3 times, 1-4 targets).
SCENE_SIZES: dict[str, SceneSize] = {
    "small": SceneSize(max_receptacles=8, max_object_types=6, max_instances=2, max_targets=3),
    "medium": SceneSize(max_receptacles=16, max_object_types=12, max_instances=2, max_targets=4),
    "full": SceneSize(max_receptacles=None, max_object_types=None, max_instances=3, max_targets=4),
}


@dataclass(frozen=True)
class Receptacle:
    """A receptacle instance: THOR id (``Cabinet|+00.65|+00.48|+00.24``), type, location symbol
    (``loc|gx|gz|rotation|horizon``: grid indices of 0.25 m, rotation in quarter turns)."""

    id: str
    type: str
    location: str


@dataclass(frozen=True)
class Thing:
    """An object instance, in receptacle ``receptacle``; ``cool`` marks a cold start."""

    id: str
    type: str
    receptacle: str
    cool: bool = False


@dataclass(frozen=True)
class Scene:
    """A generated game before it is written: everything the PDDL problem says.

    Attributes:
        split, task_type, seed, scene_size: the generation key.
        floor_plan: the THOR floor-plan number.
        params: the task's targets.
        sentence: the task sentence (``"put a clean apple in fridge"``).
        receptacles, objects: the instances, sorted by id.
        agent_location: the agent's start location symbol.
    """

    split: str
    task_type: str
    seed: int
    scene_size: str
    floor_plan: int
    params: TaskParams
    sentence: str
    receptacles: tuple[Receptacle, ...]
    objects: tuple[Thing, ...]
    agent_location: str
    attempt: int = 0

    @property
    def rng_key(self) -> str:
        return rng_key(self.split, self.task_type, self.seed, self.scene_size, self.attempt)

    @property
    def folder_name(self) -> str:
        """ALFWorld's task folder name: ``<task_type>-<Object>-None-<Receptacle|Lamp>-<scene>``."""
        second = self.params.parent_target or self.params.toggle_target
        return f"{self.task_type}-{self.params.object_target}-None-{second}-{self.floor_plan}"

    @property
    def trial_name(self) -> str:
        return f"trial_{self.seed:06d}" + (f"_{self.attempt}" if self.attempt else "")


def rng_key(split: str, task_type: str, seed: int, scene_size: str = "small", attempt: int = 0) -> str:
    """The string that seeds a game's random generator: ``"<split>|<task>|<seed>"``, followed by
    ``|<scene size>`` unless it is ``small`` and ``|<attempt>`` unless it is 0."""
    key = f"{split}|{task_type}|{seed}"
    if scene_size != "small":
        key += f"|{scene_size}"
    return key + (f"|{attempt}" if attempt else "")


def split_floor_plans(split: str) -> tuple[int, ...]:
    """The floor plans a split draws from (train and valid_seen share them; valid_unseen is the
    held-out set)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    numbers = assets.floor_plan_numbers()
    if split == "valid_unseen":
        return tuple(n for n in numbers if n in HELD_OUT_FLOOR_PLANS)
    return tuple(n for n in numbers if n not in HELD_OUT_FLOOR_PLANS)


def escape(thor_id: str) -> str:
    """A THOR id as a PDDL name: ``Apple|+01.00|...`` -> ``Apple_bar__plus_01_dot_00_bar_...``."""
    for char, word in _ESCAPES:
        thor_id = thor_id.replace(char, word)
    return thor_id


def location_symbol(x: float, z: float, rotation: int, horizon: int) -> str:
    return f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{(rotation // 90) % 4}|{horizon}"


def _coordinate(value: float) -> str:
    return f"{value:+06.2f}"


def _thor_id(kind: str, x: float, y: float, z: float, suffix: str = "") -> str:
    text = f"{kind}|{_coordinate(x)}|{_coordinate(y)}|{_coordinate(z)}"
    return f"{text}|{suffix}" if suffix else text


def _position(thor_id: str) -> tuple[float, float, float]:
    parts = thor_id.split("|")
    return float(parts[1]), float(parts[2]), float(parts[3])


def _receptacle_type(thor_id: str) -> str:
    """THOR's basins are ``Sink|x|y|z|SinkBasin`` and ``Bathtub|x|y|z|BathtubBasin``."""
    parts = thor_id.split("|")
    if len(parts) == 5:
        return "BathtubBasin" if parts[0] == "Bathtub" else "SinkBasin"
    return parts[0]


def _basin_id(kind: str, x: float, y: float, z: float) -> str:
    prefix = "Bathtub" if kind == "BathtubBasin" else "Sink"
    return _thor_id(prefix, x, y, z, suffix=kind)


# ---------------------------------------------------------------------------------------- scenes
def _floor_receptacles(fp: assets.FloorPlan, rng: random.Random) -> list[Receptacle]:
    """The floor plan's receptacles: known poses first, then synthetic ones for the rest."""
    vocab = assets.vocabulary()
    out: list[Receptacle] = []
    for rid, (x, z, rotation, horizon) in fp.receptacles:
        kind = _receptacle_type(rid)
        if kind not in vocab.receptacle_types:
            continue
        if kind in ("SinkBasin", "BathtubBasin"):
            px, py, pz = _position(rid)
            rid = _basin_id(kind, px, py, pz)
        out.append(Receptacle(rid, kind, location_symbol(x, z, rotation, horizon)))
    known = {r.type for r in out}
    points = list(fp.reachable)
    missing = sorted(t for t in fp.types if t in vocab.receptacle_types and t not in known)
    for kind in missing:
        pairs = 2 if kind == "StoveBurner" else 1
        for _ in range(pairs):
            x, z = rng.choice(points)
            location = location_symbol(x, z, 90 * rng.randrange(4), _AGENT_HORIZON)
            for _ in range(2 if kind == "StoveBurner" else 1):
                while True:
                    px, py, pz = x + rng.uniform(-0.5, 0.5), rng.uniform(0.0, 1.2), z + rng.uniform(-0.5, 0.5)
                    rid = (_basin_id(kind, px, py, pz) if kind.endswith("Basin")
                           else _thor_id(kind, px, py, pz))
                    if all(r.id != rid for r in out):
                        break
                out.append(Receptacle(rid, kind, location))
    return sorted(out, key=lambda r: r.id)


def _sample_task(
    task_type: str, fp: assets.FloorPlan, receptacles: Sequence[Receptacle], rng: random.Random
) -> TaskParams | None:
    """Draw the task's targets under ALFRED's rules, or ``None`` if the room offers none."""
    vocab = assets.vocabulary()
    rtypes = sorted({r.type for r in receptacles})
    objects = sorted(t for t in fp.types if t in vocab.pickupable_types)

    def holders(obj: str, exclude: str = "") -> list[str]:
        return [r for r in rtypes if obj in vocab.holds[r] and r != exclude]

    if task_type == "look_at_obj_in_light":
        lamps = [t for t in sorted(vocab.toggleable) if t in fp.types]
        if not lamps or not any(r in LAMP_HOSTS for r in rtypes):
            return None
        candidates = [o for o in objects if holders(o)]
        if not candidates:
            return None
        return TaskParams(task_type, rng.choice(candidates), "", rng.choice(lamps))

    excluded: set[str] = set()
    if task_type in _AFFORDANCE:
        affordance, appliance = _AFFORDANCE[task_type]
        if appliance not in rtypes:
            return None
        objects = [o for o in objects if o in getattr(vocab, affordance)]
        excluded.add(appliance)
    if task_type == "pick_two_obj_and_place":
        excluded |= PICK_TWO_EXCLUDED
    pairs: dict[str, list[str]] = {}
    for obj in objects:
        # The parent must hold the object, and some other receptacle must hold its start.
        parents = [p for p in holders(obj) if p not in excluded and holders(obj, exclude=p)]
        if parents:
            pairs[obj] = parents
    if not pairs:
        return None
    obj = rng.choice(sorted(pairs))
    return TaskParams(task_type, obj, rng.choice(pairs[obj]), "")


def _select_receptacles(
    receptacles: Sequence[Receptacle], params: TaskParams, size: SceneSize, rng: random.Random
) -> list[Receptacle]:
    """The receptacles the task needs, plus random others up to the size's limit."""
    if size.max_receptacles is None:
        return list(receptacles)
    vocab = assets.vocabulary()
    obj = params.object_target

    def pick(candidates: Sequence[Receptacle]) -> Receptacle:
        return rng.choice(list(candidates))

    required: list[Receptacle] = []
    if params.parent_target:
        required.append(pick([r for r in receptacles if r.type == params.parent_target]))
    if params.task_type in _AFFORDANCE:
        appliance = _AFFORDANCE[params.task_type][1]
        required.append(pick([r for r in receptacles if r.type == appliance]))
    if params.toggle_target:
        required.append(pick([r for r in receptacles if r.type in LAMP_HOSTS]))
    sources = [r for r in receptacles if obj in vocab.holds[r.type] and r.type != params.parent_target]
    if not any(r in sources for r in required):
        required.append(pick(sources))
    chosen = list(dict.fromkeys(required))
    rest = [r for r in receptacles if r not in chosen]
    room = max(0, size.max_receptacles - len(chosen))
    chosen += rng.sample(rest, min(room, len(rest)))
    return sorted(chosen, key=lambda r: r.id)


def _new_object_id(kind: str, host: Receptacle, taken: set[str], rng: random.Random) -> str:
    x, y, z = _position(host.id)
    while True:
        dx, dy, dz = rng.uniform(-0.4, 0.4), rng.uniform(0.0, 0.3), rng.uniform(-0.4, 0.4)
        oid = _thor_id(kind, x + dx, y + dy, z + dz)
        if oid not in taken:
            taken.add(oid)
            return oid


def _place_objects(
    fp: assets.FloorPlan,
    receptacles: Sequence[Receptacle],
    params: TaskParams,
    size: SceneSize,
    rng: random.Random,
) -> list[Thing]:
    vocab = assets.vocabulary()
    taken = {r.id for r in receptacles}
    obj = params.object_target

    def holders(kind: str, exclude: str = "") -> list[Receptacle]:
        return [r for r in receptacles if kind in vocab.holds[r.type] and r.type != exclude]

    things: list[Thing] = []
    low = 2 if params.task_type == "pick_two_obj_and_place" else 1
    for _ in range(rng.randint(low, max(low, size.max_targets))):
        host = rng.choice(holders(obj, exclude=params.parent_target))
        cool = host.type == "Fridge" and obj in vocab.coolable
        things.append(Thing(_new_object_id(obj, host, taken, rng), obj, host.id, cool))

    distractors = [t for t in fp.types if t in vocab.pickupable_types and t != obj and holders(t)]
    if size.max_object_types is not None and len(distractors) > size.max_object_types:
        distractors = sorted(rng.sample(distractors, size.max_object_types))
    for kind in distractors:
        for _ in range(rng.randint(1, size.max_instances)):
            host = rng.choice(holders(kind))
            things.append(Thing(_new_object_id(kind, host, taken, rng), kind, host.id))

    hosts = [r for r in receptacles if r.type in LAMP_HOSTS]
    for lamp in sorted(vocab.toggleable):
        if lamp in fp.types and hosts:
            host = rng.choice(hosts)
            things.append(Thing(_new_object_id(lamp, host, taken, rng), lamp, host.id))
    return sorted(things, key=lambda t: t.id)


def sample_scene(
    split: str, task_type: str, seed: int, scene_size: str = "small", attempt: int = 0
) -> Scene:
    """Generate the scene of game ``(split, task_type, seed, scene_size)``; deterministic.

    ``attempt`` > 0 reseeds (used when a scene fails verification).

    Raises:
        ValueError: for an unknown split, task type or scene size.
    """
    if task_type not in assets.ALFRED_TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; known: {', '.join(assets.ALFRED_TASK_TYPES)}")
    if scene_size not in SCENE_SIZES:
        raise ValueError(f"unknown scene size {scene_size!r}; known: {', '.join(SCENE_SIZES)}")
    size = SCENE_SIZES[scene_size]
    vocab = assets.vocabulary()
    rng = random.Random(rng_key(split, task_type, seed, scene_size, attempt))
    plans = [n for n in split_floor_plans(split) if assets.room_type(n) in vocab.rooms[task_type]]
    for _ in range(_MAX_DRAWS):
        fp = assets.floor_plan(rng.choice(plans))
        all_receptacles = _floor_receptacles(fp, rng)
        params = _sample_task(task_type, fp, all_receptacles, rng)
        if params is None:
            continue
        receptacles = _select_receptacles(all_receptacles, params, size, rng)
        objects = _place_objects(fp, receptacles, params, size, rng)
        if params.toggle_target and not any(t.type == params.toggle_target for t in objects):
            continue
        occupied = {tuple(r.location.split("|")[1:3]) for r in all_receptacles}
        free = [p for p in fp.reachable if (str(round(p[0] / 0.25)), str(round(p[1] / 0.25))) not in occupied]
        x, z = rng.choice(free)
        agent = location_symbol(x, z, 90 * rng.randrange(4), _AGENT_HORIZON)
        template = rng.choice(list(assets.goal_library()[task_type]["templates"]))
        sentence = template.format(
            obj=params.object_target.lower(),
            recep=params.parent_target.lower(),
            toggle=params.toggle_target.lower(),
        )
        return Scene(split, task_type, seed, scene_size, fp.number, params, sentence,
                     tuple(receptacles), tuple(objects), agent, attempt)
    raise RuntimeError(f"no {task_type} scene found for {split}|{seed} in {_MAX_DRAWS} draws")


# ------------------------------------------------------------------------------ names and PDDL
def display_names(entity_ids: Sequence[str]) -> dict[str, str]:
    """The names alfworld's ``AlfredDemangler`` shows, for lower-cased PDDL entity names.

    Entities of one class (the text before the first ``_bar_``, plus ``basin`` for basins) are
    numbered 1..N in reverse sorted order of their names, as the demangler does.
    """
    by_class: dict[str, list[str]] = {}
    for entity in sorted(entity_ids):
        head, sep, _ = entity.partition("_bar_")
        if sep:
            by_class.setdefault(head + ("basin" if "basin" in entity else ""), []).append(entity)
    names = {}
    for cls, members in by_class.items():
        for rank, entity in enumerate(members):
            names[entity] = f"{cls} {len(members) - rank}"
    return names


def scene_world(scene: Scene) -> World:
    """The oracle's view of a scene at the start of the game."""
    vocab = assets.vocabulary()
    rec = {escape(r.id).lower(): r for r in scene.receptacles}
    things = {escape(t.id).lower(): t for t in scene.objects}
    rtypes = {r.type for r in scene.receptacles}
    otypes = {t.type for t in scene.objects}
    return World(
        agent=escape(scene.agent_location).lower(),
        holding=None,
        receptacle_location={k: escape(r.location).lower() for k, r in rec.items()},
        receptacle_type={k: r.type.lower() for k, r in rec.items()},
        object_type={k: t.type.lower() for k, t in things.items()},
        object_receptacle={k: escape(t.receptacle).lower() for k, t in things.items()},
        can_contain=frozenset(
            (r.lower(), o.lower()) for r in rtypes for o in otypes if o in vocab.holds[r]
        ),
        openable=frozenset(k for k, r in rec.items() if r.type in vocab.openable),
        cool=frozenset(k for k, t in things.items() if t.cool),
        names=display_names([*rec, *things]),
    )


def problem_text(scene: Scene) -> str:
    """The scene as a PDDL problem on the ALFRED domain (the facts of docs/alfworld.md section 2)."""
    vocab = assets.vocabulary()
    p = scene.params
    rtypes = sorted({r.type for r in scene.receptacles})
    otypes = sorted({t.type for t in scene.objects})
    locations = sorted({r.location for r in scene.receptacles} | {scene.agent_location})
    where = {r.id: r.location for r in scene.receptacles}
    lines = [f"(define (problem plan_{scene.task_type}_FloorPlan{scene.floor_plan})", "(:domain alfred)"]
    lines += ["(:objects", "agent1 - agent"]
    lines += [f"{t}Type - otype" for t in otypes]
    lines += [f"{t}Type - rtype" for t in rtypes]
    lines += [f"{escape(t.id)} - object" for t in scene.objects]
    lines += [f"{escape(r.id)} - receptacle" for r in scene.receptacles]
    lines += [f"{escape(loc)} - location" for loc in locations]
    lines += [")", "(:init", f"(atLocation agent1 {escape(scene.agent_location)})"]
    lines += [f"(receptacleAtLocation {escape(r.id)} {escape(r.location)})" for r in scene.receptacles]
    lines += [f"(receptacleType {escape(r.id)} {r.type}Type)" for r in scene.receptacles]
    lines += [f"(openable {escape(r.id)})" for r in scene.receptacles if r.type in vocab.openable]
    lines += [f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes if o in vocab.holds[r]]
    affordances = (
        ("pickupable", vocab.pickupable_types), ("isReceptacleObject", vocab.receptacle_objects),
        ("cleanable", vocab.cleanable), ("heatable", vocab.heatable), ("coolable", vocab.coolable),
        ("sliceable", vocab.sliceable), ("toggleable", vocab.toggleable),
    )
    for t in scene.objects:
        name = escape(t.id)
        lines.append(f"(objectType {name} {t.type}Type)")
        lines += [f"({fact} {name})" for fact, kinds in affordances if t.type in kinds]
        if t.cool:
            lines.append(f"(isCool {name})")
        lines.append(f"(inReceptacle {name} {escape(t.receptacle)})")
        lines.append(f"(objectAtLocation {name} {escape(where[t.receptacle])})")
    lines.append(")")
    goal = str(assets.goal_library()[scene.task_type]["pddl"]).replace("#", "-")
    goal = goal.format(obj=p.object_target, recep=p.parent_target, toggle=p.toggle_target, mrecep="")
    return "\n".join(lines) + goal.rstrip() + "\n"


# ----------------------------------------------------------------------------------- game files
@dataclass(frozen=True)
class GameFiles:
    """The three files of an ALFWorld game folder, as data.

    Attributes:
        traj_data: ``traj_data.json`` (task type, pddl_params, the task sentence, and the scene
            and generator fields that identify a generated game).
        problem: ``initial_state.pddl``.
        game: ``game.tw-pddl`` (pddl_domain, grammar with the task, pddl_problem, solvable,
            walkthrough).
    """

    traj_data: Mapping[str, Any]
    problem: str
    game: Mapping[str, Any]

    @property
    def walkthrough(self) -> list[str] | None:
        return self.game.get("walkthrough")

    @property
    def task(self) -> str:
        return self.traj_data["turk_annotations"]["anns"][0]["task_desc"]


def game_files(scene: Scene, walkthrough: Sequence[str] | None, solvable: bool) -> GameFiles:
    """The files of a scene's game folder."""
    problem = problem_text(scene)
    p = scene.params
    traj_data = {
        "task_id": f"household/{scene.task_type}/{scene.split}/{scene.seed}",
        "task_type": scene.task_type,
        "pddl_params": {
            "object_target": p.object_target,
            "parent_target": p.parent_target,
            "toggle_target": p.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": scene.sentence}]},
        "scene": {"floor_plan": f"FloorPlan{scene.floor_plan}", "scene_num": scene.floor_plan,
                  "random_seed": scene.seed},
        "generator": {
            "name": "agentropy.household",
            "version": GENERATOR_VERSION,
            "split": scene.split,
            "seed": scene.seed,
            "scene_size": scene.scene_size,
            "rng_key": scene.rng_key,
            "attempt": scene.attempt,
            "scene_size_limits": asdict(SCENE_SIZES[scene.scene_size]),
            "problem_sha1": hashlib.sha1(problem.encode()).hexdigest(),
            "num_receptacles": len(scene.receptacles),
            "num_objects": len(scene.objects),
        },
    }
    game = {
        "pddl_domain": assets.domain_text(),
        "grammar": assets.grammar_text().replace("UNKNOWN GOAL", scene.sentence),
        "pddl_problem": problem,
        "solvable": bool(solvable),
        "walkthrough": list(walkthrough) if walkthrough is not None else None,
    }
    return GameFiles(traj_data, problem, game)


def oracle_walkthrough(scene: Scene) -> list[str] | None:
    """The scripted oracle's shortest walkthrough for a scene's start state."""
    return plan(scene_world(scene), scene.params)


def write_game(files: GameFiles, folder: str | Path, replace: bool = False) -> Path:
    """Write a game folder atomically: a temporary sibling folder renamed into place.

    If ``folder`` already exists (another worker wrote the same game), it is kept and the new
    copy discarded: games are a deterministic function of their key. ``replace=True`` removes
    an existing folder first (a stale cache entry).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / "traj_data.json").write_text(json.dumps(files.traj_data, indent=2, sort_keys=True))
        (tmp / "initial_state.pddl").write_text(files.problem)
        (tmp / "game.tw-pddl").write_text(json.dumps(files.game))
        os.chmod(tmp, 0o755)
        if replace and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "game.tw-pddl").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_game(folder: str | Path) -> GameFiles:
    """Read an ALFWorld game folder (generated or official)."""
    folder = Path(folder)
    traj = json.loads((folder / "traj_data.json").read_text())
    game = json.loads((folder / "game.tw-pddl").read_text())
    problem_file = folder / "initial_state.pddl"
    problem = problem_file.read_text() if problem_file.is_file() else game.get("pddl_problem", "")
    return GameFiles(traj, problem, game)
