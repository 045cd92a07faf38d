"""TextWorldExpress games as ``agentropy/TWX-v0``.

TextWorldExpress (Jansen & Cote, 2022) reimplements eight TextWorld-style games in Java at
thousands of steps per second, which makes it the family for curricula, CPU quickstarts and CI.
Its own Python class is not a Gymnasium env: ``step`` returns a 4-tuple with a cumulative score.
:class:`TWXEnv` wraps it in the :class:`agentropy.envs.core.TextEnv` contract.

Splits are the package's own seed folds (``train``, ``dev``, ``test``); task ``i`` of a split is
the game generated from the split's ``i``-th valid seed, so every task is one the engine can make.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from agentropy.envs.core import EngineState, TextEnv
from agentropy.envs.jvm import engine_calls, quiet_py4j, stop_jvm

__all__ = ["TWXEnv", "TWX_GAMES"]

#: The eight TextWorldExpress games and the parameters agentropy uses by default ("" is the
#: engine's own default). ``coin`` follows docs/learning.md section 1: 5 rooms, no doors, no distractors.
TWX_GAMES: dict[str, str] = {
    "cookingworld": (
        "numLocations=3,numIngredients=2,numDistractorItems=2,includeDoors=0,limitInventorySize=0"
    ),
    "twc": "",
    "coin": "numLocations=5,includeDoors=0,numDistractorItems=0",
    "mapreader": "",
    "arithmetic": "",
    "sorting": "",
    "simonsays": "",
    "peckingorder": "",
}

_FOLDS = {"train": "getValidSeedsTrain", "dev": "getValidSeedsDev", "test": "getValidSeedsTest"}


def _params_text(params: str | Mapping[str, Any] | None, game: str) -> str:
    if params is None:
        return TWX_GAMES[game]
    if isinstance(params, str):
        return params
    return ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in params.items())


_ROOM = re.compile(r"You are in the ([^.]+)\.")
# "To the South you see the pantry." / "To the South you see a closed screen door." /
# "Through an open plain door, to the South you see the pantry."
_EXIT = re.compile(r"[Tt]o the (North|South|East|West) you see (?:the )?([^.]+)\.")
_DIRECTIONS = ("north", "south", "east", "west")
#: The engine's answer to a command its parser does not accept (any unknown verb, object or exit);
#: with ``check_admissible=False`` it marks the turn invalid, as ScienceWorld and ALFWorld do.
_INVALID_ANSWERS = ("Unknown action",)


class _CoinExplorer:
    """A deterministic expert for TextWorldExpress ``coin`` that sees only what the agent sees.

    The engine's own coin agent is a random walk from an unseeded generator (20-step gold paths
    on 5 rooms, different at every reset of the same game), which is poor data to imitate and
    not a function of the game. This explorer takes the coin when it is listed; otherwise it
    walks to the nearest room it has not visited (breadth-first over the rooms and exits it has
    seen, directions tried in a fixed order), opening a closed door on its way. It reads the
    room description the engine returns with every step (``look``), so it can advise from any
    state, including after the agent left its path.
    """

    def __init__(self) -> None:
        self.exits: dict[str, dict[str, str]] = {}  # room -> direction -> what lies there
        self.visited: set[str] = set()
        self.room = ""

    def observe(self, look: str) -> None:
        match = _ROOM.search(look)
        if match is None:
            return
        self.room = match.group(1)
        self.visited.add(self.room)
        self.exits[self.room] = {d.lower(): there for d, there in _EXIT.findall(look)}

    def _target(self, there: str) -> str:
        """The room an exit leads to, or "" when a closed door hides it."""
        return "" if "door" in there else there

    def action(self, admissible: Sequence[str]) -> str | None:
        if "take coin" in admissible:
            return "take coin"
        # Breadth-first over known exits to the nearest unexplored one.
        frontier, seen = [(self.room, [])], {self.room}
        while frontier:
            room, path = frontier.pop(0)
            for d in _DIRECTIONS:
                there = self.exits.get(room, {}).get(d)
                if there is None:
                    continue
                target = self._target(there)
                if not target or target not in self.visited:
                    return self._step(path[0] if path else d, admissible)
                if target not in seen:
                    seen.add(target)
                    frontier.append((target, [*path, d]))
        return None

    def _step(self, direction: str, admissible: Sequence[str]) -> str | None:
        there = self.exits.get(self.room, {}).get(direction, "")
        if "closed" in there and f"open door to {direction}" in admissible:
            return f"open door to {direction}"
        move = f"move {direction}"
        return move if move in admissible else None


class TWXEnv(TextEnv):
    """A TextWorldExpress game as a Gymnasium text environment.

    Args:
        game: one of :data:`TWX_GAMES`.
        params: the game's generation parameters, as the engine's ``"k=v,k=v"`` text or a
            mapping; ``None`` uses :data:`TWX_GAMES`'s entry.
        split: ``"train"``, ``"dev"`` or ``"test"`` (the engine's seed folds).
        expert: which expert fills ``info["expert_action"]``: ``"gold"``, the engine's gold
            path, generated at reset and followed while the agent follows it (``None`` once it
            has left it; the engine's gold paths contain no-op steps that its own valid-action
            list leaves out, such as re-opening an open cupboard, which the expert skips);
            ``"explore"`` (``coin`` only), :class:`_CoinExplorer`, which advises from any
            state; ``True`` picks ``explore`` for coin and ``gold`` otherwise; ``False`` none.
        check_admissible: refuse commands outside the engine's valid actions.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "twx"
    splits = ("train", "dev", "test")
    engine_packages = ("textworld-express",)
    has_expert = True
    rerun_kwargs = frozenset({"game", "params", "split", "expert", "check_admissible"})

    def __init__(
        self,
        game: str = "coin",
        params: str | Mapping[str, Any] | None = None,
        split: str = "train",
        expert: bool | str = True,
        check_admissible: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=check_admissible, render_mode=render_mode)
        if game not in TWX_GAMES:
            raise ValueError(f"unknown TextWorldExpress game {game!r}; known: {', '.join(TWX_GAMES)}")
        if expert is True:
            expert = "explore" if game == "coin" else "gold"
        if expert not in (False, "gold", "explore") or (expert == "explore" and game != "coin"):
            raise ValueError(f"expert must be True, False, 'gold' or ('explore' for coin), got {expert!r}")
        from textworld_express import TextWorldExpressEnv

        quiet_py4j()

        self.game = game
        self.params = _params_text(params, game)
        self.expert = expert
        self._explorer: _CoinExplorer | None = None
        # The engine's own step limit is disabled: Gymnasium's TimeLimit truncates episodes.
        self._engine = TextWorldExpressEnv(envStepLimit=1_000_000)
        try:
            self._engine.load(game, self.params)
            self._seeds: list[int] = list(getattr(self._engine, _FOLDS[split])())
        except Exception:
            self._engine_close()
            raise
        self._gold: list[str] = []
        self._gold_pos = 0
        self._on_gold_path = False

    def _engine_num_tasks(self) -> int:
        return len(self._seeds)

    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        with self._calls():
            seed = self._seeds[index]
            gold = self.expert == "gold"
            obs, infos = self._engine.reset(seed=seed, gameFold=self.split, generateGoldPath=gold)
            self._gold = list(self._engine.getGoldActionSequence()) if gold else []
            self._gold_pos = 0
            self._on_gold_path = gold
            self._explorer = _CoinExplorer() if self.expert == "explore" else None
            if self._explorer is not None:
                self._explorer.observe(infos["look"])
            task_id = f"twx/{self.game}/{self.split}/{seed}"
            return infos["taskDescription"], task_id, self._state_from(obs, infos)

    def _engine_step(self, command: str) -> EngineState:
        import orjson  # textworld-express's own JSON parser (one of its dependencies)

        with self._calls():
            expected = self._state.expert_action if self._state is not None else None
            # The engine's server call: the package's step() adds two more round trips to the JVM
            # (the task text, which we keep from reset, and bookkeeping) and a per-step history.
            infos = orjson.loads(self._engine.server.stepJSON(command))
            self._on_gold_path = self._on_gold_path and command == expected
            self._gold_pos += 1
            if self._explorer is not None:
                self._explorer.observe(infos["look"])
            return self._state_from(infos["observation"], infos)

    def _state_from(self, obs: str, infos: Mapping[str, Any]) -> EngineState:
        valid = tuple(infos["validActions"])
        expert = None
        if self._explorer is not None:
            expert = self._explorer.action(valid)
        elif self._on_gold_path:  # (off the path the expert is gone: no need to skip ahead)
            while self._gold_pos < len(self._gold) and self._gold[self._gold_pos] not in valid:
                self._gold_pos += 1
            if self._gold_pos < len(self._gold):
                expert = self._gold[self._gold_pos]
        invalid = obs.startswith(_INVALID_ANSWERS)
        return EngineState(
            observation=obs,
            score=min(max(float(infos["score"]), 0.0), 1.0),
            won=bool(infos["tasksuccess"]),
            lost=bool(infos["taskfailure"]),
            admissible=valid,
            valid=not invalid,
            invalid_reason="the engine did not understand the command" if invalid else "",
            expert_action=expert,
            extra={"game": self.game},
        )

    def _java_process(self) -> subprocess.Popen | None:
        return getattr(getattr(self._engine, "_gateway", None), "java_process", None)

    def _calls(self) -> contextlib.AbstractContextManager[None]:
        """Wrap calls into the engine: a dead JVM raises :class:`JVMExited` saying so."""
        return engine_calls(self._java_process(), "TextWorldExpress")

    def _engine_close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is None:
            return
        proc = self._java_process()
        self._engine = None
        if proc is None or proc.poll() is None:  # a dead JVM cannot be asked to shut down
            with contextlib.suppress(Exception):
                engine.close()
        if proc is not None:
            stop_jvm(proc)
