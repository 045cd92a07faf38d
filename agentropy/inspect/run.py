"""Reading a run folder for inspection: an index of its episodes and the filters over it.

A run folder (``RUN``) holds:

* ``episodes.jsonl``: :class:`agentropy.records.episodes.EpisodeRecord` lines, possibly tens of
  thousands and still growing while training runs;
* ``metrics.jsonl``, ``replay.jsonl`` and ``.hydra/config.yaml``, which
  :mod:`agentropy.inspect.logs` reads.

:class:`RunIndex` reads ``episodes.jsonl`` once, line by line, and keeps only a small
:class:`EpisodeSummary` and the byte offset of each record; a full record is read back from its
offset on demand. :meth:`RunIndex.refresh` indexes what was appended since the last call, so a
viewer can follow a live run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentropy.records.episodes import SCHEMA_VERSION, EpisodeRecord, EpisodeSchemaError

__all__ = [
    "EpisodeFilter",
    "EpisodeSummary",
    "RunIndex",
    "cache_dir",
    "divergence_turn",
    "facets",
    "split_completion",
]

log = logging.getLogger(__name__)

EPISODES_FILE = "episodes.jsonl"

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_ACTION = re.compile(r"<action>(.*?)(?:</action>|$)", re.DOTALL)


def split_completion(completion: str) -> tuple[str, str]:
    """Split a model completion into its thinking and its answer.

    ``"<think>t</think><action>a</action>"`` gives ``("t", "a")``. Without ``<think>`` tags the
    thinking is empty; without ``<action>`` tags the answer is what is left once the thinking is
    removed. An unclosed tag runs to the end of the text.
    """
    think = _THINK.search(completion)
    thinking = think.group(1).strip() if think else ""
    rest = completion[: think.start()] + completion[think.end():] if think else completion
    action = _ACTION.search(rest)
    answer = action.group(1) if action else rest
    return thinking, answer.strip()


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    """What the episode lists show and filter on; the full record stays on disk.

    Attributes:
        episode_id: the record's id.
        line: 1-based line number in ``episodes.jsonl``.
        offset: byte offset of the line.
        env_id, task, task_id, task_type, agent, phase, split: from the record (``task``
            cut to 200 characters).
        iteration, group_id, policy_version, seed: from the record.
        won, score, total_reward, length, num_invalid, terminated, truncated, failure: the outcome.
        mean_entropy: mean of the turns' ``mean_entropy`` (None if no turn has one).
        has_training_data: some turn carries an advantage.
    """

    episode_id: str
    line: int
    offset: int
    env_id: str
    task: str
    task_id: str
    task_type: str
    agent: str
    phase: str
    split: str
    iteration: int | None
    group_id: int | None
    policy_version: int
    seed: int | None
    won: bool
    score: float
    total_reward: float
    length: int
    num_invalid: int
    terminated: bool
    truncated: bool
    failure: str
    mean_entropy: float | None
    has_training_data: bool

    @property
    def group_key(self) -> tuple[int | None, int] | None:
        """(iteration, group id): the members of one GRPO group share it."""
        return None if self.group_id is None else (self.iteration, self.group_id)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], line: int = 0, offset: int = 0) -> EpisodeSummary:
        """The summary of a record's JSON object, without building the record (faster).

        Raises:
            KeyError, TypeError, AttributeError: a malformed record.
        """
        turns = data["turns"]
        entropies = [t["mean_entropy"] for t in turns if t.get("mean_entropy") is not None]
        task_id = data["task_id"]
        parts = task_id.split("/")
        return cls(
            episode_id=data["episode_id"],
            line=line,
            offset=offset,
            env_id=data["env_id"],
            task=data["task"][:200],
            task_id=task_id,
            task_type=parts[1] if len(parts) > 1 else "",
            agent=data["agent"],
            phase=data["phase"],
            split=data.get("split", ""),
            iteration=data.get("iteration"),
            group_id=data.get("group_id"),
            policy_version=data["policy_version"],
            seed=data["seed"],
            won=data["won"],
            score=data["score"],
            total_reward=data["total_reward"],
            length=len(turns),
            num_invalid=sum(not t["action_is_valid"] for t in turns),
            terminated=data["terminated"],
            truncated=data["truncated"],
            failure=data.get("failure", ""),
            mean_entropy=sum(entropies) / len(entropies) if entropies else None,
            has_training_data=any(t.get("advantage") is not None for t in turns),
        )

    @classmethod
    def of(cls, record: EpisodeRecord, line: int = 0, offset: int = 0) -> EpisodeSummary:
        entropies = [t.mean_entropy for t in record.turns if t.mean_entropy is not None]
        return cls(
            episode_id=record.episode_id,
            line=line,
            offset=offset,
            env_id=record.env_id,
            task=record.task[:200],
            task_id=record.task_id,
            task_type=record.task_type,
            agent=record.agent,
            phase=record.phase,
            split=record.split,
            iteration=record.iteration,
            group_id=record.group_id,
            policy_version=record.policy_version,
            seed=record.seed,
            won=record.won,
            score=record.score,
            total_reward=record.total_reward,
            length=record.length,
            num_invalid=record.num_invalid,
            terminated=record.terminated,
            truncated=record.truncated,
            failure=record.failure,
            mean_entropy=sum(entropies) / len(entropies) if entropies else None,
            has_training_data=any(t.advantage is not None for t in record.turns),
        )


@dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes to show. Every field left at None matches everything.

    Attributes:
        env: env id, exact (``agentropy/TWX-v0``) or a case-insensitive part of it (``twx``).
        task: a case-insensitive part of the task id or the task text.
        task_type: the task type, exact (``coin``).
        won: success (True) or failure (False).
        iteration, policy_version, group_id: exact.
        phase, agent, split: exact.
        episode_ids: only these ids.
        query: a case-insensitive part of the id, env id, task id, task, agent or failure.
    """

    env: str | None = None
    task: str | None = None
    task_type: str | None = None
    won: bool | None = None
    iteration: int | None = None
    policy_version: int | None = None
    group_id: int | None = None
    phase: str | None = None
    agent: str | None = None
    split: str | None = None
    episode_ids: frozenset[str] | None = None
    query: str | None = None

    def matches(self, s: EpisodeSummary) -> bool:
        if self.env is not None and s.env_id != self.env and self.env.lower() not in s.env_id.lower():
            return False
        if self.task is not None:
            needle = self.task.lower()
            if needle not in s.task_id.lower() and needle not in s.task.lower():
                return False
        for name in ("task_type", "won", "iteration", "policy_version", "group_id", "phase",
                     "agent", "split"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(s, name) != wanted:
                return False
        if self.episode_ids is not None and s.episode_id not in self.episode_ids:
            return False
        if self.query:
            needle = self.query.lower()
            haystack = (s.episode_id, s.env_id, s.task_id, s.task, s.agent, s.failure)
            if not any(needle in h.lower() for h in haystack):
                return False
        return True

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> EpisodeFilter:
        """Build a filter from text parameters (a URL query); empty values are ignored.

        Raises:
            ValueError: a number or boolean that does not parse, naming the parameter.
        """
        def text(name: str) -> str | None:
            value = params.get(name, "").strip()
            return value or None

        def integer(name: str) -> int | None:
            value = text(name)
            if value is None:
                return None
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {value!r}") from None

        won = text("won")
        if won is not None:
            if won.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"won must be true or false, got {won!r}")
            won_value: bool | None = won.lower() in ("true", "1", "yes")
        else:
            won_value = None
        ids = text("episode_ids")
        return cls(
            env=text("env"),
            task=text("task"),
            task_type=text("task_type"),
            won=won_value,
            iteration=integer("iteration"),
            policy_version=integer("policy_version"),
            group_id=integer("group_id"),
            phase=text("phase"),
            agent=text("agent"),
            split=text("split"),
            episode_ids=frozenset(ids.split(",")) if ids else None,
            query=text("q"),
        )


