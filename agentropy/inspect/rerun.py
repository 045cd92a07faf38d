"""Re-run a recorded episode: ``agentropy rerun``.

The env is made again from the record (id and ``gymnasium.make`` kwargs), reset with the
recorded seed and options, and stepped with the recorded actions. At every turn the observation
the agent acted on, then the reward, validity and invalid reason the step returned, are compared
with the record; the first turn where anything differs is reported with both values. At the end
the outcome (terminated, truncated, won, score) is compared too. Package versions that differ
from the recorded ones are reported separately: they do not make a re-run differ by themselves,
but they are the usual reason when it does.

A run folder may come from someone else, so a re-run makes only what it allows: an id registered
by :mod:`agentropy.envs` (``ENV_IDS``), with the constructor keywords the env class lists in
``rerun_kwargs`` (plus Gymnasium's ``max_episode_steps``). Keywords in ``rerun_dropped_kwargs``
(``cache_dir``: where the recording machine kept its caches) are dropped, since they do not change
the game and a run folder must not choose where this machine writes; any other keyword is refused
(:class:`RerunRefused`), since it may name a file to read or change the game.

A turn the rollout collector recorded (a model's, or the scripted expert's in the SFT
demonstrations) counts as invalid when the completion was malformed or the env refused the
command, and its recorded reason reads ``"format: ...; env: ..."``; only the env's part can be
re-run, so validity and reason are compared with that part.

Rewards are compared with an absolute tolerance of 1e-9 (JSON keeps floats exactly, so a
recorded reward differs only if a writer rounded it); texts and flags must be equal.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentropy import envs  # noqa: F401  (registers the ids)
from agentropy.records.episodes import EpisodeRecord, package_versions

__all__ = ["Difference", "RerunRefused", "RerunReport", "Rerunner", "make_kwargs", "rerun"]

log = logging.getLogger(__name__)

REWARD_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Difference:
    """One field whose re-run value is not the recorded one.

    Attributes:
        turn: index into ``record.turns`` (0-based); None for the episode's outcome.
        field: ``"observation"``, ``"reward"``, ``"action_is_valid"``, ``"invalid_reason"``,
            ``"length"``, ``"terminated"``, ``"truncated"``, ``"won"``, ``"score"``, ``"task_id"``
            or ``"task"``.
        recorded: the value in the record.
        replayed: the value the re-run gave.
    """

    turn: int | None
    field: str
    recorded: Any
    replayed: Any

    def describe(self) -> str:
        where = "outcome" if self.turn is None else f"turn {self.turn}"
        return f"{where}: {self.field} recorded {_short(self.recorded)}, re-run {_short(self.replayed)}"


@dataclass(frozen=True)
class RerunReport:
    """The result of re-running one episode.

    Attributes:
        episode_id: the record's id.
        turns_replayed: how many recorded actions were sent to the env.
        differences: the differences found at the first turn that differs (empty if none).
        version_changes: package name -> (recorded version, installed version), for packages
            whose version changed since the episode was recorded.
        error: why the re-run could not be done or finished ("" if it could).
    """

    episode_id: str
    turns_replayed: int
    differences: tuple[Difference, ...] = ()
    version_changes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    error: str = ""

    @property
    def identical(self) -> bool:
        """The re-run reproduced every recorded observation, reward and the outcome."""
        return not self.differences and not self.error

    @property
    def first_turn(self) -> int | None:
        """The first turn that differs (None if none, or only the outcome does)."""
        turns = [d.turn for d in self.differences if d.turn is not None]
        return min(turns) if turns else None

    def describe(self) -> str:
        """One paragraph for people: what differs, first, and which versions changed."""
        if self.error:
            head = f"could not re-run: {self.error}"
        elif self.differences:
            head = "differs at " + "; ".join(d.describe() for d in self.differences)
        else:
            head = f"identical ({self.turns_replayed} turns)"
        if self.version_changes:
            changes = ", ".join(f"{name} {old} -> {new}"
                                for name, (old, new) in sorted(self.version_changes.items()))
            head += f" [package versions changed since recording: {changes}]"
        return head


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def version_changes(record: EpisodeRecord) -> dict[str, tuple[str, str]]:
    """Packages whose installed version is not the one the record names."""
    names = [n for n in record.package_versions if n not in ("agentropy", "gymnasium")]
    installed = package_versions(names)
    return {
        name: (old, installed.get(name, "not installed"))
        for name, old in record.package_versions.items()
        if installed.get(name, "not installed") != old
    }


class RerunRefused(ValueError):
    """A record names an env or a keyword that a re-run does not make (see the module docstring)."""


#: Gymnasium ``make`` keywords a re-run takes from a record, with their required type.
_MAKE_KWARGS: dict[str, type] = {"max_episode_steps": int}


def make_kwargs(record: EpisodeRecord) -> dict[str, Any]:
    """The ``gymnasium.make`` keywords of ``record`` that a re-run honours.

    Raises:
        RerunRefused: the id is not one of ``agentropy.envs.ENV_IDS``, or a keyword is neither
            allowed nor dropped by the env class.
    """
    if record.env_id not in envs.ENV_IDS:
        raise RerunRefused(f"episode {record.episode_id}: env id {record.env_id!r} is not an agentropy "
                           f"env ({', '.join(envs.ENV_IDS)})")
    cls = envs.env_class(record.env_id)
    allowed = frozenset(getattr(cls, "rerun_kwargs", ()))
    dropped = frozenset(getattr(cls, "rerun_dropped_kwargs", ()))
    out: dict[str, Any] = {}
    for key, value in dict(record.env_kwargs).items():
        if key in _MAKE_KWARGS:
            if not isinstance(value, _MAKE_KWARGS[key]) or isinstance(value, bool):
                raise RerunRefused(f"episode {record.episode_id}: {key} must be an "
                                   f"{_MAKE_KWARGS[key].__name__}, got {value!r}")
            out[key] = value
        elif key in allowed:
            out[key] = value
        elif key in dropped:
            log.info("episode %s: re-run ignores the recorded %s=%r (this machine's default is used)",
                     record.episode_id, key, value)
        else:
            known = sorted(allowed | set(_MAKE_KWARGS))
            raise RerunRefused(f"episode {record.episode_id}: {record.env_id} keyword {key!r} is not "
                               f"re-run from a record (allowed: {', '.join(known)})")
    return out


def _split_reason(reason: str) -> tuple[bool, str] | None:
    """The env's part of a reason the rollout wrote: (the env accepted the command, its reason).

    The rollout collector, whatever its agent (a model, or the scripted expert of the SFT
    demonstrations), records ``"format: ...; env: ..."`` (either part may be absent, see
    :mod:`agentropy.algorithms.rollout`); ``agentropy play``'s scripted agents record the env's
    reason as it is, and get None.
    """
    if not reason.startswith(("format: ", "env: ")):
        return None
    head, sep, env_part = reason.partition("env: ")
    if not sep or (head and not head.endswith("; ")):
        return True, ""  # only a format reason
    return False, env_part


def _diffs(turn: int | None, pairs: Iterable[tuple[str, Any, Any]]) -> list[Difference]:
    out = []
    for name, recorded, replayed in pairs:
        if name == "reward" or name == "score":
            same = math.isclose(float(recorded), float(replayed), rel_tol=0.0,
                                abs_tol=REWARD_TOLERANCE)
        else:
            same = recorded == replayed
        if not same:
            out.append(Difference(turn, name, recorded, replayed))
    return out


class Rerunner:
    """Re-runs records, keeping one env per (env id, kwargs) open between episodes.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self) -> None:
        self._envs: dict[tuple[str, str], gym.Env] = {}

    def _env(self, record: EpisodeRecord) -> gym.Env:
        key = (record.env_id, json.dumps(dict(record.env_kwargs), sort_keys=True, default=str))
        if key not in self._envs:
            self._envs[key] = gym.make(record.env_id, **make_kwargs(record))
        return self._envs[key]

    def rerun(self, record: EpisodeRecord) -> RerunReport:
        """Re-run one record; see the module docstring for what is compared.

        Raises:
            RerunRefused: the record names an env or keyword a re-run does not make.
        """
        changes = version_changes(record)
        make_kwargs(record)  # refuse before anything is imported or made
        try:
            env = self._env(record)
        except Exception as exc:  # an unknown id, a missing engine, bad kwargs
            return RerunReport(record.episode_id, 0, version_changes=changes,
                               error=f"cannot make {record.env_id} with {dict(record.env_kwargs)}: "
                                     f"{type(exc).__name__}: {exc}")
        options = dict(record.options) or None
        try:
            obs, info = env.reset(seed=record.seed, options=options)
        except Exception as exc:
            return RerunReport(record.episode_id, 0, version_changes=changes,
                               error=f"reset failed: {type(exc).__name__}: {exc}")
        diffs = _diffs(None, [("task_id", record.task_id, info.get("task_id")),
                              ("task", record.task, info.get("task"))])
        if diffs:
            return RerunReport(record.episode_id, 0, tuple(diffs), changes)
        terminated = truncated = False
        for t, turn in enumerate(record.turns):
            if terminated or truncated:
                return RerunReport(record.episode_id, t, (
                    Difference(t, "length", record.length, t),), changes)
            diffs = _diffs(t, [("observation", turn.observation, obs)])
            if diffs:
                return RerunReport(record.episode_id, t, tuple(diffs), changes)
            try:
                obs, reward, terminated, truncated, info = env.step(turn.action)
            except Exception as exc:
                return RerunReport(record.episode_id, t, version_changes=changes,
                                   error=f"turn {t}: step raised {type(exc).__name__}: {exc}")
            split = _split_reason(turn.invalid_reason)
            env_valid, env_reason = split if split is not None else (turn.action_is_valid,
                                                                     turn.invalid_reason)
            replayed_reason = info["invalid_reason"]
            if env_reason == "the env refused the command" and not replayed_reason:
                env_reason = ""  # the rollout's words for a refusal without a reason
            diffs = _diffs(t, [
                ("reward", turn.reward, reward),
                ("action_is_valid", env_valid, info["action_is_valid"]),
                ("invalid_reason", env_reason, replayed_reason),
            ])
            if diffs:
                return RerunReport(record.episode_id, t + 1, tuple(diffs), changes)
        n = record.length
        outcome = [("won", record.won, info["won"]), ("score", record.score, info["score"])]
        if not record.failure:
            # An episode cut short by a failure (a crashed backend, say) ends without the env
            # saying so; its flags are the recorder's, not the env's.
            outcome = [("terminated", record.terminated, terminated),
                       ("truncated", record.truncated, truncated), *outcome]
        return RerunReport(record.episode_id, n, tuple(_diffs(None, outcome)), changes)

    def close(self) -> None:
        for env in self._envs.values():
            try:
                env.close()
            except Exception:  # pragma: no cover  (closing must not hide the report)
                log.exception("closing an env failed")
        self._envs.clear()

    def __enter__(self) -> Rerunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rerun(records: Iterable[EpisodeRecord]) -> Iterator[RerunReport]:
    """Re-run each record in turn (one env per id and kwargs); yields a report per record."""
    with Rerunner() as runner:
        for record in records:
            yield runner.rerun(record)
