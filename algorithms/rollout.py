"""The rollout collector: play a batch of episodes to the end and return them as trajectories.

``collect(pool, agent, tasks, group_size)`` plays every task ``group_size`` times (a GRPO group:
same seed, same options, so the members start from the same observation). Episode ``j`` of task
``i`` is number ``i * group_size + j``; with at least that many pool slots it plays in slot
``i * group_size + j``, otherwise episodes wait for a free slot (the pool's specs must then all be
the same). Each turn the agent generates for the active episodes only, in one batch; the pool
steps those envs; an episode ends when the env terminates or truncates it (each family's turn
limit is its registered ``max_episode_steps``, or ``max_turns`` if given here), or when the pool
reports a failure (the trajectory then carries ``failure`` and callers leave it out of training).

A turn is invalid when its completion was malformed (:mod:`agentropy.agents.parsing`) or the env refused
the command (``info["action_is_valid"]``); both reasons are kept, as ``"format: ..."`` and
``"env: ..."``. Every finished episode is appended to the run's episode log right away.

**Branching.** With a :class:`BranchRule` (AEPO-A's, arXiv 2510.14545, from the ``aepo_a``
learner part) a group's ``group_size`` episodes are not all started from the reset. ``m =
rule.global_samples(group_size)`` are; after each env step ("tool call") the rule looks at the
generation that reads the step's observation, and may fork the episode: a fork is a new member of
the same group, played in a fresh env slot reset with the same task, whose first turns replay the
parent's actions (its :class:`~agentropy.algorithms.data.Turn` records for the shared prefix are
the parent's; nothing is generated again) before it samples on its own from the fork point, the
turn whose generation the rule judged. The replay checks every observation and reward against
the parent's (an env that diverges fails the branch, which is then not trained on). Forks are
taken while the group's budget lasts; when every episode of a group has ended with budget left,
the rest start from the reset, so every group still has ``group_size`` members. A branch records
its parent's episode id and the fork turn (``Trajectory.parent_id``, ``fork_turn``), and with
``rule.prefix_once`` its shared turns are not training rows (``train_from``): they are trained
once, in the parent. Which episodes fork is seeded (the rule draws from the task seed, group,
member and turn), so the same seed and policy give the same branches.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from agentropy.agents.agent import Agent, AgentStep
from agentropy.agents.backends.base import Generation, SamplingParams
from agentropy.agents.prompts import EpisodeMemory
from agentropy.algorithms.data import Trajectory, Turn
from agentropy.envs.pool import EnvPool, EnvSpec, StepResult
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentropy.records.episodes import EpisodeLog, EpisodeRecord, TurnRecord, package_versions

__all__ = ["BranchRule", "RolloutStats", "Task", "collect", "episode_record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One task to play: what ``reset`` gets. Same seed and options give the same game.

    Attributes:
        seed: the reset seed.
        options: the reset options, e.g. ``{"task": 17}`` for task 17 of the env's split.
    """

    seed: int | None
    options: Mapping[str, Any] = field(default_factory=dict)


class BranchRule(Protocol):
    """A branching rollout: how many episodes of a group start from the reset, and when an
    episode forks (see the module docstring). The ``aepo_a`` learner part supplies AEPO-A's
    (:class:`agentropy.algorithms.entropy_parts.AepoABranchRule`).

    Attributes:
        prefix_once: a branch's shared prefix is trained once, in its parent (the branch's
            ``train_from`` is its ``fork_turn``); False trains it once per branch too.
    """

    prefix_once: bool

    def global_samples(self, group_size: int) -> int:
        """How many of a group's ``group_size`` episodes start from the reset (1..group_size)."""
        ...

    def step_entropy(self, generation: Generation) -> float | None:
        """The entropy of one turn's generation as the rule measures it (None: unknown, no fork)."""
        ...

    def forks(self, *, key: Sequence[int], delta_entropy: float, consecutive: int, budget_left: int) -> int:
        """How many branches an episode forks at this turn (0..budget_left).

        Args:
            key: non-negative ints naming the decision (task seed, group id, member, turn): the
                rule's random draw comes from it, so the same key gives the same decision.
            delta_entropy: this turn's step entropy minus the episode's first turn's.
            consecutive: how many rounds in a row this group has forked, up to the last one.
            budget_left: the group's members not yet started or queued.
        """
        ...