def _record_mentions(record: EpisodeRecord, needle: str) -> bool:
    """Whether any text of the record (task, observations, completions, actions) holds needle."""
    needle = needle.lower()
    texts: list[str] = [record.task, record.initial_observation, record.failure]
    for t in record.turns:
        texts += [t.observation, t.completion, t.action, t.invalid_reason]
    return any(needle in x.lower() for x in texts)


@dataclass
class _IndexState:
    """What has been indexed: the summaries, and where in the file the index stops.

    ``head`` and ``tail`` are the file's first bytes and the bytes just before ``offset``: if
    either changed, the file was rewritten (a resumed run truncates and appends) and the index
    starts again.
    """

    summaries: list[EpisodeSummary] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)
    offset: int = 0
    lines: int = 0
    head: bytes = b""
    tail: bytes = b""

    def add(self, summary: EpisodeSummary, path: Path) -> None:
        if summary.episode_id in self.by_id:
            log.warning("%s:%d: episode id %s was already recorded; showing the later record",
                        path, summary.line, summary.episode_id)
            self.summaries[self.by_id[summary.episode_id]] = summary
        else:
            self.by_id[summary.episode_id] = len(self.summaries)
            self.summaries.append(summary)


_FINGERPRINT = 256  # bytes compared at the head and at the end of what was indexed
_PROGRESS_S = 5.0  # seconds between progress messages while indexing a big file
_CACHE_VERSION = 1
_CACHE_MIN_BYTES = 1 << 20  # index at least this much of a file before caching it


