"""The episode log: one JSON object per episode per line, in ``<run>/episodes.jsonl``.

Every episode an agent plays (training rollouts, evaluation, ``agentropy play``) is appended as
an :class:`EpisodeRecord` holding everything needed to read it and to re-run it: the env id,
make kwargs, seed, reset options and package versions, the policy version, and turn by turn the
observation, prompt, completion, action, validity, reward, log-probability and entropy.

Durability rules:

* each record is written with a single ``write`` and flushed, so a killed process leaves at most
  one partial line, at the end;
* :func:`read_episodes` skips a truncated last line with a warning, and refuses a record whose
  ``schema_version`` it does not know, naming the line;
* :class:`EpisodeLog` cuts a partial last line before appending, so later records never land
  on a corrupted line, and :meth:`EpisodeLog.truncate` lets a resumed run drop what it recorded
  after its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from agentropy.records.jsonl import AppendOnlyJsonl, iter_jsonl

__all__ = [
    "SCHEMA_VERSION",
    "EpisodeLog",
    "EpisodeRecord",
    "EpisodeSchemaError",
    "TurnRecord",
    "package_versions",
    "read_episodes",
]

log = logging.getLogger(__name__)

#: Version of the record layout written by this code. Bump it when a field changes meaning or
#: a required field is added, and teach :func:`_upgrade` to read the older versions.
SCHEMA_VERSION = 1
_KNOWN_VERSIONS = frozenset({1})


class EpisodeSchemaError(ValueError):
    """A record in an episode log cannot be read by this version of agentropy."""


@dataclass(frozen=True)
class TurnRecord:
    """One turn of a recorded episode.

    Attributes:
        observation: the raw env observation the agent acted on (no history).
        prompt: the full prompt text the model saw ("" for scripted agents).
        completion: the model's full output text, thinking included.
        action: the command sent to the env.
        action_is_valid: whether the turn counted as a valid action.
        invalid_reason: why not ("" when valid).
        reward: the env's reward for this step.
        logprob_sum: sum of the completion's sampling log-probabilities (0 for scripted agents).
        mean_entropy: mean token entropy of the completion, if known.
        advantage: the advantage the learner gave this turn, once trained on.
        token_entropies: per-token entropies of the completion, if recorded (for the viewer).
        tokens: the completion's tokens as text pieces, if recorded (for the viewer).
    """

    observation: str
    action: str
    action_is_valid: bool
    reward: float
    prompt: str = ""
    completion: str = ""
    invalid_reason: str = ""
    logprob_sum: float = 0.0
    mean_entropy: float | None = None
    advantage: float | None = None
    token_entropies: tuple[float, ...] | None = None
    tokens: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode, with what is needed to re-run it.

    Attributes:
        episode_id: unique within the run.
        env_id: the Gymnasium id.
        env_kwargs: the keyword arguments given to ``gymnasium.make``.
        seed: the seed given to ``reset``.
        options: the options given to ``reset``.
        package_versions: versions of agentropy, gymnasium and the env's engine packages.
        policy_version: weights version of the policy that played (0 for scripted agents).
        agent: what played, e.g. ``"model:hf"``, ``"random"``, ``"expert"``.
        phase: ``"train"``, ``"eval"`` or ``"play"``.
        iteration: the training iteration, if any.
        group_id: the GRPO group, if any.
        task: the task description.
        task_id: the env's stable task identifier.
        won: success at the end.
        score: final score in [0, 1].
        total_reward: sum of per-step rewards.
        terminated: the env ended the episode.
        truncated: the turn limit ended it.
        failure: why the episode could not be completed ("" when it was).
        trainable: False when the agent's backend returned text only (a chat-only API), so the
            episode has no token ids or log-probabilities to train on.
        turns: the turns, in order.
        parent_id: the episode this one branched from (a branching rollout, e.g. AEPO-A's);
            "" for an episode started from reset. Records written before branching existed
            load with "".
        fork_turn: how many leading turns a branch replayed from its parent (its
            ``turns[:fork_turn]`` are the parent's; a re-run replays them from the reset like
            any turn); 0 for an episode started from reset.
        initial_observation: the observation returned by ``reset``.
        split: the env's task split.
        schema_version: layout version of this record.
    """

    episode_id: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    seed: int | None
    options: Mapping[str, Any]
    package_versions: Mapping[str, str]
    policy_version: int
    agent: str
    phase: str
    task: str
    task_id: str
    won: bool
    score: float
    total_reward: float
    terminated: bool
    truncated: bool
    turns: tuple[TurnRecord, ...]
    initial_observation: str = ""
    split: str = ""
    iteration: int | None = None
    group_id: int | None = None
    failure: str = ""
    trainable: bool = True
    parent_id: str = ""
    fork_turn: int = 0
    schema_version: int = SCHEMA_VERSION

    @property
    def length(self) -> int:
        return len(self.turns)

    @property
    def num_invalid(self) -> int:
        return sum(not t.action_is_valid for t in self.turns)

    @property
    def task_type(self) -> str:
        """The task type, from the task id convention ``<family>/<task type>/...``."""
        parts = self.task_id.split("/")
        return parts[1] if len(parts) > 1 else ""

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeRecord:
        version = data.get("schema_version")
        if version not in _KNOWN_VERSIONS:
            raise EpisodeSchemaError(
                f"episode record has schema_version {version!r}; this agentropy reads "
                f"{sorted(_KNOWN_VERSIONS)} (written by a newer or foreign tool?)"
            )
        data = dict(data)
        turn_fields = {f.name for f in dataclasses.fields(TurnRecord)}
        turns = []
        for t in data.pop("turns"):
            t = {k: v for k, v in t.items() if k in turn_fields}
            for key in ("token_entropies", "tokens"):
                if t.get(key) is not None:
                    t[key] = tuple(t[key])
            turns.append(TurnRecord(**t))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise EpisodeSchemaError(f"episode record has unknown fields {sorted(unknown)}")
        return cls(turns=tuple(turns), **data)