@dataclass
class RolloutStats:
    """Counters of one or more :func:`collect` calls (pass one in to have it filled)."""

    episodes: int = 0
    successes: int = 0
    failures: int = 0
    turns: int = 0
    invalid_turns: int = 0
    completion_tokens: int = 0
    generate_seconds: float = 0.0
    """time inside the backend's ``generate``"""
    env_seconds: float = 0.0
    """time inside the pool's ``reset`` and ``step``"""
    wall_seconds: float = 0.0

    def add_episode(self, traj: Trajectory) -> None:
        """Count a finished episode."""
        self.episodes += 1
        self.successes += traj.won
        self.failures += bool(traj.failure)
        self.turns += traj.length
        self.invalid_turns += traj.num_invalid

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / max(self.wall_seconds, 1e-9)

    @property
    def overhead(self) -> float:
        """Wall time over (generate + env) time: what the collector itself costs."""
        return self.wall_seconds / max(self.generate_seconds + self.env_seconds, 1e-9)


@dataclass
class _Episode:
    """A running episode (private, mutable)."""

    index: int
    task: Task
    group_id: int
    slot: int
    memory: EpisodeMemory
    observation: str
    info: Mapping[str, Any]
    first_observation: str
    turns: list[Turn] = field(default_factory=list)
    token_entropies: list[tuple[float, ...] | None] = field(default_factory=list)
    failure: str = ""
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    step_entropies: list[float | None] = field(default_factory=list)
    """per turn, the branch rule's step entropy (branching rollouts only)"""
    parent_id: str = ""
    fork_turn: int = 0
    train_from: int = 0


@dataclass(frozen=True)
class _Fork:
    """A branch waiting for its env: what it copies from its parent at the fork (private)."""

    parent_id: str
    turns: tuple[Turn, ...]
    token_entropies: tuple[tuple[float, ...] | None, ...]
    step_entropies: tuple[float | None, ...]
    memory: EpisodeMemory
    observation: str


@dataclass
class _Group:
    """One task's group of episodes in a :func:`collect` call (private, mutable).

    ``started`` members are started or queued (members ``0..started-1``, episode numbers
    ``first + member``), ``live`` of them have not ended; ``consecutive`` counts the rounds in a
    row in which the group forked.
    """

    task: Task
    group_id: int
    first: int
    size: int
    started: int = 0
    live: int = 0
    consecutive: int = 0

    @property
    def left(self) -> int:
        return self.size - self.started


@cache
def _family(env_id: str) -> str:
    from agentropy.envs import env_class

    return str(getattr(env_class(env_id), "family", "") or "generic")


@cache
def _versions(env_id: str) -> tuple[tuple[str, str], ...]:
    from agentropy.envs import env_class

    return tuple(package_versions(getattr(env_class(env_id), "engine_packages", ())).items())


def _turn(ep: _Episode, step: AgentStep, result: StepResult, capped: bool) -> Turn:
    env_valid = bool(result.info.get("action_is_valid", True))
    reasons = []
    if not step.parsed.valid:
        reasons.append(f"format: {step.parsed.reason}")
    if not env_valid:
        reasons.append(f"env: {result.info.get('invalid_reason') or 'the env refused the command'}")
    gen = step.generation
    return Turn(
        prompt_ids=step.prompt.ids,
        completion_ids=gen.token_ids,
        completion_logprobs=gen.logprobs,
        reward=float(result.reward),
        action_is_valid=step.parsed.valid and env_valid,
        observation=ep.observation,
        action=step.parsed.action,
        prompt_text=step.prompt.text,
        completion_text=gen.text,
        invalid_reason="; ".join(reasons),
        finish_reason=gen.finish_reason,
        terminated=bool(result.terminated),
        truncated=bool(result.truncated) or (capped and not result.terminated),
        mean_entropy=gen.mean_entropy,
        trainable=gen.trainable,
        mean_temperature=gen.mean_temperature,
    )


