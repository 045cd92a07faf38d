"""TextWorld games as ``agentropy/TextWorld-v0``.

TextWorld (Cote et al., 2018) compiles generated games to Z-machine files and plays them with
Frotz (through jericho, in-process). :class:`TextWorldEnv` generates cooking, coin-collector and
treasure-hunter games from a seed with TextWorld's own generators, or plays the user's game files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.envs.cache import default_cache_dir
from agentropy.envs.core import EngineState, TextEnv

__all__ = ["TEXTWORLD_GAMES", "TEXTWORLD_SPLITS", "TextWorldEnv"]

# ---------------------------------------------------------------------------------- TextWorld
#: TextWorld game types and their default generation settings (TextWorld's own challenge
#: settings; ``params`` overrides them). ``cooking`` is the First TextWorld Problems game
#: (a recipe of 2 ingredients, 1 to fetch, 6 rooms, with opening, cooking and cutting; its
#: walkthrough takes about 17 commands); ``coin`` is Coin Collector level 5 (a chain of 5 rooms);
#: ``treasure`` is Treasure Hunter level 5 (5 rooms, no doors).
TEXTWORLD_GAMES: dict[str, dict[str, Any]] = {
    "cooking": {"recipe": 2, "take": 1, "go": 6, "open": True, "cook": True, "cut": True, "drop": False},
    "coin": {"level": 5},
    "treasure": {"level": 5},
}

#: Disjoint seed ranges of the generated-game splits: task ``i`` of a split is the game made
#: from the range's ``i``-th seed. Cooking games also use TextWorld's own food split of the same
#: name (unseen foods and preparations in ``valid`` and ``test``).
TEXTWORLD_SPLITS: dict[str, range] = {
    "train": range(0, 100_000),
    "valid": range(1_000_000, 1_001_000),
    "test": range(2_000_000, 2_001_000),
}

#: Interpreter commands that write or read files (``save`` writes a ``.qzl`` file and
#: ``script`` a transcript into the working directory) or quit or restart the game: refused
#: even when admissibility is not checked; an episode ends through the game or ``reset()``.
_INTERPRETER_VERBS = frozenset(
    {"save", "restore", "script", "unscript", "noscript", "transcript", "recording", "replay",
     "quit", "q", "restart"}
)
#: The Inform 7 parser's answers to commands it cannot carry out as given (unknown verbs, absent
#: objects, incomplete commands, missing exits); with ``check_admissible=False`` they mark the turn
#: invalid, as ScienceWorld's and ALFWorld's refusals do. Found by trying commands on the engine.
_INVALID_ANSWERS = (
    "That's not a verb I recognise",
    "You can't see any such thing",
    "You must name something more substantial",
    "What do you want to",
    "You can't go that way",
    "I didn't understand that sentence",
    "I only understood you as far as",
    "You seem to want to",
)
_BANNER_LINE = re.compile(r"^[^A-Za-z]*$")
_PROMPT_LINE = re.compile(r"\n>[^\n]*\Z")
_RESTART_LINE = re.compile(r"\n*Would you like to RESTART, RESTORE a saved game, QUIT or UNDO[^\n]*")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


def _clean_feedback(text: str, intro: bool = False) -> str:
    """Frotz's text without the banner, the trailing prompt and status line, or the
    end-of-game menu."""
    text = _RESTART_LINE.sub("", _PROMPT_LINE.sub("", text))
    lines = text.split("\n")
    if intro:  # the ASCII-art TextWorld banner: lines without a letter
        while lines and _BANNER_LINE.match(lines[0]):
            lines.pop(0)
    text = "\n".join(line.strip() for line in lines)
    return _BLANK_LINES.sub("\n\n", text).strip()


@contextlib.contextmanager
def _quiet_jericho():
    """jericho warns that every TextWorld game is "not fully supported": its own score and
    move tracking are off, and TextWorld tracks the game state itself, so this is expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported")
        yield


def _textworld_version() -> str:
    from importlib.metadata import version

    return version("textworld")


