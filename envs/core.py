"""The contract every agentropy text environment keeps, in one base class.

A family (TextWorldExpress, ScienceWorld, household, shopping, ...) subclasses :class:`TextEnv`
and implements four small methods that talk to its engine; the base class turns them into the
Gymnasium 1.x API with the project's guarantees:

* ``reset(seed=..., options=...)`` and ``step(action: str)`` follow Gymnasium exactly: Python
  ``bool`` flags, a ``float`` *per-step* reward (the difference of the engine's score, normalised
  to [0, 1]), ``terminated`` (won or lost) kept apart from ``truncated`` (the turn limit, applied
  by Gymnasium's ``TimeLimit`` from ``max_episode_steps``).
* ``info`` always holds ``task``, ``task_id``, ``task_type``, ``admissible_commands``, ``won``,
  ``score``, ``action_is_valid`` and ``invalid_reason``; families with a cheap expert add
  ``expert_action``. Task ids read ``<family>/<task type>/<rest>`` (``twx/coin/train/473``), and
  ``task_type`` is their second part (the unit of per-task-type reports).
* The task comes from the split given at construction: ``options={"task": i}`` picks task ``i``
  of the split, otherwise the task is drawn from the env's seeded RNG. Same id, kwargs, seed and
  options give the same game, so the members of a GRPO group play the same task.
* Bad input is an ordinary outcome: any string (empty, huge, multi-line, with backslashes,
  control characters or non-ASCII text) and any command not in ``admissible_commands`` gets a
  feedback observation, reward 0 and ``action_is_valid=False``; the engine never sees it, so the
  game state stays intact.

Example:
    >>> import gymnasium as gym
    >>> import envs  # registers the agentropy/ ids
    >>> env = gym.make("agentropy/TWX-v0", game="coin")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(info["admissible_commands"][0])  # doctest: +SKIP
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

__all__ = [
    "TEXT_CHARSET",
    "MAX_ACTION_CHARS",
    "MAX_OBSERVATION_CHARS",
    "EngineState",
    "TextEnv",
    "parse_command",
    "to_text",
]

#: Characters of observations and actions: printable ASCII with whitespace. Gymnasium's default
#: ``Text`` charset is alphanumeric only, which real text fails.
TEXT_CHARSET = string.printable
MAX_ACTION_CHARS = 256
MAX_OBSERVATION_CHARS = 1 << 16

_UNICODE_TO_ASCII = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
        "\u2026": "...", "\u203a": ">", "\u2039": "<", "\u00a0": " ", "\u2022": "*", "\u00b0": " deg",
    }
)
_INTERIOR_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_TEXT_BYTES = bytes(sorted(set(range(128)) - set(TEXT_CHARSET.encode("ascii"))))


def to_text(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """Make engine text fit the observation space: ASCII, printable, at most ``limit`` chars."""
    if not text.isascii():  # (for ASCII text these steps change nothing; they cost per step)
        text = unicodedata.normalize("NFKD", text.translate(_UNICODE_TO_ASCII))
        text = text.encode("ascii", "ignore").decode("ascii")
    # Bytes.translate drops the other characters about 10x faster than a regex.
    text = text.encode("ascii").translate(None, _NOT_TEXT_BYTES).decode("ascii")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def parse_command(action: Any) -> tuple[str, str]:
    """Turn whatever the agent sent into an engine command, or say why it cannot be one.

    Returns:
        ``(command, "")`` with surrounding whitespace stripped and inner runs of spaces collapsed,
        or ``("", reason)`` when the action must not reach the engine.
    """
    if not isinstance(action, str):
        return "", f"the action must be a string, got {type(action).__name__}"
    if len(action) > MAX_ACTION_CHARS:
        return "", f"the action is longer than {MAX_ACTION_CHARS} characters"
    text = action.strip()
    if not text:
        return "", "the action is empty"
    if _INTERIOR_CONTROL.search(text):
        return "", "the action contains a line break or a control character"
    if "\\" in text:
        return "", "the action contains a backslash"
    if not text.isascii():
        return "", "the action contains non-ASCII characters"
    return " ".join(text.split()), ""


@dataclass(frozen=True)
class EngineState:
    """What an engine reports after a reset or a step.

    Attributes:
        observation: the engine's text answer.
        score: cumulative score normalised to [0, 1].
        won: the task is solved.
        lost: the task can no longer be solved (the episode ends without success).
        admissible: the commands the engine accepts now, in a deterministic order.
        valid: the engine's own verdict on the command it was given.
        invalid_reason: why the engine refused the command.
        expert_action: the next command of an expert from this state, if cheaply known.
        extra: family-specific ``info`` entries (deterministic values only).
    """

    observation: str
    score: float = 0.0
    won: bool = False
    lost: bool = False
    admissible: tuple[str, ...] = ()
    valid: bool = True
    invalid_reason: str = ""
    expert_action: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class TextEnv(gym.Env[str, str]):
    """Base of every agentropy environment. Subclasses implement the ``_engine_*`` methods.

    Args:
        split: which task split to draw tasks from; one of the class's ``splits``.
        check_admissible: refuse commands that are not in ``admissible_commands`` without
            sending them to the engine. Families whose admissible list is expensive or open
            (a free-text search) override :meth:`_is_admissible`.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the last observation).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    #: Short family name, e.g. ``"twx"``; used in task ids and prompts.
    family: ClassVar[str] = ""
    #: The split names this family offers.
    splits: ClassVar[tuple[str, ...]] = ("train",)
    #: Distribution names whose versions an episode record stores.
    engine_packages: ClassVar[tuple[str, ...]] = ()
    #: Extra ``reset`` option keys the family accepts besides ``"task"``.
    reset_options: ClassVar[frozenset[str]] = frozenset()
    #: Whether ``info`` carries ``expert_action``.
    has_expert: ClassVar[bool] = False
    #: Constructor keywords that ``agentropy rerun`` takes from a recorded episode: the ones that
    #: choose the game and cannot name files, modules or other resources of the machine.
    rerun_kwargs: ClassVar[frozenset[str]] = frozenset({"split", "check_admissible"})
    #: Keywords a re-run leaves out: where the recording machine kept its caches. The cached data
    #: follow from the other keywords, so the re-run uses this machine's default cache instead of
    #: a path a run folder names.
    rerun_dropped_kwargs: ClassVar[frozenset[str]] = frozenset({"cache_dir"})

    observation_space = spaces.Text(
        max_length=MAX_OBSERVATION_CHARS, min_length=0, charset=TEXT_CHARSET
    )
    action_space = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=TEXT_CHARSET)

    def __init__(
        self, split: str = "train", check_admissible: bool = True, render_mode: str | None = None
    ) -> None:
        if split not in self.splits:
            raise ValueError(
                f"{type(self).__name__}: unknown split {split!r}; known: {', '.join(self.splits)}"
            )
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.split = split
        self.check_admissible = check_admissible
        self.render_mode = render_mode
        self._state: EngineState | None = None
        self._task = ""
        self._task_id = ""
        self._done = False

    # ------------------------------------------------------------------ engine interface
    def _engine_num_tasks(self) -> int:
        """Number of tasks in ``self.split``."""
        raise NotImplementedError

    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        """Start task ``index`` of the split; return ``(task text, task id, first state)``.

        The task id must read ``<family>/<task type>/<anything>`` and be stable across runs.
        """
        raise NotImplementedError

    def _engine_step(self, command: str) -> EngineState:
        """Send one well-formed command (already checked for admissibility) to the engine."""
        raise NotImplementedError

    def _engine_close(self) -> None:
        """Release engine resources (JVMs, subprocesses). Must be safe to call twice."""

    def _normalize_command(self, command: str, admissible: Sequence[str]) -> str:
        """Canonical form of a command: the admissible command it equals ignoring case, else
        the command lower-cased. Families with other conventions override this."""
        if command in admissible:
            return command
        folded = command.lower()
        return next((a for a in admissible if a.lower() == folded), folded)

    def _is_admissible(self, command: str, admissible: Sequence[str]) -> bool:
        return command in admissible

    def _refusal(self, command: str) -> str:
        """Why ``command`` must not reach the engine even when admissibility is not checked
        (engine meta-commands that write files, restart the game or reset its score), or
        ``""``. Families with such commands override this."""
        return ""

    # ------------------------------------------------------------------ Gymnasium API
    @property
    def num_tasks(self) -> int:
        return self._engine_num_tasks()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task"} - set(self.reset_options)
        if unknown:
            known = sorted({"task", *self.reset_options})
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; known: {known}")
        n = self.num_tasks
        index = options.get("task")
        if index is None:
            index = int(self.np_random.integers(n))
        elif not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            raise ValueError(f"options['task'] must be an int in [0, {n}), got {index!r}")
        self._task, self._task_id, self._state = self._engine_reset(index, options)
        self._task, self._task_id = to_text(self._task), to_text(self._task_id)
        if self._task_id.count("/") < 2 or not self._task_id.startswith(self.family + "/"):
            raise RuntimeError(f"{type(self).__name__}: task id {self._task_id!r} must read "
                               f"'{self.family}/<task type>/...'")
        self._done = self._state.won or self._state.lost
        return to_text(self._state.observation), self._info(valid=True, reason="")

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        previous = self._state
        command, reason = parse_command(action)
        if not reason:
            command = self._normalize_command(command, previous.admissible)
        if not reason and self._done:
            reason = "the episode is over; call reset()"
        if not reason:
            reason = self._refusal(command)
        if (
            not reason
            and self.check_admissible
            and not self._is_admissible(command, previous.admissible)
        ):
            reason = "the command is not one of the admissible commands"
        if reason:
            observation = f"Nothing happens: {reason}."
            return observation, 0.0, self._done, False, self._info(valid=False, reason=reason)

        state = self._engine_step(command)
        self._state = state
        reward = float(state.score - previous.score)
        self._done = bool(state.won or state.lost)
        info = self._info(valid=state.valid, reason=state.invalid_reason)
        return to_text(state.observation), reward, self._done, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi" and self._state is not None:
            return to_text(self._state.observation)
        return None

    def close(self) -> None:
        self._engine_close()
        super().close()

    # ------------------------------------------------------------------ helpers
    def _info(self, *, valid: bool, reason: str) -> dict[str, Any]:
        state = self._state
        assert state is not None
        info: dict[str, Any] = {
            "task": self._task,
            "task_id": self._task_id,
            "task_type": self._task_id.split("/")[1],
            "admissible_commands": list(state.admissible),
            "won": bool(state.won),
            "score": float(state.score),
            "action_is_valid": bool(valid),
            "invalid_reason": reason,
        }
        if self.has_expert:
            info["expert_action"] = state.expert_action
        info.update(state.extra)
        return info