def _trajectory(ep: _Episode, spec: EnvSpec, policy_version: int) -> Trajectory:
    return Trajectory(
        env_id=spec.env_id,
        seed=ep.task.seed,
        group_id=ep.group_id,
        policy_version=policy_version,
        turns=tuple(ep.turns),
        env_kwargs=dict(spec.kwargs),
        options=dict(ep.task.options),
        task=str(ep.info.get("task", "")),
        task_id=str(ep.info.get("task_id", "")),
        won=bool(ep.info.get("won", False)),
        score=float(ep.info.get("score", 0.0)),
        episode_id=ep.episode_id,
        failure=ep.failure,
        parent_id=ep.parent_id,
        fork_turn=ep.fork_turn,
        train_from=ep.train_from,
    )


def episode_record(
    traj: Trajectory,
    *,
    agent: str,
    phase: str,
    iteration: int | None = None,
    initial_observation: str = "",
    token_entropies: Sequence[tuple[float, ...] | None] | None = None,
    tokens: Sequence[tuple[str, ...] | None] | None = None,
) -> EpisodeRecord:
    """The episode-log record of a trajectory.

    Args:
        traj: the episode.
        agent: what played, e.g. ``"model:hf"``.
        phase: ``"train"``, ``"eval"`` or ``"play"``.
        iteration: the training iteration, if any.
        initial_observation: the observation returned by ``reset``.
        token_entropies: per turn, the completion's token entropies (or None).
        tokens: per turn, the completion's tokens as text pieces (or None).
    """
    n = len(traj.turns)
    token_entropies = token_entropies or [None] * n
    tokens = tokens or [None] * n
    turns = tuple(
        TurnRecord(
            observation=t.observation,
            action=t.action,
            action_is_valid=t.action_is_valid,
            reward=t.reward,
            prompt=t.prompt_text,
            completion=t.completion_text,
            invalid_reason=t.invalid_reason,
            logprob_sum=t.logprob_sum,
            mean_entropy=t.mean_entropy,
            token_entropies=ent,
            tokens=tok,
        )
        for t, ent, tok in zip(traj.turns, token_entropies, tokens, strict=True)
    )
    return EpisodeRecord(
        episode_id=traj.episode_id,
        env_id=traj.env_id,
        env_kwargs=dict(traj.env_kwargs),
        seed=traj.seed,
        options=dict(traj.options),
        package_versions=dict(_versions(traj.env_id)),
        policy_version=traj.policy_version,
        agent=agent,
        phase=phase,
        task=traj.task,
        task_id=traj.task_id,
        won=traj.won,
        score=traj.score,
        total_reward=traj.total_reward,
        terminated=traj.terminated,
        truncated=traj.truncated,
        turns=turns,
        initial_observation=initial_observation,
        split=str(traj.env_kwargs.get("split", "train")),
        iteration=iteration,
        group_id=traj.group_id,
        failure=traj.failure,
        trainable=traj.trainable,
        parent_id=traj.parent_id,
        fork_turn=traj.fork_turn,
    )