def _generate_game(game: str, settings: Mapping[str, Any], seed: int, path: Path) -> None:
    """Generate and compile one game to ``path`` (``.z8``, with its ``.json`` beside it).

    The files are compiled in a private temporary folder and renamed into place, the ``.json``
    first: a ``.z8`` in the cache always has its ``.json``, and two processes making the same
    game at once both succeed.
    """
    import textworld
    from textworld import GameOptions
    from textworld.challenges import coin_collector, cooking, treasure_hunter

    makers = {"cooking": cooking.make, "coin": coin_collector.make, "treasure": treasure_hunter.make}
    options = GameOptions()  # a fresh one each time: a reused one breaks later games
    options.seeds = seed
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    try:
        with _quiet_jericho():
            made = makers[game](dict(settings), options)
            options.path = str(tmp / path.name)
            options.force_recompile = True
            compiled = Path(textworld.generator.compile_game(made, options))
        os.replace(compiled.with_suffix(".json"), path.with_suffix(".json"))
        os.replace(compiled, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class TextWorldEnv(TextEnv):
    """TextWorld games, generated from a seed or read from files, as a Gymnasium text env.

    Args:
        game: a type of :data:`TEXTWORLD_GAMES` (``cooking``, ``coin``, ``treasure``).
        params: generation settings overriding the type's defaults (e.g. ``{"level": 10}``).
        split: ``"train"``, ``"valid"`` or ``"test"`` (:data:`TEXTWORLD_SPLITS`).
        num_games: use only the first ``num_games`` seeds of the split.
        game_file: play these compiled games instead (a path or a list of paths to ``.z8``
            files with their ``.json`` beside them, e.g. from ``tw-make``); task ``i`` is file
            ``i``, task ids read ``textworld/custom/<file stem>``, and ``split`` is not used.
        expert: give ``info["expert_action"]``: the game's walkthrough command while the agent
            follows it (``None`` once it has left it).
        expert_replans: the expert re-plans from the current state instead (TextWorld's
            ``policy_commands``), so it keeps going after the agent strays; steps are then about
            3x slower.
        cache_dir: where generated games are kept (see :mod:`agentropy.envs.cache`). Generating one takes
            2-10 s; it happens once per game and settings.
        check_admissible: refuse commands outside TextWorld's admissible commands.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "textworld"
    splits = ("train", "valid", "test")
    engine_packages = ("textworld",)
    has_expert = True
    rerun_kwargs = frozenset({
        "game", "params", "split", "num_games", "expert", "expert_replans", "check_admissible",
    })

    def __init__(
        self,
        game: str = "cooking",
        params: Mapping[str, Any] | None = None,
        split: str = "train",
        num_games: int | None = None,
        game_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        expert: bool = True,
        expert_replans: bool = False,
        cache_dir: str | os.PathLike | None = None,
        check_admissible: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=check_admissible, render_mode=render_mode)
        from textworld import EnvInfos

        self.expert = expert
        self.expert_replans = expert and expert_replans
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir("textworld")
        if game_file is not None:
            files = [game_file] if isinstance(game_file, (str, os.PathLike)) else list(game_file)
            self.game_files = tuple(Path(f) for f in files)
            missing = [str(f) for f in self.game_files if not f.is_file()]
            if not self.game_files or missing:
                raise FileNotFoundError(f"TextWorld game file(s) not found: {missing or game_file}")
            self.game, self.settings, self._seeds = "custom", {}, range(0)
        else:
            if game not in TEXTWORLD_GAMES:
                raise ValueError(f"unknown TextWorld game {game!r}; known: {', '.join(TEXTWORLD_GAMES)}")
            unknown = set(params or {}) - set(TEXTWORLD_GAMES[game])
            if unknown:
                raise ValueError(f"unknown {game} setting(s) {sorted(unknown)}; known: "
                                 f"{sorted(TEXTWORLD_GAMES[game])}")
            if num_games is not None and not 0 < num_games <= len(TEXTWORLD_SPLITS[split]):
                raise ValueError(f"num_games must be in [1, {len(TEXTWORLD_SPLITS[split])}], got {num_games}")
            self.game_files = ()
            self.game, self.settings = game, {**TEXTWORLD_GAMES[game], **dict(params or {})}
            self._seeds = TEXTWORLD_SPLITS[split][:num_games]
        #: What ``textworld.start`` is asked for (and all this env asks for).
        self.request_infos = EnvInfos(
            admissible_commands=True, won=True, lost=True, score=True, max_score=True,
            objective=True, policy_commands=self.expert_replans, extras=["walkthrough"],
        )
        self._env: Any = None
        self._path: Path | None = None
        self._max_score = 0
        self._gold: tuple[str, ...] = ()
        self._gold_pos = 0
        self._on_gold_path = False

    def game_path(self, index: int) -> Path:
        """The compiled game of task ``index``, generated (and cached) if needed."""
        if self.game_files:
            return self.game_files[index]
        seed = self._seeds[index]
        settings = dict(self.settings)
        if self.game == "cooking":
            settings.update(recipe_seed=seed, split=self.split)
        key = json.dumps(
            {"game": self.game, "settings": settings, "seed": seed, "textworld": _textworld_version()},
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        path = self.cache_dir / "games" / f"{self.game}-{seed}-{digest}.z8"
        if not path.is_file():
            _generate_game(self.game, settings, seed, path)
        return path

    # ------------------------------------------------------------------ engine interface
    def _engine_num_tasks(self) -> int:
        return len(self.game_files) or len(self._seeds)

    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        import textworld

        path = self.game_path(index)
        with _quiet_jericho():
            if path != self._path or self._env is None:
                self._engine_close()
                self._env = textworld.start(str(path), request_infos=self.request_infos)
                self._path = path
            state = self._env.reset()
        self._max_score = state.max_score or 0
        self._gold = tuple(state.get("extra.walkthrough") or ()) if self.expert else ()
        self._gold_pos = 0
        self._on_gold_path = self.expert and not self.expert_replans
        if self.game_files:
            task_id = f"textworld/custom/{path.stem}"
        else:
            task_id = f"textworld/{self.game}/{self.split}/{self._seeds[index]}"
        return state.objective or "", task_id, self._state_from(state, intro=True)

    def _refusal(self, command: str) -> str:
        verb = command.split()[0].lower()
        if verb in _INTERPRETER_VERBS:
            return f"'{verb}' is an interpreter command, not a game action"
        return ""

    def _engine_step(self, command: str) -> EngineState:
        expected = self._state.expert_action if self._state is not None else None
        state, _, _ = self._env.step(command)
        self._on_gold_path = self._on_gold_path and command == expected
        self._gold_pos += 1
        return self._state_from(state)

    def _state_from(self, state: Any, intro: bool = False) -> EngineState:
        score = float(state.score) / self._max_score if self._max_score > 0 else float(bool(state.won))
        won, lost = bool(state.won), bool(state.lost)
        admissible = tuple(state.admissible_commands or ())
        expert = None
        if self.expert_replans and state.policy_commands and not (won or lost):
            expert = state.policy_commands[0]
        elif self._on_gold_path:
            # Walkthroughs contain no-op steps the admissible list leaves out (opening an open
            # fridge); skipping them changes nothing in the game.
            while self._gold_pos < len(self._gold) and self._gold[self._gold_pos] not in admissible:
                self._gold_pos += 1
            if self._gold_pos < len(self._gold) and not (won or lost):
                expert = self._gold[self._gold_pos]
        observation = _clean_feedback(state.feedback, intro=intro)
        invalid = not intro and observation.startswith(_INVALID_ANSWERS)
        return EngineState(
            observation=observation,
            score=min(max(score, 0.0), 1.0),
            won=won,
            lost=lost,
            admissible=admissible,
            valid=not invalid,
            invalid_reason="the engine did not understand the command" if invalid else "",
            expert_action=expert,
        )

    def _engine_close(self) -> None:
        env, self._env, self._path = self._env, None, None
        if env is not None:
            env.close()
