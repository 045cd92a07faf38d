"""TextWorld-family games: TextWorldExpress (``agentropy/TWX-v0``).

TextWorldExpress (Jansen & Cote, 2022) reimplements eight TextWorld-style games in Java at
thousands of steps per second, which makes it the family for curricula, CPU quickstarts and CI.
Its own Python class is not a Gymnasium env: ``step`` returns a 4-tuple with a cumulative score.
:class:`TWXEnv` wraps it in the :class:`envs.core.TextEnv` contract.

Splits are the package's own seed folds (``train``, ``dev``, ``test``); task ``i`` of a split is
the game generated from the split's ``i``-th valid seed, so every task is one the engine can make.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping
from typing import Any

from envs.core import EngineState, TextEnv

__all__ = ["TWXEnv", "TWX_GAMES"]

#: The eight TextWorldExpress games and the parameters agentropy uses by default ("" is the
#: engine's own default). ``coin`` follows LEARNING.md: 5 rooms, no doors, no distractors.
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


class TWXEnv(TextEnv):
    """A TextWorldExpress game as a Gymnasium text environment.

    Args:
        game: one of :data:`TWX_GAMES`.
        params: the game's generation parameters, as the engine's ``"k=v,k=v"`` text or a
            mapping; ``None`` uses :data:`TWX_GAMES`'s entry.
        split: ``"train"``, ``"dev"`` or ``"test"`` (the engine's seed folds).
        expert: generate the gold path at reset; ``info["expert_action"]`` is its next command
            while the agent follows it (``None`` once it has left it). The engine's gold paths
            contain no-op steps that its own valid-action list leaves out (re-opening an open
            cupboard); the expert skips those, which changes nothing in the game.
        check_admissible: refuse commands outside the engine's valid actions.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "twx"
    splits = ("train", "dev", "test")
    engine_packages = ("textworld-express",)
    has_expert = True

    def __init__(
        self,
        game: str = "coin",
        params: str | Mapping[str, Any] | None = None,
        split: str = "train",
        expert: bool = True,
        check_admissible: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=check_admissible, render_mode=render_mode)
        if game not in TWX_GAMES:
            raise ValueError(f"unknown TextWorldExpress game {game!r}; known: {', '.join(TWX_GAMES)}")
        from textworld_express import TextWorldExpressEnv

        self.game = game
        self.params = _params_text(params, game)
        self.expert = expert
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
        seed = self._seeds[index]
        obs, infos = self._engine.reset(
            seed=seed, gameFold=self.split, generateGoldPath=self.expert
        )
        self._gold = list(self._engine.getGoldActionSequence()) if self.expert else []
        self._gold_pos = 0
        self._on_gold_path = self.expert
        task_id = f"twx/{self.game}/{self.split}/{seed}"
        return infos["taskDescription"], task_id, self._state_from(obs, infos)

    def _engine_step(self, command: str) -> EngineState:
        expected = self._state.expert_action if self._state is not None else None
        obs, _, _, infos = self._engine.step(command)
        self._on_gold_path = self._on_gold_path and command == expected
        self._gold_pos += 1
        return self._state_from(obs, infos)

    def _state_from(self, obs: str, infos: Mapping[str, Any]) -> EngineState:
        valid = infos["validActions"]
        while self._gold_pos < len(self._gold) and self._gold[self._gold_pos] not in valid:
            self._gold_pos += 1
        expert = None
        if self._on_gold_path and self._gold_pos < len(self._gold):
            expert = self._gold[self._gold_pos]
        return EngineState(
            observation=obs,
            score=min(max(float(infos["score"]), 0.0), 1.0),
            won=bool(infos["tasksuccess"]),
            lost=bool(infos["taskfailure"]),
            admissible=tuple(infos["validActions"]),
            expert_action=expert,
            extra={"game": self.game},
        )

    def _engine_close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is None:
            return
        self._engine = None
        proc = getattr(engine._gateway, "java_process", None)
        with contextlib.suppress(Exception):
            engine.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
