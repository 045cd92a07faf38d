"""The real ALFWorld text engine: textworld's ``PddlEnv`` (fast_downward underneath) wrapped in
alfworld's ``AlfredDemangler`` (entity names such as ``cabinet 3``) and ``AlfredInfos``, the
stack ``AlfredTWEnv`` builds (docs/alfworld.md section 6, docs/environments.md section 6).

Each :class:`Engine` owns one ``PddlEnv``, hence one private copy of fast_downward's shared
library (``fast_downward.load_lib`` copies it so engines do not share global state); games are
loaded into it one after the other. No subprocess is started. Importing the engine costs about
2.5 s (textworld's generator data).

Around every engine call, two pure functions the engine calls are memoised (the swap is scoped to
the call and serialised by a lock; the outputs are byte-identical, which a test checks):

* ``fast_downward.pddl2sas``: ``PddlEnv.load`` and ``PddlEnv.reset`` each translate the problem to
  SAS twice (plain, and optimised for the planner), most of their cost. The translations of the
  current problem are kept, so a load and all its resets translate once.
* textworld's grammar parser (``textgen._parse_and_convert``): every step re-parses the same few
  grammar templates with tatsu for the feedback and for each admissible command, about half of a
  step's time. Parses are kept (a few hundred templates) and handed out as deep copies.

``pddl2sas`` also overwrites ``sys.argv`` (for fast_downward's option parser); it is restored.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentropy.envs.cache import default_cache_dir as family_cache_dir

__all__ = ["Engine", "Verdict", "default_cache_dir", "verify"]

#: Serialises the engine calls that swap in the memoised functions (and restore ``sys.argv``).
_SWAP_LOCK = threading.RLock()
#: Parsed grammar templates: (args, kwargs) -> symbols. Bounded by the grammar's templates.
_PARSES: dict[Any, Any] = {}
_MAX_PARSES = 4096


def _parse(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """textworld's template parser, memoised; callers get a deep copy (they mutate symbols)."""
    key = (args, tuple(sorted(kwargs.items())))
    if key not in _PARSES:
        if len(_PARSES) >= _MAX_PARSES:
            _PARSES.clear()
        _PARSES[key] = original(*args, **kwargs)
    return copy.deepcopy(_PARSES[key])


def default_cache_dir() -> Path:
    """``$AGENTROPY_CACHE/household``, else ``~/.cache/agentropy/household``: the generated games
    (:mod:`agentropy.envs.alfworld.store`), and ``$ALFWORLD_DATA`` while alfworld is imported."""
    return family_cache_dir("household")


@functools.cache
def _modules() -> tuple[Any, Any, Any, Any]:
    """Import textworld and alfworld's wrappers without creating ``~/.cache/alfworld``.

    ``alfworld.info`` creates ``$ALFWORLD_DATA`` (default ``~/.cache/alfworld``) at import and
    exports the variable; when the user has not set it, it is pointed at agentropy's own cache
    folder for the import and removed from the environment afterwards.
    """
    unset = "ALFWORLD_DATA" not in os.environ and "alfworld.info" not in sys.modules
    if unset:
        folder = default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["ALFWORLD_DATA"] = str(folder)
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from textworld.envs.pddl import PddlEnv
    finally:
        if unset:
            os.environ.pop("ALFWORLD_DATA", None)
    return textworld, PddlEnv, AlfredDemangler, AlfredInfos


class Engine:
    """ALFWorld's text engine for one game at a time.

    Example:
        >>> engine = Engine()  # doctest: +SKIP
        >>> engine.load(game)  # game: the parsed game.tw-pddl  # doctest: +SKIP
        >>> state = engine.reset()  # doctest: +SKIP
        >>> state["admissible_commands"], state["won"]  # doctest: +SKIP
    """

    def __init__(self) -> None:
        textworld, pddl_env, demangler, infos = _modules()
        request = textworld.EnvInfos(admissible_commands=True, won=True, extras=["gamefile"])
        self._env = infos(demangler(pddl_env(request)))
        self._translations: dict[tuple[str, str, bool], Any] = {}

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """Run an engine call with the memoised translation and parser (module docstring)."""
        import fast_downward
        import textworld.envs.pddl.textgen as textgen

        with _SWAP_LOCK:
            translate, parse, argv = fast_downward.pddl2sas, textgen._parse_and_convert, sys.argv
            fast_downward.pddl2sas = functools.partial(self._translate, translate)
            textgen._parse_and_convert = functools.partial(_parse, parse)
            try:
                yield
            finally:
                fast_downward.pddl2sas, textgen._parse_and_convert, sys.argv = translate, parse, argv

    def _translate(
        self, original: Callable[..., Any], domain: str, problem: str, verbose: bool = False,
        optimize: bool = False,
    ) -> Any:
        key = (domain, problem, bool(optimize))
        if key not in self._translations:
            if not any(k[1] == problem for k in self._translations):
                self._translations.clear()  # keep the current problem's only
            self._translations[key] = original(domain, problem, verbose=verbose, optimize=optimize)
        return self._translations[key]

    def load(self, game: Mapping[str, Any]) -> None:
        """Load a parsed ``game.tw-pddl`` (the PDDL -> SAS translation: about a second)."""
        with self._call():
            self._env.load(dict(game))

    def reset(self) -> Any:
        """Restart the loaded game; returns textworld's state."""
        with self._call():
            return self._env.reset()

    def step(self, command: str) -> Any:
        with self._call():
            state, _, _ = self._env.step(command)
        return state

    @staticmethod
    def names(state: Any) -> dict[str, str]:
        """Entity -> displayed name (``"cabinet 3"``) from a state."""
        return {key: info.name for key, info in state["_entity_infos"].items()}


@dataclass(frozen=True)
class Verdict:
    """The outcome of replaying a walkthrough: ``solvable`` iff every command was admissible and
    the last state was won; ``reason`` says what failed."""

    solvable: bool
    reason: str = ""
    steps: int = 0


def verify(engine: Engine, game: Mapping[str, Any], walkthrough: Sequence[str] | None) -> Verdict:
    """Replay ``walkthrough`` through the real engine from the game's start."""
    if not walkthrough:
        return Verdict(False, "no walkthrough")
    engine.load(game)
    state = engine.reset()
    if state["won"]:
        return Verdict(False, "the game is won before any command")
    for i, command in enumerate(walkthrough):
        if command not in state["admissible_commands"]:
            return Verdict(False, f"step {i}: {command!r} is not admissible", i)
        state = engine.step(command)
    if not state["won"]:
        return Verdict(False, "the walkthrough ends without winning", len(walkthrough))
    return Verdict(True, "", len(walkthrough))
