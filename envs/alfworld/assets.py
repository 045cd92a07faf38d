"""What the installed ``alfworld`` package ships, read without importing it.

``import alfworld`` creates ``~/.cache/alfworld`` (its ``info`` module runs ``mkdirs`` at import),
so this module finds the package with :func:`importlib.util.find_spec`, which does not execute it,
and reads the data files directly:

* ``data/alfred.pddl`` (the ALFRED PDDL domain) and ``data/alfred.twl2`` (the TextWorld grammar,
  with an ``UNKNOWN GOAL`` slot for the task sentence);
* ``gen/constants.py`` (vocabularies, affordances, which receptacle holds what, rooms per task) and
  ``gen/goal_library.py`` (goal PDDL and sentence templates), executed as private modules: both
  only define data;
* ``gen/layouts/FloorPlan<N>-{objects,openable}.json`` and ``-layout.npy`` (THOR floor plans: the
  types present, receptacle ids and poses, reachable grid points).

Everything is loaded once per process and cached.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = [
    "ALFRED_TASK_TYPES",
    "ROOM_TYPES",
    "FloorPlan",
    "Vocabulary",
    "alfworld_dir",
    "domain_text",
    "floor_plan",
    "floor_plan_numbers",
    "goal_library",
    "grammar_text",
    "room_type",
    "vocabulary",
]

#: ALFWorld's six task types, in ALFWorld's numbering order (``TASK_TYPES`` 1..6).
ALFRED_TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: THOR room types by floor-plan number range (``constants.SCENE_TYPE``).
ROOM_TYPES: dict[str, range] = {
    "Kitchen": range(1, 31),
    "LivingRoom": range(201, 231),
    "Bedroom": range(301, 331),
    "Bathroom": range(401, 431),
}


@functools.cache
def alfworld_dir() -> Path:
    """The installed ``alfworld`` package folder (found without importing the package)."""
    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the household envs need the 'alfworld' package: pip install alfworld")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_private(relative: str, name: str) -> ModuleType:
    path = alfworld_dir() / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def domain_text() -> str:
    """The ALFRED PDDL domain shipped with alfworld."""
    return (alfworld_dir() / "data" / "alfred.pddl").read_text()


@functools.cache
def grammar_text() -> str:
    """The ALFRED TextWorld grammar (``.twl2``) shipped with alfworld, goal slot unfilled."""
    return (alfworld_dir() / "data" / "alfred.twl2").read_text()


@functools.cache
def goal_library() -> dict[str, dict[str, object]]:
    """``gen/goal_library.py``'s ``gdict``: task type -> ``{"pddl": ..., "templates": [...]}``."""
    return _load_private("gen/goal_library.py", "_agentropy_alfworld_goal_library").gdict


@dataclass(frozen=True)
class Vocabulary:
    """ALFRED's vocabularies, as the shipped ``gen/constants.py`` defines them.

    Attributes:
        receptacle_types: the 29 static receptacle types (``VAL_RECEPTACLE_OBJECTS`` keys minus
            the movable receptacles Bowl, Box, Cup, Mug, Pan, Plate, Pot).
        pickupable_types: the 56 object types some receptacle may hold (sliced variants left
            out: slicing tasks are not generated).
        holds: receptacle type -> object types it may hold.
        heatable, coolable, cleanable, sliceable, toggleable: affordance sets.
        receptacle_objects: movable receptacles (``isReceptacleObject``).
        openable: openable receptacle types.
        rooms: task type -> room types it may be generated in (``GOALS_VALID``).
    """

    receptacle_types: frozenset[str]
    pickupable_types: frozenset[str]
    holds: dict[str, frozenset[str]]
    heatable: frozenset[str]
    coolable: frozenset[str]
    cleanable: frozenset[str]
    sliceable: frozenset[str]
    toggleable: frozenset[str]
    receptacle_objects: frozenset[str]
    openable: frozenset[str]
    rooms: dict[str, frozenset[str]]


@functools.cache
def vocabulary() -> Vocabulary:
    """The vocabularies of the installed alfworld (see :class:`Vocabulary`)."""
    c = _load_private("gen/constants.py", "_agentropy_alfworld_constants")
    holds = {r: frozenset(objs) for r, objs in c.VAL_RECEPTACLE_OBJECTS.items()}
    movable = frozenset(c.MOVABLE_RECEPTACLES)
    pickupable = frozenset(o for objs in holds.values() for o in objs if "Sliced" not in o)
    actions = c.VAL_ACTION_OBJECTS
    return Vocabulary(
        receptacle_types=frozenset(holds) - movable,
        pickupable_types=pickupable,
        holds=holds,
        heatable=frozenset(actions["Heatable"]) & pickupable,
        coolable=frozenset(actions["Coolable"]) & pickupable,
        cleanable=frozenset(actions["Cleanable"]) & pickupable,
        sliceable=frozenset(actions["Sliceable"]) & pickupable,
        toggleable=frozenset(actions["Toggleable"]),
        receptacle_objects=movable,
        openable=frozenset(c.OPENABLE_CLASS_LIST) - movable,
        rooms={task: frozenset(rooms) for task, rooms in c.GOALS_VALID.items()},
    )


def room_type(number: int) -> str:
    """``"Kitchen"``, ``"LivingRoom"``, ``"Bedroom"`` or ``"Bathroom"`` for a floor-plan number."""
    for room, numbers in ROOM_TYPES.items():
        if number in numbers:
            return room
    raise ValueError(f"FloorPlan{number} is not a THOR floor plan")


@dataclass(frozen=True)
class FloorPlan:
    """One THOR floor plan as shipped in ``gen/layouts``.

    Attributes:
        number: the floor-plan number (``FloorPlan<number>``).
        room: its room type.
        types: every object and receptacle type present (``-objects.json``), sorted.
        receptacles: ``(THOR id, (x, z, rotation in degrees, camera horizon))`` per receptacle
            instance with a known pose (``-openable.json``), sorted by id.
        reachable: the agent's reachable grid points in metres, ``(n, 2)`` as ``(x, z)`` pairs.
    """

    number: int
    room: str
    types: tuple[str, ...]
    receptacles: tuple[tuple[str, tuple[float, float, int, int]], ...]
    reachable: tuple[tuple[float, float], ...]


@functools.cache
def floor_plan_numbers() -> tuple[int, ...]:
    """The floor plans shipped with alfworld, sorted (120: 1-30, 201-230, 301-330, 401-430)."""
    layouts = alfworld_dir() / "gen" / "layouts"
    numbers = {int(p.name[len("FloorPlan"):].split("-")[0]) for p in layouts.glob("FloorPlan*-objects.json")}
    return tuple(sorted(numbers))


@functools.cache
def floor_plan(number: int) -> FloorPlan:
    """Load ``FloorPlan<number>`` from the alfworld package."""
    layouts = alfworld_dir() / "gen" / "layouts"
    types = json.loads((layouts / f"FloorPlan{number}-objects.json").read_text())
    poses = json.loads((layouts / f"FloorPlan{number}-openable.json").read_text())
    points = np.load(layouts / f"FloorPlan{number}-layout.npy")
    return FloorPlan(
        number=number,
        room=room_type(number),
        types=tuple(sorted(set(types))),
        receptacles=tuple(
            (rid, (float(p[0]), float(p[1]), int(p[2]), int(p[3]))) for rid, p in sorted(poses.items())
        ),
        reachable=tuple(sorted((float(x), float(z)) for x, z in points.tolist())),
    )