def package_versions(names: Sequence[str] = ()) -> dict[str, str]:
    """Installed versions of agentropy, gymnasium and the given distributions."""
    out = {}
    for name in ("agentropy", "gymnasium", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class EpisodeLog(AppendOnlyJsonl):
    """Appends :class:`EpisodeRecord` lines to a file, one flushed write per episode.

    Args:
        path: the ``episodes.jsonl`` file; created with its folder if missing.
        fsync: also ``os.fsync`` after each record (survives a machine crash, not only a
            killed process; slower).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._repair()
        super().__init__(path, fsync=fsync)

    def _repair(self) -> None:
        """Cut a partial last line (left by a killed writer) so appends start on a new line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            # Walk back to the last newline.
            block = 1 << 16
            pos = size
            while pos > 0:
                start = max(0, pos - block)
                f.seek(start)
                chunk = f.read(pos - start)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            else:
                keep = 0
            warnings.warn(
                f"{self.path}: dropping a truncated last record ({size - keep} bytes)", stacklevel=3
            )
            f.truncate(keep)

    def append(self, record: EpisodeRecord) -> None:
        self.write_line(record.to_json())

    def __enter__(self) -> EpisodeLog:
        return self


def iter_episodes(path: str | Path) -> Iterator[EpisodeRecord]:
    """Yield the records of an episode log in file order.

    A last line that is not complete JSON (a writer killed mid-line) is skipped with a warning.
    A bad line anywhere else, or a record of an unknown schema version, raises
    :class:`EpisodeSchemaError` naming the file and line.
    """
    for number, data in iter_jsonl(path, what="a JSON record", error=EpisodeSchemaError, stacklevel=3):
        try:
            yield EpisodeRecord.from_dict(data)
        except EpisodeSchemaError as exc:
            raise EpisodeSchemaError(f"{path}:{number}: {exc}") from None
        except TypeError as exc:
            raise EpisodeSchemaError(f"{path}:{number}: malformed record ({exc})") from None


def read_episodes(path: str | Path) -> list[EpisodeRecord]:
    """All records of an episode log; see :func:`iter_episodes` for the error rules."""
    return list(iter_episodes(path))
