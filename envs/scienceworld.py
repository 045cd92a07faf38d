"""ScienceWorld (``agentropy/ScienceWorld-v0``): 30 elementary-science tasks in a simulated house.

ScienceWorld (Wang et al., 2022, "ScienceWorld: Is your Agent Smarter than a 5th Grader?") runs
in a JVM behind py4j. Its Python class is not a Gymnasium env, and its ``step()`` asks the engine
for the room description, the inventory, the task text and *every* valid action after each
command, which makes it several times slower than the engine itself. :class:`ScienceWorldEnv`
talks to the engine's server object directly and asks only for what the contract needs:

* each step: the command's answer, the score and the completion flag (three engine calls);
* the valid actions only with ``admissible_commands=True`` (15-1000 ms per step, and hundreds of
  commands). Without it ``info["admissible_commands"]`` is ``[]``.

Either way, **validity is the engine's own answer** (``"No known action matches that input."``
and ``"Unknown action."`` are invalid turns): the engine's valid-action list names each action
one way, while its parser accepts many phrasings, and the gold paths themselves use phrasings
outside that list (``open door to kitchen``), so membership in the list cannot be the test.
``reset task`` (an engine meta-command that clears the goal progress) is refused; a new episode
is ``reset()``'s job.

Tasks and splits: a task of a split is a (task name, variation) pair; the split's tasks are the
package's own train / dev / test variations of every selected task name, in order. Task ids read
``science/<task name>/<split>/<variation>``. The score (0..100 in the package) is normalised to
0..1; the per-step reward is the difference of the normalised score. A negative engine score
means the task failed (e.g. focusing on the wrong object): that is ``lost``, the normalised
score is then 0, and the episode terminates. ``won`` is the engine's completion flag (the gold
paths reach it with the full score).

The engine's ambiguity dialog is kept: an ambiguous command (``open door`` with several doors)
answers with a numbered list and the next command must be one of the numbers (the gold paths
use it; anything else cancels the dialog and is an invalid turn). With ``admissible_commands``
on, the numbers are then the admissible commands.

Cost: the JVM starts in about 2 s and holds about 400 MB with the default 512 MB heap cap.
Loading a variation takes 0.1-1.5 s; generating its gold path takes up to 40 s (the genetics
tasks), so gold paths are cached on disk (see :mod:`agentropy.envs.cache`), as are the variation splits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.envs.cache import default_cache_dir, read_json, write_json_atomic
from agentropy.envs.core import EngineState, TextEnv
from agentropy.envs.jvm import engine_calls, quiet_py4j, stop_jvm

__all__ = ["SCIENCE_TASKS", "SIMPLIFICATIONS", "ScienceWorldEnv"]


def _task_names() -> tuple[str, ...]:
    from scienceworld.constants import ID2TASK
    from scienceworld.utils import infer_task

    return tuple(sorted(infer_task(name) for name in ID2TASK.values()))


#: The 30 task names, in the engine's (alphabetical) order.
SCIENCE_TASKS: tuple[str, ...] = _task_names()
#: Simplifications the engine offers; ``"easy"`` means all of them (minus the electrical one on
#: electrical tasks).
SIMPLIFICATIONS: tuple[str, ...] = (
    "easy", "teleportAction", "selfWateringFlowerPots", "openContainers", "openDoors",
    "noElectricalAction",
)

_NO_MATCH = "No known action matches that input."
_INVALID_ANSWERS = (_NO_MATCH, "Unknown action.")
_AMBIGUOUS = "Ambiguous request:"
_REFUSED = {
    "reset task": "'reset task' clears the task's progress; call reset() to start a new episode",
}


#: The engine keeps the objects of a room, a container or the inventory in Scala hash sets of
#: objects without their own ``hashCode`` (``language.struct.EnvObject``), so the order in which
#: it lists them (and numbers them in its ambiguity dialog) follows the JVM's identity hashes.
#: HotSpot draws those from a per-thread generator seeded by the order in which its threads
#: start, which varies between processes: two runs of the same seeded episode could list the
#: objects of a room in different orders. A constant identity hash (HotSpot's ``hashCode=2``)
#: makes every such set iterate in insertion order, the same in every process.
DETERMINISTIC_JVM_OPTIONS = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")


def _package_version() -> str:
    from importlib.metadata import version

    return version("scienceworld")


def _canonical_simplification(text: str) -> str:
    parts = sorted({p.strip() for p in text.split(",") if p.strip()})
    unknown = [p for p in parts if p not in SIMPLIFICATIONS]
    if unknown:
        raise ValueError(
            f"unknown ScienceWorld simplification(s) {unknown}; known: {', '.join(SIMPLIFICATIONS)}"
        )
    return ",".join(parts)


def _select_tasks(tasks: str | Sequence[str] | None) -> tuple[str, ...]:
    from scienceworld.utils import infer_task

    if tasks is None:
        return SCIENCE_TASKS
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    if not names:
        raise ValueError("tasks must name at least one ScienceWorld task (or be None for all)")
    selected: list[str] = []
    for name in names:
        task = infer_task(str(name))
        if task not in SCIENCE_TASKS:
            raise ValueError(f"unknown ScienceWorld task {name!r}; known: {', '.join(SCIENCE_TASKS)}")
        if task not in selected:
            selected.append(task)
    return tuple(selected)


def _ambiguity_choices(observation: str) -> tuple[str, ...]:
    """The numbers an ambiguity prompt offers (``"0:\\topen door ..."`` lines)."""
    choices = []
    for line in observation.splitlines()[1:]:
        number, sep, _ = line.partition(":")
        if sep and number.strip().isdigit():
            choices.append(number.strip())
    return tuple(choices)


class _Engine:
    """One ScienceWorld JVM and its server object, with the heap capped."""

    def __init__(self, heap_mb: int) -> None:
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from scienceworld.constants import BASEPATH, JAR_PATH

        quiet_py4j()
        port, proc = launch_gateway(
            classpath=JAR_PATH, die_on_exit=True, cwd=BASEPATH,
            javaopts=[f"-Xmx{heap_mb}m", *DETERMINISTIC_JVM_OPTIONS], return_proc=True,
        )
        self.process: subprocess.Popen = proc
        try:
            self.gateway = JavaGateway(
                gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc
            )
            self.server = self.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
        except Exception:
            stop_jvm(proc)
            raise

    def calls(self) -> contextlib.AbstractContextManager[None]:
        """Wrap calls into the engine: a dead JVM raises :class:`JVMExited` saying so."""
        return engine_calls(self.process, "ScienceWorld")

    def load(self, task: str, variation: int, simplification: str, gold: bool) -> None:
        error = self.server.load(task, variation, simplification, gold)
        if error:
            raise RuntimeError(f"ScienceWorld could not load {task} variation {variation}: {error}")

    def close(self) -> None:
        if self.process.poll() is None:  # a dead JVM cannot be asked to shut down
            with contextlib.suppress(Exception):
                self.gateway.shutdown()
        else:
            with contextlib.suppress(Exception):
                self.gateway.close()
        stop_jvm(self.process)


class ScienceWorldEnv(TextEnv):
    """ScienceWorld as a Gymnasium text environment.

    Args:
        tasks: one task name, a sequence of names, or ``None`` for all 30 (:data:`SCIENCE_TASKS`).
            The package's other spellings work too (``"1-1"``, ``"Matter Changes of State
            (Boiling)"``).
        split: ``"train"``, ``"dev"`` or ``"test"``: the package's variation splits.
        simplification: the engine's simplification string, e.g. ``"easy"`` or
            ``"openDoors,teleportAction"`` (``""``: none).
        admissible_commands: ask the engine for the valid actions after every step (slow; see the
            module docstring). Off: ``info["admissible_commands"]`` is ``[]``.
        expert: give ``info["expert_action"]``, the next command of the package's gold path while
            the agent follows it (``None`` once it has left it). The first reset of a variation
            computes its gold path (up to 40 s); it is cached on disk.
        variations_per_task: keep only the first ``k`` variations of each task in the split, so a
            multi-task split is not dominated by the tasks with a thousand variations.
        jvm_heap_mb: the JVM's ``-Xmx``; the default keeps the JVM near 400 MB resident.
        cache_dir: where gold paths and variation splits are cached (see :mod:`agentropy.envs.cache`).
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "science"
    splits = ("train", "dev", "test")
    engine_packages = ("scienceworld",)
    has_expert = True
    rerun_kwargs = frozenset({
        "tasks", "split", "simplification", "admissible_commands", "expert", "variations_per_task",
        "jvm_heap_mb",
    })

    def __init__(
        self,
        tasks: str | Sequence[str] | None = None,
        split: str = "train",
        simplification: str = "",
        admissible_commands: bool = False,
        expert: bool = True,
        variations_per_task: int | None = None,
        jvm_heap_mb: int = 512,
        cache_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=True, render_mode=render_mode)
        if variations_per_task is not None and variations_per_task < 1:
            raise ValueError(f"variations_per_task must be >= 1, got {variations_per_task}")
        self.task_names = _select_tasks(tasks)
        self.simplification = _canonical_simplification(simplification)
        self.fetch_admissible = admissible_commands
        self.expert = expert
        self.cache_dir = (
            Path(cache_dir) if cache_dir is not None else default_cache_dir("science")
        ) / _package_version()
        self._engine: _Engine | None = _Engine(jvm_heap_mb)
        try:
            #: The split's tasks: (task name, variation) pairs; ``options={"task": i}`` plays
            #: pair ``i``.
            self.task_list: tuple[tuple[str, int], ...] = tuple(
                (task, v)
                for task in self.task_names
                for v in self.variation_splits(task)[split][:variations_per_task]
            )
        except Exception:
            self._engine_close()
            raise
        self._gold: tuple[str, ...] = ()
        self._gold_pos = 0
        self._on_gold_path = False
        self._pristine: tuple[str, int] | None = None  # the loaded variation, before any command

    # ------------------------------------------------------------------ caches
    def variation_splits(self, task: str) -> dict[str, list[int]]:
        """The package's train / dev / test variations of ``task`` (cached on disk)."""
        path = self.cache_dir / "variations" / f"{task}.json"
        splits = read_json(path)
        if not (isinstance(splits, dict) and set(splits) == set(self.splits)):
            assert self._engine is not None
            self._engine.load(task, 0, "", False)
            server = self._engine.server
            splits = {
                "train": [int(v) for v in server.getVariationsTrain()],
                "dev": [int(v) for v in server.getVariationsDev()],
                "test": [int(v) for v in server.getVariationsTest()],
            }
            write_json_atomic(path, splits)
        return splits

    def _load(self, task: str, variation: int) -> tuple[str, ...]:
        """Load a variation; return its gold path (``()`` without the expert)."""
        assert self._engine is not None
        if not self.expert:
            self._engine.load(task, variation, self.simplification, False)
            return ()
        name = (self.simplification.replace(",", "+") or "none") + f"-{variation}.json"
        path = self.cache_dir / "gold" / task / name
        gold = read_json(path)
        if isinstance(gold, list) and gold and all(isinstance(a, str) for a in gold):
            self._engine.load(task, variation, self.simplification, False)
            return tuple(gold)
        # Generating the gold path plays it inside the engine; the loaded game is fresh after.
        self._engine.load(task, variation, self.simplification, True)
        gold = [str(a) for a in self._engine.server.getGoldActionSequence()]
        write_json_atomic(path, gold)
        return tuple(gold)

    # ------------------------------------------------------------------ engine interface
    def _engine_num_tasks(self) -> int:
        return len(self.task_list)

    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        assert self._engine is not None
        with self._engine.calls():
            task, variation = self.task_list[index]
            if self._pristine != (task, variation):  # else the loaded game is untouched: keep it
                self._gold = self._load(task, variation)
                self._pristine = (task, variation)
            self._gold_pos = 0
            self._on_gold_path = self.expert
            # The first observation is the room, as the package gives it ("look around" is free).
            observation = self._engine.server.step("look around")
            description = self._engine.server.getTaskDescription()
            task_id = f"science/{task}/{self.split}/{variation}"
            return description, task_id, self._state_from(observation)

    def _engine_step(self, command: str) -> EngineState:
        assert self._engine is not None and self._state is not None
        with self._engine.calls():
            previous = self._state
            expected = previous.expert_action
            self._on_gold_path = (
                self._on_gold_path and expected is not None and command.lower() == expected.lower()
            )
            self._gold_pos += 1
            self._pristine = None
            observation = self._engine.server.step(command)
            if observation == _NO_MATCH and previous.admissible:
                # Nothing happened (not even a tick): the valid actions are the same as before.
                return dataclasses.replace(
                    self._state_from(observation, fetch=False), admissible=previous.admissible
                )
            return self._state_from(observation)

    def _state_from(self, observation: str, fetch: bool = True) -> EngineState:
        assert self._engine is not None
        server = self._engine.server
        raw_score = float(server.getScore())
        lost = raw_score < 0
        won = bool(server.getCompleted()) and not lost
        # The package reports round(100 * score); keep its numbers, scaled to 0..1.
        score = 0.0 if lost else min(round(100 * raw_score), 100) / 100
        invalid = observation.startswith(_INVALID_ANSWERS)
        admissible: tuple[str, ...] = ()
        if self.fetch_admissible and fetch:
            if observation.startswith(_AMBIGUOUS):
                admissible = _ambiguity_choices(observation)
            else:
                # One JSON answer instead of a py4j list proxy (one round trip per element).
                answer = json.loads(server.getValidActionObjectCombinationsJSON())
                valid = {str(a["action"]) for a in answer["validActions"]}
                admissible = tuple(sorted(valid - set(_REFUSED)))
        expert = None
        if self._on_gold_path and self._gold_pos < len(self._gold) and not (won or lost):
            expert = self._gold[self._gold_pos]
        return EngineState(
            observation=observation,
            score=score,
            won=won,
            lost=lost,
            admissible=admissible,
            valid=not invalid,
            invalid_reason="the engine did not understand the command" if invalid else "",
            expert_action=expert,
        )

    def _refusal(self, command: str) -> str:
        return _REFUSED.get(command, "")

    def _is_admissible(self, command: str, admissible: Sequence[str]) -> bool:
        # The engine judges validity (see the module docstring); its answer marks the turn.
        return True

    def _engine_close(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.close()