def cache_dir() -> Path:
    """Where run indexes are cached: ``$AGENTROPY_CACHE/index``, else
    ``~/.cache/agentropy/index`` (the same root as the environments' caches)."""
    from agentropy.envs.cache import default_cache_dir

    return default_cache_dir("index")


def _read_span(f: Any, start: int, size: int) -> bytes:
    f.seek(max(0, start))
    return f.read(size)


class RunIndex:
    """An index of a run folder's episodes: summaries in memory, records read on demand.

    Thread-safe: a server thread may call :meth:`refresh` while others read.

    Args:
        run_dir: the run folder. It must exist; ``episodes.jsonl`` may be missing (no episodes
            yet) or still growing.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
    """

    def __init__(self, run_dir: str | Path, *, cache: bool = True) -> None:
        self.run_dir = Path(run_dir).resolve()
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no such directory)")
        self.episodes_path = self.run_dir / EPISODES_FILE
        self._state = _IndexState()
        self._lock = threading.Lock()
        self._cache_path = None
        if cache:
            key = hashlib.sha256(str(self.episodes_path).encode()).hexdigest()[:24]
            self._cache_path = cache_dir() / f"{key}.jsonl"
            self._state = self._load_cache()
        self._saved_at = time.monotonic()
        self._saved_offset = self._state.offset
        self.refresh()

    @property
    def unindexed_bytes(self) -> int:
        """Bytes of ``episodes.jsonl`` after its last complete line (a record being written, or
        the truncated last line of a killed writer); 0 when everything is indexed."""
        try:
            return max(0, self.episodes_path.stat().st_size - self._state.offset)
        except FileNotFoundError:
            return 0

    # ------------------------------------------------------------------ indexing
    def refresh(self) -> int:
        """Index the complete lines appended since the last call; returns how many.

        A file that was rewritten (its first bytes, or the bytes before where the index stopped,
        changed: a resumed run truncates it) is indexed again from the start. A last line
        without its newline is a record still being written: it is left for later.

        Raises:
            EpisodeSchemaError: a complete line that is not a readable record, naming the line.
        """
        with self._lock:
            path = self.episodes_path
            if not path.exists():
                self._state = _IndexState()
                return 0
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                state = self._state
                if state.offset and (size < state.offset or not self._unchanged(f, state)):
                    log.info("%s was rewritten; indexing it again", path)
                    state = self._state = _IndexState()
                if size == state.offset:
                    return 0
                added = self._index_from(f, state, size)
            self._maybe_save()
            return added

    @staticmethod
    def _unchanged(f: Any, state: _IndexState) -> bool:
        return (_read_span(f, 0, len(state.head)) == state.head
                and _read_span(f, state.offset - len(state.tail), len(state.tail)) == state.tail)

    def _index_from(self, f: Any, state: _IndexState, size: int) -> int:
        path = self.episodes_path
        added = 0
        last_report = time.monotonic()
        f.seek(state.offset)
        while True:
            start = f.tell()
            raw = f.readline()
            if not raw.endswith(b"\n"):
                break  # EOF, or a record still being written
            state.lines += 1
            if raw.strip():
                state.add(_summarize(raw, path, state.lines, start), path)
                added += 1
            state.offset = f.tell()
            if time.monotonic() - last_report > _PROGRESS_S:
                last_report = time.monotonic()
                log.info("indexing %s: %d episodes, %.0f of %.0f MB", path, len(state.summaries),
                         state.offset / 1e6, size / 1e6)
        state.head = _read_span(f, 0, min(_FINGERPRINT, state.offset))
        state.tail = _read_span(f, state.offset - min(_FINGERPRINT, state.offset),
                                min(_FINGERPRINT, state.offset))
        return added

    # ------------------------------------------------------------------ cache
    def _load_cache(self) -> _IndexState:
        """The cached index of this file, if it still describes the file's first bytes."""
        path = self._cache_path
        if path is None or not path.is_file() or not self.episodes_path.exists():
            return _IndexState()
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline())
                if header.get("version") != _CACHE_VERSION or header.get("path") != str(
                        self.episodes_path):
                    return _IndexState()
                state = _IndexState(offset=header["offset"], lines=header["lines"],
                                    head=bytes.fromhex(header["head"]),
                                    tail=bytes.fromhex(header["tail"]))
                names = [f.name for f in fields(EpisodeSummary)]
                for raw in f:
                    state.add(EpisodeSummary(**dict(zip(names, json.loads(raw), strict=True))),
                              self.episodes_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("ignoring the index cache %s: %s", path, exc)
            return _IndexState()
        with open(self.episodes_path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < state.offset or not self._unchanged(f, state):
                return _IndexState()
        log.debug("read %d summaries of %s from the cache %s", len(state.summaries),
                  self.episodes_path, path)
        return state

    def _maybe_save(self) -> None:
        """Write the cache after a big first indexing, then at most every 30 s of new records."""
        state = self._state
        if self._cache_path is None or state.offset == self._saved_offset:
            return
        grown = state.offset - self._saved_offset
        if grown < _CACHE_MIN_BYTES and time.monotonic() - self._saved_at < 30.0:
            return
        self._saved_at, self._saved_offset = time.monotonic(), state.offset
        names = [f.name for f in fields(EpisodeSummary)]
        header = {"version": _CACHE_VERSION, "path": str(self.episodes_path),
                  "offset": state.offset, "lines": state.lines, "head": state.head.hex(),
                  "tail": state.tail.hex()}
        lines = [json.dumps(header)] + [
            json.dumps([getattr(s, n) for n in names], ensure_ascii=False)
            for s in state.summaries]
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, self._cache_path)
        except OSError as exc:  # a read-only home: the cache is only a speed-up
            log.debug("cannot write the index cache %s: %s", self._cache_path, exc)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._state.summaries)

    @property
    def summaries(self) -> Sequence[EpisodeSummary]:
        """All summaries, in file order."""
        return tuple(self._state.summaries)

    def summary(self, episode_id: str) -> EpisodeSummary | None:
        state = self._state
        index = state.by_id.get(episode_id)
        return None if index is None else state.summaries[index]

    def record(self, episode_id: str) -> EpisodeRecord | None:
        """The full record of an episode, read from disk; None if the id is unknown."""
        summary = self.summary(episode_id)
        if summary is None:
            return None
        return self._read_at(summary)

    def _read_at(self, summary: EpisodeSummary) -> EpisodeRecord:
        with open(self.episodes_path, "rb") as f:
            f.seek(summary.offset)
            raw = f.readline()
        record = _parse_line(raw, self.episodes_path, summary.line)
        if record.episode_id != summary.episode_id:
            raise EpisodeSchemaError(
                f"{self.episodes_path}:{summary.line}: the file changed under the index "
                f"(expected episode {summary.episode_id}, found {record.episode_id}); refresh"
            )
        return record

    def records(self, summaries: Iterable[EpisodeSummary]) -> Iterator[EpisodeRecord]:
        """The full records of the given summaries, in the given order."""
        for s in summaries:
            yield self._read_at(s)

    def select(self, flt: EpisodeFilter | None = None, text: str | None = None
               ) -> list[EpisodeSummary]:
        """The summaries that match ``flt``, in file order.

        Args:
            flt: the filter on summary fields.
            text: if given, keep only episodes whose texts (observations, completions, actions,
                task) contain it, case-insensitively; this reads the matching records.
        """
        flt = flt or EpisodeFilter()
        chosen = [s for s in self._state.summaries if flt.matches(s)]
        if text:
            chosen = [s for s, r in zip(chosen, self.records(chosen), strict=True)
                      if _record_mentions(r, text)]
        return chosen

    def group(self, iteration: int | None, group_id: int) -> list[EpisodeRecord]:
        """The members of one GRPO group, in file order."""
        members = [s for s in self._state.summaries if s.group_key == (iteration, group_id)]
        return list(self.records(members))

    def facets(self) -> dict[str, Any]:
        """Counts per value of the filterable fields, for the viewer's menus."""
        return facets(self._state.summaries)


