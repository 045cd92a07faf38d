"""The scripted oracle: the shortest command sequence that solves a household task.

ALFWorld's own experts are either slow (the fast_downward planner: seconds per call, heavy-tailed,
docs/alfworld.md section 5) or fragile (the hand-coded expert, docs/alfworld.md section 7). The six task types
have a fixed shape, though (fetch an object, maybe use an appliance or a lamp, put it somewhere), so the
shortest solution is found by enumerating every choice of target instance, appliance and
destination over the scene graph and keeping the shortest route (ties: the lexicographically
smallest command list, so the result is deterministic).

The oracle works on a :class:`World`, the part of a game state the six goals depend on. A world is
built from a generated scene at generation time, or from the engine's facts (``state["_facts"]``)
at any step, which lets the environment re-plan cheaply (pure Python, milliseconds) when the
agent leaves the stored walkthrough, and solve official games that ship without one.

Commands follow the shipped grammar (``alfred.twl2``): ``go to R``, ``open R``, ``take O from R``,
``move O to R``, ``heat/cool/clean O with R``, ``use LAMP``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["TaskParams", "World", "plan", "world_from_facts"]

#: The appliance receptacle type each state-changing task needs (``CleanObject`` requires a
#: SinkBasin: a bathtub cannot clean).
APPLIANCE = {
    "pick_clean_then_place_in_recep": ("clean", "sinkbasin", "clean"),
    "pick_heat_then_place_in_recep": ("heat", "microwave", "hot"),
    "pick_cool_then_place_in_recep": ("cool", "fridge", "cool"),
}


@dataclass(frozen=True)
class TaskParams:
    """A task's ``pddl_params`` (traj_data.json), types as THOR names (``"Apple"``).

    Attributes:
        task_type: one of the six ALFWorld task types.
        object_target: the type to fetch.
        parent_target: the destination receptacle type (``""`` for look_at_obj_in_light).
        toggle_target: the lamp type for look_at_obj_in_light (``""`` otherwise).
    """

    task_type: str
    object_target: str
    parent_target: str = ""
    toggle_target: str = ""


@dataclass(frozen=True)
class World:
    """What the oracle needs to know about a game state. Entities are the lower-cased PDDL names
    (``apple_bar__plus_01_dot_00_bar_...``); types are lower-case THOR names (``"apple"``).

    Attributes:
        agent: the agent's location symbol.
        holding: the object the agent holds, if any.
        receptacle_location: receptacle -> location symbol.
        receptacle_type: receptacle -> type.
        object_type: object -> type.
        object_receptacle: object -> the receptacle it is in (held objects are absent).
        can_contain: (receptacle type, object type) pairs ``PutObject`` accepts.
        openable: openable receptacles; opened: those open now.
        hot, cool, clean, toggled: objects with that state.
        names: entity -> displayed name (``"cabinet 3"``).
    """

    agent: str
    holding: str | None
    receptacle_location: Mapping[str, str]
    receptacle_type: Mapping[str, str]
    object_type: Mapping[str, str]
    object_receptacle: Mapping[str, str]
    can_contain: frozenset[tuple[str, str]]
    openable: frozenset[str] = frozenset()
    opened: frozenset[str] = frozenset()
    hot: frozenset[str] = frozenset()
    cool: frozenset[str] = frozenset()
    clean: frozenset[str] = frozenset()
    toggled: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)

    def has_state(self, obj: str, state: str) -> bool:
        return obj in {"hot": self.hot, "cool": self.cool, "clean": self.clean}[state]

    def of_type(self, kind: str, entities: Mapping[str, str]) -> list[str]:
        return sorted(e for e, t in entities.items() if t == kind)


def _type_name(symbol: str) -> str:
    """``"appletype"`` -> ``"apple"`` (fast_downward lower-cases every name)."""
    return symbol[: -len("type")] if symbol.endswith("type") else symbol


def world_from_facts(facts: Iterable[object], names: Mapping[str, str]) -> World:
    """Build a :class:`World` from the engine's facts (``textworld.logic.Proposition``s).

    Args:
        facts: ``state["_facts"]`` of textworld's ``PddlEnv``.
        names: entity -> displayed name (``info.name`` of ``state["_entity_infos"]``).
    """
    unary: dict[str, set[str]] = {}
    agent, holding = "", None
    rloc: dict[str, str] = {}
    rtype: dict[str, str] = {}
    otype: dict[str, str] = {}
    inside: dict[str, str] = {}
    contain: set[tuple[str, str]] = set()
    for fact in facts:
        name = fact.name  # type: ignore[attr-defined]
        args = [v.name for v in fact.arguments]  # type: ignore[attr-defined]
        if len(args) == 1:
            unary.setdefault(name, set()).add(args[0])
        elif name == "atlocation":
            agent = args[1]
        elif name == "holds":
            holding = args[1]
        elif name == "receptacleatlocation":
            rloc[args[0]] = args[1]
        elif name == "receptacletype":
            rtype[args[0]] = _type_name(args[1])
        elif name == "objecttype":
            otype[args[0]] = _type_name(args[1])
        elif name == "inreceptacle":
            inside[args[0]] = args[1]
        elif name == "cancontain":
            contain.add((_type_name(args[0]), _type_name(args[1])))
    return World(
        agent=agent,
        holding=holding,
        receptacle_location=rloc,
        receptacle_type=rtype,
        object_type=otype,
        object_receptacle=inside,
        can_contain=frozenset(contain),
        openable=frozenset(unary.get("openable", ())),
        opened=frozenset(unary.get("opened", ())),
        hot=frozenset(unary.get("ishot", ())),
        cool=frozenset(unary.get("iscool", ())),
        clean=frozenset(unary.get("isclean", ())),
        toggled=frozenset(unary.get("istoggled", ())),
        names=dict(names),
    )


class _Route:
    """A command sequence under construction, with the state it changes (location, open
    receptacles, the held object). Copy before branching."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.location = world.agent
        self.opened = set(world.opened)
        self.holding = world.holding
        self.commands: list[str] = []

    def copy(self) -> _Route:
        other = _Route.__new__(_Route)
        other.world, other.location, other.holding = self.world, self.location, self.holding
        other.opened, other.commands = set(self.opened), list(self.commands)
        return other

    def name(self, entity: str) -> str:
        return self.world.names[entity]

    def go(self, receptacle: str) -> None:
        """Stand at ``receptacle``'s location (``go to`` is refused where the agent already is)."""
        target = self.world.receptacle_location[receptacle]
        if self.location != target:
            self.commands.append(f"go to {self.name(receptacle)}")
            self.location = target

    def reach(self, receptacle: str) -> None:
        """Stand at ``receptacle`` with it open if it is openable."""
        self.go(receptacle)
        if receptacle in self.world.openable and receptacle not in self.opened:
            self.commands.append(f"open {self.name(receptacle)}")
            self.opened.add(receptacle)

    def take(self, obj: str) -> None:
        if self.holding == obj:
            return
        source = self.world.object_receptacle[obj]
        self.reach(source)
        self.commands.append(f"take {self.name(obj)} from {self.name(source)}")
        self.holding = obj

    def put(self, receptacle: str) -> None:
        assert self.holding is not None
        self.reach(receptacle)
        self.commands.append(f"move {self.name(self.holding)} to {self.name(receptacle)}")
        self.holding = None