def collect(
    pool: EnvPool,
    agent: Agent,
    tasks: Sequence[Task],
    group_size: int,
    *,
    log_to: EpisodeLog | None = None,
    records: list[EpisodeRecord] | None = None,
    phase: str = "train",
    iteration: int | None = None,
    first_group_id: int = 0,
    sampling: SamplingParams | None = None,
    max_turns: int | None = None,
    stats: RolloutStats | None = None,
    progress: bool | Progress = True,
    branch_rule: BranchRule | None = None,
) -> list[Trajectory]:
    """Play each task ``group_size`` times to the end of every episode.

    Args:
        pool: the environments; slot ``k`` plays episode ``k`` when there are enough slots.
        agent: renders prompts, generates and parses.
        tasks: what to play; group ``first_group_id + i`` plays ``tasks[i]``.
        group_size: episodes per task.
        log_to: the run's episode log; each finished episode is appended at once.
        records: if given, each finished episode's record is also appended to this list (in
            finishing order), e.g. for a trainer that logs training episodes together with
            the advantages the learner gives them.
        phase: recorded with each episode (``"train"``, ``"eval"``, ``"play"``).
        iteration: recorded with each episode.
        first_group_id: group id of ``tasks[0]`` (keeps ids unique across iterations).
        sampling: overrides the agent's sampling settings (e.g. greedy evaluation).
        max_turns: end episodes after this many turns (as truncated) even if the env would
            go on; None leaves the turn limit to the envs.
        stats: if given, counters and timings are added to it.
        progress: show a progress bar (episodes done, success so far, tokens/s); a rich
            ``Progress`` already on screen gets the bar as one more task (removed at the end).
        branch_rule: a branching rollout (module docstring); None plays every episode from the
            reset.

    Returns:
        One trajectory per episode, task-major: ``[task0 x group_size, task1 x group_size, ...]``;
        with a branch rule a group's members are in the order they started (its first
        ``global_samples`` from the reset, then branches and late starts).
    """
    if group_size <= 0:
        raise ValueError(f"group_size must be > 0, got {group_size}")
    n = len(tasks) * group_size
    if n == 0:
        return []
    if len(pool) == 0:
        raise ValueError("collect(): the pool has no slots")
    if len(pool) < n and any(spec != pool.specs[0] for spec in pool.specs):
        raise ValueError(
            f"collect(): {n} episodes need {n} slots of a mixed pool, which has {len(pool)}; "
            "give a pool with one spec per episode or a pool of identical specs"
        )
    stats = stats if stats is not None else RolloutStats()
    start_wall = time.perf_counter()
    start_generate = agent.generate_seconds
    sinks = [sink.append for sink in (log_to, records) if sink is not None]
    recorder = _Recorder(agent, phase, iteration, sinks) if sinks else None
    run = _Run(pool, agent, tasks, group_size, first_group_id=first_group_id, sampling=sampling,
               max_turns=max_turns, stats=stats, recorder=recorder, branch_rule=branch_rule)
    with _progress_bar(progress, f"{phase} episodes", n) as show:
        while run.pending or run.active:
            run.start_waiting()
            if run.active:
                run.play_turn()
                show(run.done, run.successes, run.tokens, time.perf_counter() - start_wall)

    stats.completion_tokens += run.tokens
    stats.generate_seconds += agent.generate_seconds - start_generate
    stats.wall_seconds += time.perf_counter() - start_wall
    out = [t for t in run.results if t is not None]
    assert len(out) == n
    return out