def facets(summaries: Sequence[EpisodeSummary]) -> dict[str, Any]:
    """Counts per value of the filterable fields (env, task type, phase, agent, split), the
    iterations and policy versions present, the number won and the number of GRPO groups."""
    out: dict[str, Any] = {}
    for name in ("env_id", "task_type", "phase", "agent", "split"):
        out[name] = dict(sorted(Counter(getattr(s, name) for s in summaries).items()))
    for name in ("iteration", "policy_version"):
        out[name] = sorted({getattr(s, name) for s in summaries} - {None})
    out["won"] = sum(s.won for s in summaries)
    out["groups"] = len({s.group_key for s in summaries} - {None})
    return out


def _summarize(raw: bytes, path: Path, line: int, offset: int) -> EpisodeSummary:
    """The summary of one line; records of an older schema go through :class:`EpisodeRecord`."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EpisodeSchemaError(f"{path}:{line}: not a JSON record ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return EpisodeSummary.of(_parse_line(raw, path, line), line=line, offset=offset)
    try:
        return EpisodeSummary.from_dict(data, line=line, offset=offset)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EpisodeSchemaError(f"{path}:{line}: malformed record ({exc!r})") from None


def _parse_line(raw: bytes, path: Path, line: int) -> EpisodeRecord:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EpisodeSchemaError(f"{path}:{line}: not a JSON record ({exc})") from None
    try:
        return EpisodeRecord.from_dict(data)
    except EpisodeSchemaError as exc:
        raise EpisodeSchemaError(f"{path}:{line}: {exc}") from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise EpisodeSchemaError(f"{path}:{line}: malformed record ({exc!r})") from None


def divergence_turn(records: Sequence[EpisodeRecord]) -> int | None:
    """The first turn at which the members of a group stop doing the same thing.

    Members of a GRPO group play the same task from the same seed, so they see the same turns
    until one of them acts differently (or stops). Returns the index of the first turn whose
    actions differ, or at which one member has no turn left while another goes on; None if all
    members played exactly the same actions (or there are fewer than two).
    """
    if len(records) < 2:
        return None
    longest = max(r.length for r in records)
    for t in range(longest):
        if any(t >= r.length for r in records):
            return t
        if len({r.turns[t].action for r in records}) > 1:
            return t
    return None