def _free_hands(world: World, keep: str | None) -> Iterator[_Route]:
    """Routes that empty the agent's hands, unless it holds ``keep``-typed object worth keeping."""
    route = _Route(world)
    held = world.holding
    if held is None or (keep is not None and world.object_type.get(held) == keep):
        yield route
        return
    held_type = world.object_type.get(held, "")
    for receptacle in sorted(world.receptacle_location):
        if (world.receptacle_type[receptacle], held_type) in world.can_contain:
            branch = route.copy()
            branch.put(receptacle)
            yield branch


def _candidates(world: World, params: TaskParams) -> Iterator[list[str]]:
    obj = params.object_target.lower()
    parent = params.parent_target.lower()
    targets = [
        o for o in world.of_type(obj, world.object_type)
        if o in world.object_receptacle or o == world.holding
    ]
    kind = params.task_type
    for start in _free_hands(world, keep=obj):
        if kind == "look_at_obj_in_light":
            lamps = [
                lamp for lamp in world.of_type(params.toggle_target.lower(), world.object_type)
                if lamp in world.object_receptacle
            ]
            for target in targets:
                if start.holding not in (None, target):
                    continue
                for lamp in lamps:
                    route = start.copy()
                    route.take(target)
                    route.go(world.object_receptacle[lamp])
                    if lamp not in world.toggled:
                        route.commands.append(f"use {route.name(lamp)}")
                    yield route.commands
        elif kind == "pick_two_obj_and_place":
            for dest in world.of_type(parent, world.receptacle_type):
                inside = [o for o in targets if world.object_receptacle.get(o) == dest]
                others = [o for o in targets if o not in inside]
                needed = max(0, 2 - len(inside))
                choices: list[tuple[str, ...]] = [()]
                if needed == 1:
                    choices = [(o,) for o in others]
                elif needed == 2:
                    choices = [(a, b) for a in others for b in others if a != b]
                for chosen in choices:
                    # A held target is used first; any other order cannot free the hands.
                    if start.holding is not None and (not chosen or chosen[0] != start.holding):
                        continue
                    route = start.copy()
                    for o in chosen:
                        route.take(o)
                        route.put(dest)
                    yield route.commands
        else:
            verb, appliance_type, state = APPLIANCE.get(kind, ("", "", ""))
            appliances = world.of_type(appliance_type, world.receptacle_type) if verb else []
            if (parent, obj) not in world.can_contain:
                return
            for target in targets:
                if start.holding not in (None, target):
                    continue
                done = not verb or world.has_state(target, state)
                for appliance in [None] if done else appliances:
                    for dest in world.of_type(parent, world.receptacle_type):
                        route = start.copy()
                        route.take(target)
                        if appliance is not None:
                            route.go(appliance)
                            route.commands.append(
                                f"{verb} {route.name(target)} with {route.name(appliance)}"
                            )
                        route.put(dest)
                        yield route.commands


def plan(world: World, params: TaskParams) -> list[str] | None:
    """The shortest command sequence that reaches the task's goal from ``world``.

    Returns:
        The commands (ties broken by the smallest list), ``[]`` if nothing is left to do for
        look_at_obj_in_light at the lamp, or ``None`` if the scene offers no way to the goal.
    """
    best: list[str] | None = None
    for commands in _candidates(world, params):
        if best is None or (len(commands), commands) < (len(best), best):
            best = commands
    return best