@contextlib.contextmanager
def _progress_bar(progress: bool | Progress, description: str, total: int) -> Iterator[Callable[..., None]]:
    """A bar of finished episodes, success so far and tokens/s; yields its update function.

    A rich ``Progress`` already on screen gets the bar as one more task (removed at the end);
    ``True`` shows a transient bar of its own, ``False`` none.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[success]:.2f}"),
        TextColumn("{task.fields[tps]:.0f} tok/s"),
        TimeElapsedColumn(),
    )
    outer = progress if isinstance(progress, Progress) else None
    bar = outer or Progress(*columns, transient=True, disable=not progress)
    with contextlib.nullcontext() if outer else bar:
        job = bar.add_task(description, total=total, success=0.0, tps=0.0)

        def show(done: int, successes: int, tokens: int, elapsed: float) -> None:
            bar.update(job, completed=done, success=successes / max(done, 1), tps=tokens / max(elapsed, 1e-9))

        yield show
        if outer is not None:
            outer.remove_task(job)


class _Recorder:
    """Builds the episode record of each finished episode and hands it to the sinks."""

    def __init__(self, agent: Agent, phase: str, iteration: int | None,
                 sinks: Sequence[Callable[[EpisodeRecord], Any]]) -> None:
        self.agent, self.phase, self.iteration, self.sinks = agent, phase, iteration, sinks
        self.record_tokens = agent.config.record_tokens

    def __call__(self, ep: _Episode, traj: Trajectory) -> None:
        pieces = None
        if self.record_tokens:
            decode = self.agent.tokenizer.batch_decode
            pieces = [tuple(decode([[i] for i in t.completion_ids])) for t in traj.turns]
        record = episode_record(
            traj,
            agent=self.agent.name,
            phase=self.phase,
            iteration=self.iteration,
            initial_observation=ep.first_observation,
            token_entropies=ep.token_entropies if self.record_tokens else None,
            tokens=pieces,
        )
        for sink in self.sinks:
            sink(record)


class _Run:
    """The scheduling of one :func:`collect` call: episodes wait for a free pool slot, start
    with a reset (a branch then replays its parent's prefix), play one turn per round, and free
    their slot when they end. Episode ``first + member`` of a group plays in slot ``first +
    member`` when the pool has a slot per episode, else in the next free slot."""

    def __init__(self, pool: EnvPool, agent: Agent, tasks: Sequence[Task], group_size: int, *,
                 first_group_id: int, sampling: SamplingParams | None, max_turns: int | None,
                 stats: RolloutStats, recorder: _Recorder | None,
                 branch_rule: BranchRule | None = None) -> None:
        self.pool, self.agent, self.tasks, self.group_size = pool, agent, tasks, group_size
        self.first_group_id, self.sampling, self.max_turns = first_group_id, sampling, max_turns
        self.stats, self.recorder, self.rule = stats, recorder, branch_rule
        self.policy_version = agent.policy_version
        n = len(tasks) * group_size
        self.dedicated = len(pool) >= n
        self.free = deque(range(min(len(pool), n)))
        self.pending: deque[int] = deque()
        self.forks: dict[int, _Fork] = {}
        self.groups = [_Group(task, first_group_id + g, g * group_size, group_size)
                       for g, task in enumerate(tasks)]
        m = group_size if branch_rule is None else branch_rule.global_samples(group_size)
        if not 1 <= m <= group_size:
            raise ValueError(f"branch rule: {m} global samples for a group of {group_size}")
        for group in self.groups:
            self._queue(group, m)
        self.active: list[_Episode] = []
        self.results: list[Trajectory | None] = [None] * n
        self.done = self.successes = self.tokens = 0

    def _queue(self, group: _Group, count: int, fork: _Fork | None = None) -> None:
        """Queue ``count`` new members of ``group`` (branches of one parent when ``fork`` is given)."""
        for _ in range(count):
            index = group.first + group.started
            group.started += 1
            group.live += 1
            if fork is not None:
                self.forks[index] = fork
            self.pending.append(index)

    def finish(self, ep: _Episode) -> None:
        traj = _trajectory(ep, self.pool.specs[ep.slot], self.policy_version)
        self.results[ep.index] = traj
        if not self.dedicated:
            self.free.append(ep.slot)
        self.done += 1
        self.successes += traj.won
        self.stats.add_episode(traj)
        if self.recorder is not None:
            self.recorder(ep, traj)
        group = self.groups[ep.index // self.group_size]
        group.live -= 1
        if group.live == 0 and group.left:  # nothing left to fork from: the rest start from the reset
            self._queue(group, group.left)

    def start_waiting(self) -> None:
        """Reset the envs of waiting episodes that have a free slot; branches replay their prefix."""
        starting = []
        while self.pending and (self.dedicated or self.free):
            i = self.pending.popleft()
            starting.append((i, i if self.dedicated else self.free.popleft()))
        if not starting:
            return
        slots = [slot for _, slot in starting]
        chosen = [self.groups[i // self.group_size].task for i, _ in starting]
        t0 = time.perf_counter()
        resets = self.pool.reset(slots, [t.seed for t in chosen], [dict(t.options) for t in chosen])
        self.stats.env_seconds += time.perf_counter() - t0
        started = []
        for (i, slot), task, r in zip(starting, chosen, resets, strict=True):
            fork = self.forks.pop(i, None)
            if fork is None:
                memory = self.agent.start(_family(self.pool.specs[slot].env_id), str(r.info.get("task", "")))
            else:
                memory = copy.deepcopy(fork.memory)
            ep = _Episode(
                index=i,
                task=task,
                group_id=self.first_group_id + i // self.group_size,
                slot=slot,
                memory=memory,
                observation=r.observation,
                info=r.info,
                first_observation=r.observation,
                failure=r.failure,
            )
            if fork is not None:
                ep.parent_id, ep.fork_turn = fork.parent_id, len(fork.turns)
                ep.train_from = ep.fork_turn if self.rule is not None and self.rule.prefix_once else 0
                ep.turns, ep.token_entropies = list(fork.turns), list(fork.token_entropies)
                ep.step_entropies = list(fork.step_entropies)
                if not ep.failure and r.observation != fork.turns[0].observation:
                    ep.failure = "branch replay diverged: the reset observation differs from the parent's"
            started.append((ep, fork))
        self._replay([(ep, fork) for ep, fork in started if fork is not None and not ep.failure])
        for ep, _ in started:
            if ep.failure:
                self.finish(ep)
            else:
                self.active.append(ep)

    def _replay(self, branches: Sequence[tuple[_Episode, _Fork]]) -> None:
        """Step each branch's env with its parent's prefix actions, all branches a step at a
        time; each step must give the parent's reward and next observation (else the branch
        fails), and none may end the episode."""
        for t in range(max((ep.fork_turn for ep, _ in branches), default=0)):
            going = [(ep, fork) for ep, fork in branches if t < ep.fork_turn and not ep.failure]
            if not going:
                return
            t0 = time.perf_counter()
            outcomes = self.pool.step([ep.slot for ep, _ in going], [ep.turns[t].action for ep, _ in going])
            self.stats.env_seconds += time.perf_counter() - t0
            for (ep, fork), r in zip(going, outcomes, strict=True):
                turn = ep.turns[t]
                expected = ep.turns[t + 1].observation if t + 1 < ep.fork_turn else fork.observation
                if r.failure:
                    ep.failure = r.failure
                elif (r.terminated or r.truncated or r.observation != expected
                      or abs(r.reward - turn.reward) > 1e-9):
                    ep.failure = f"branch replay diverged at turn {t}: the env did not repeat the step"
                else:
                    ep.observation, ep.info = r.observation, r.info

    def _branch(self, active: Sequence[_Episode], steps: Sequence[AgentStep]) -> None:
        """The branch rule's decisions for this round's generations, before the env steps.

        An episode at turn t may fork branches that share its turns ``[:t]`` and sample turn t
        again, unless t is its first turn (0, or a branch's own first turn: its fork already
        re-sampled that state). ``consecutive`` counts a group's rounds in a row with a fork
        (ARLArena's per-question counter, docs/algorithms.md section 14.6).
        """
        assert self.rule is not None
        forked: dict[int, bool] = {}  # group index -> forked this round, for the groups that played
        for ep, step in zip(active, steps, strict=True):
            gen = step.generation
            ep.step_entropies.append(None if gen.failure else self.rule.step_entropy(gen))
            g = ep.index // self.group_size
            group = self.groups[g]
            forked.setdefault(g, False)
            turn, first, now = len(ep.turns), ep.step_entropies[0], ep.step_entropies[-1]
            if turn <= ep.fork_turn or first is None or now is None or not group.left:
                continue
            key = (ep.task.seed or 0, group.group_id, ep.index - group.first, turn)
            n = self.rule.forks(key=key, delta_entropy=now - first, consecutive=group.consecutive,
                                budget_left=group.left)
            if n:
                fork = _Fork(ep.episode_id, tuple(ep.turns), tuple(ep.token_entropies),
                             tuple(ep.step_entropies[:turn]), copy.deepcopy(ep.memory), ep.observation)
                self._queue(group, min(n, group.left), fork)
                forked[g] = True
        for g, yes in forked.items():
            self.groups[g].consecutive = self.groups[g].consecutive + 1 if yes else 0

    def play_turn(self) -> None:
        """One turn for every active episode: generate in one batch, (branch,) step the envs."""
        active = self.active
        steps = self.agent.act(
            [ep.memory for ep in active], [ep.observation for ep in active], [ep.info for ep in active],
            self.sampling,
        )
        if self.rule is not None:
            self._branch(active, steps)
        t0 = time.perf_counter()
        outcomes = self.pool.step([ep.slot for ep in active], [s.parsed.action for s in steps])
        self.stats.env_seconds += time.perf_counter() - t0

        still = []
        for ep, step, r in zip(active, steps, outcomes, strict=True):
            self.tokens += len(step.generation.token_ids)
            # A generation that failed (a server error) ends its episode too; its env step
            # above only sent the empty action parsed from no text.
            if r.failure or step.generation.failure:
                ep.failure = step.generation.failure or r.failure
                self.finish(ep)
                continue
            capped = self.max_turns is not None and len(ep.turns) + 1 >= self.max_turns
            ep.turns.append(_turn(ep, step, r, capped))
            ep.token_entropies.append(step.generation.entropies)
            self.agent.record(ep.memory, step, ep.observation)
            ep.observation, ep.info = r.observation, r.info
            if r.terminated or r.truncated or capped:
                self.finish(ep)
            else:
                still.append(ep)
        self.active = still
