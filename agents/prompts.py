"""Prompts: environment text in, chat-template token ids out.

Two modes (``agent.prompt_mode``):

``step`` (default; the design of the published multi-turn results, docs/algorithms.md section 0)
    Every turn gets a freshly built prompt: a system message for the env family (the setting,
    one line of advice, the answer format) and one user message with the task, the last
    ``history_length`` (observation, action) pairs, the current observation and the admissible
    actions. The history holds the *commands sent*, not the reasoning. When the prompt has more
    than ``max_prompt_tokens`` tokens, history pairs are dropped from the oldest until it fits;
    an observation is never cut. ``history_observation=first_sentence`` shows each history
    observation by its first sentence only ("You are in the kitchen."), which docs/learning.md section 2 found
    to halve prompt length on TextWorldExpress.

``conversation``
    The episode is one growing chat: the system message carries the task, every turn appends a
    user message (observation and admissible actions) and the assistant's reply. The reply is
    the exact token ids that were sampled, and the next prompt is built by appending token ids
    (``prompt + completion + closing and next user message``), never by decoding and
    re-tokenizing. Over ``max_prompt_tokens``, whole (user, assistant) turns are dropped from the
    oldest; the system message and the current turn always stay. ``history_length`` does not
    apply in this mode.

A prompt that does not fit even without history is kept whole (it is marked ``overflow`` and a
warning is logged once): losing part of an observation would silently change the task.

The family templates are written for this project; :data:`TEMPLATES` has one per env family
(``agentropy.envs.env_class(env_id).family``) and :data:`GENERIC` covers the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentropy.configs.schema import AgentConfig
from transformers import PreTrainedTokenizerBase

__all__ = [
    "GENERIC",
    "observation_text",
    "scaffold_texts",
    "step_user_text",
    "system_text",
    "TEMPLATES",
    "EpisodeMemory",
    "FamilyTemplate",
    "Prompt",
    "PromptBuilder",
    "first_sentence",
    "template_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FamilyTemplate:
    """The fixed text of one env family's prompts.

    Attributes:
        family: the env family name (``TextEnv.family``).
        setting: who the agent is and where, one sentence.
        advice: what usually works in this family, one or two short sentences.
    """

    family: str
    setting: str
    advice: str


TEMPLATES: dict[str, FamilyTemplate] = {
    t.family: t
    for t in (
        FamilyTemplate(
            "twx",
            "You play a text game of rooms and objects.",
            "Explore room by room and do what the task asks.",
        ),
        FamilyTemplate(
            "textworld",
            "You play a TextWorld text adventure.",
            "Examine and open things, take what the quest needs, then use it.",
        ),
        FamilyTemplate(
            "science",
            "You do a science task in ScienceWorld, a simulated house with devices, substances and "
            "living things.",
            "Find what the task names, focus only on the object it asks for (a wrong focus ends the "
            "task), and use devices to change things.",
        ),
        FamilyTemplate(
            "household",
            "You do a household chore in a simulated home.",
            "Search receptacles for the object, open closed ones, then clean, heat, cool or use it "
            "and put it where the task says.",
        ),
        FamilyTemplate(
            "shop",
            "You shop on a web store for a product that matches an instruction.",
            "Search with a few key words, open products that fit, choose the options the instruction "
            "asks for, and buy when everything matches.",
        ),
    )
}

GENERIC = FamilyTemplate(
    "generic",
    "You act in a text environment.",
    "Choose the action that best advances the task.",
)


def template_for(family: str) -> FamilyTemplate:
    """The family's template, or :data:`GENERIC` for a family without one."""
    return TEMPLATES.get(family, GENERIC)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")


def first_sentence(text: str) -> str:
    """The first sentence (or line) of ``text``, stripped; the whole text if it has one."""
    text = text.strip()
    match = _SENTENCE_END.search(text)
    return text[: match.start()].strip() if match else text


def system_text(family: str, config: AgentConfig) -> str:
    """The system message: the family's setting and advice, and the answer format."""
    t = template_for(family)
    action = "<action>one admissible action</action>"
    if config.require_think:
        answer = f"Answer with <think>brief reasoning</think> then {action}."
    else:
        answer = f"Answer with {action}, optionally after <think>...</think>."
    return f"{t.setting} {t.advice}\n{answer}"


def observation_text(observation: str, admissible: Sequence[str], config: AgentConfig) -> str:
    """The current observation and the admissible actions (at most ``max_admissible_actions``)."""
    text = f"Observation:\n{observation.strip()}"
    if admissible:
        cap = config.max_admissible_actions
        shown = list(admissible[:cap]) if cap else list(admissible)
        text += "\nAdmissible actions:\n" + "\n".join(shown)
        if len(shown) < len(admissible):
            text += f"\n(and {len(admissible) - len(shown)} more)"
    return text


def step_user_text(
    task: str,
    history: Sequence[tuple[str, str]],
    observation: str,
    admissible: Sequence[str],
    k: int,
    config: AgentConfig,
) -> str:
    """The step-mode user message: task, the last ``k`` (observation, action) pairs, now."""
    lines = [f"Task: {task.strip()}"]
    n = len(history)
    if k:
        lines.append(f"Your last {k} of {n} steps:")
        short = config.history_observation == "first_sentence"
        for step in range(n - k, n):
            obs, action = history[step]
            lines.append(f"Step {step + 1} observation: {first_sentence(obs) if short else obs.strip()}")
            lines.append(f"Step {step + 1} action: {action}")
    lines.append(f"Step {n + 1}. {observation_text(observation, admissible, config)}")
    return "\n".join(lines)


def scaffold_texts() -> list[str]:
    """The fixed wording of the prompts (every family, both answer formats, 50 steps).

    :func:`agentropy.agents.tiny.make_model` adds these texts to the tokenizer's training corpus, so that
    the prompt's own words ("Admissible actions:", "Step 3 observation:") are single tokens and
    prompts stay short on CPU, where prompt length decides compute (docs/learning.md section 2).
    """
    texts = []
    for think in (True, False):
        config = AgentConfig(require_think=think)
        texts += [system_text(family, config) for family in (*TEMPLATES, GENERIC.family)]
    config = AgentConfig(max_admissible_actions=2)
    history = [("You are in the kitchen.", "look around")] * 50
    actions = ["take coin", "look around", "inventory"]
    for n in range(50):
        texts.append(step_user_text("Find the coin.", history[:n], "A coin.", actions, min(n, 2), config))
    return texts


@dataclass(frozen=True)
class Prompt:
    """One rendered prompt.

    Attributes:
        ids: chat-template token ids, ending with the assistant header.
        text: the decoded ids (for the episode record).
        history_shown: past turns included (step mode: pairs; conversation: chat turns).
        overflow: longer than ``max_prompt_tokens`` even without any history.
        messages: the chat messages the ids render (step mode; empty in conversation mode).
    """

    ids: tuple[int, ...]
    text: str
    history_shown: int
    overflow: bool = False
    messages: tuple[dict[str, str], ...] = ()


@dataclass
class EpisodeMemory:
    """What one episode's prompts are built from; updated by :meth:`PromptBuilder.record`.

    Attributes:
        family: the env family (selects the template).
        task: the task description.
        history: (observation, command sent) per past turn.
        system_ids: conversation mode: the token ids of the system message.
        turn_ids: conversation mode: per past turn, the ids of its user message and the
            assistant's reply (the sampled ids plus the template's closing ids).
    """

    family: str
    task: str
    history: list[tuple[str, str]] = field(default_factory=list)
    system_ids: tuple[int, ...] = ()
    turn_ids: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def turns(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class _ChatPieces:
    """The chat template cut at message boundaries (conversation mode)."""

    user_prefix: str
    user_suffix: str  # includes the assistant header of the generation prompt
    assistant_close: str  # what follows an assistant message's content


class PromptBuilder:
    """Renders prompts for every family with one tokenizer and one agent config.

    Args:
        tokenizer: a tokenizer with a chat template.
        config: uses ``prompt_mode``, ``history_length``, ``history_observation``,
            ``max_admissible_actions``, ``max_prompt_tokens`` and ``require_think``.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: AgentConfig) -> None:
        if tokenizer.chat_template is None:
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.config = config
        self._warned_overflow = False
        self._pieces = self._cut_template() if config.prompt_mode == "conversation" else None

    # ------------------------------------------------------------------ text
    def system_text(self, family: str) -> str:
        return system_text(family, self.config)

    def user_text(self, memory: EpisodeMemory, observation: str, admissible: Sequence[str], k: int) -> str:
        """The step-mode user message with the last ``k`` history pairs."""
        return step_user_text(memory.task, memory.history, observation, admissible, k, self.config)

    # ------------------------------------------------------------------ episodes
    def start(self, family: str, task: str) -> EpisodeMemory:
        """A fresh memory for an episode of ``family`` with this task."""
        memory = EpisodeMemory(family=family, task=task)
        if self._pieces is not None:
            text = self.system_text(family) + f"\nTask: {task.strip()}"
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": text}], tokenize=False
            )
            memory.system_ids = self._encode(rendered)
        return memory

    def build(self, memory: EpisodeMemory, observation: str, admissible: Sequence[str]) -> Prompt:
        """The prompt for the current turn."""
        if self._pieces is not None:
            return self._build_conversation(memory, observation, admissible)
        return self._build_step(memory, observation, admissible)

    def record(
        self,
        memory: EpisodeMemory,
        prompt: Prompt,
        observation: str,
        action: str,
        completion_ids: Sequence[int],
    ) -> None:
        """Add the finished turn (what was observed, sent and sampled) to the memory."""
        memory.history.append((observation, action))
        if self._pieces is not None:
            shown = memory.turn_ids[len(memory.turn_ids) - prompt.history_shown :]
            user = prompt.ids[len(memory.system_ids) + sum(map(len, shown)) :]
            memory.turn_ids.append(tuple(user) + tuple(completion_ids) + self._close_ids(completion_ids))

    # ------------------------------------------------------------------ step mode
    def _build_step(self, memory: EpisodeMemory, observation: str, admissible: Sequence[str]) -> Prompt:
        system = self.system_text(memory.family)
        k = min(self.config.history_length, memory.turns)
        while True:
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": self.user_text(memory, observation, admissible, k)},
            ]
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if len(ids) <= self.config.max_prompt_tokens or k == 0:
                break
            k -= 1
        return dataclasses.replace(self._prompt(ids, k), messages=tuple(messages))

    # ------------------------------------------------------------------ conversation mode
    def _cut_template(self) -> _ChatPieces:
        """Find the text the chat template puts around user and assistant messages.

        Raises:
            ValueError: the template is not append-only (it rewrites earlier messages, as
                reasoning templates that strip old thoughts do), so conversation mode cannot
                extend token ids turn by turn.
        """
        def render(*turns: tuple[str, str], generation: bool = False) -> str:
            messages = [{"role": role, "content": content} for role, content in turns]
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=generation, tokenize=False
            )

        system, u1, a1, u2 = ("system", "S"), "\x01U1\x01", "\x01A1\x01", "\x01U2\x01"
        base = render(system)
        with_user = render(system, ("user", u1), generation=True)
        with_reply = render(system, ("user", u1), ("assistant", a1))
        next_user = render(system, ("user", u1), ("assistant", a1), ("user", u2), generation=True)
        if not (
            with_user.startswith(base)
            and with_reply.startswith(with_user + a1)
            and next_user.startswith(with_reply)
        ):
            raise ValueError(
                "prompt_mode=conversation needs a chat template that only appends to earlier turns"
            )
        user_prefix, _, user_suffix = with_user[len(base) :].partition(u1)
        assistant_close = with_reply[len(with_user) + len(a1) :]
        if next_user[len(with_reply) :] != user_prefix + u2 + user_suffix:
            raise ValueError(
                "prompt_mode=conversation: the chat template renders later user turns differently"
            )
        return _ChatPieces(user_prefix, user_suffix, assistant_close)

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _close_ids(self, completion_ids: Sequence[int]) -> tuple[int, ...]:
        assert self._pieces is not None
        close = self._pieces.assistant_close
        eos = self.tokenizer.eos_token
        if completion_ids and completion_ids[-1] == self.tokenizer.eos_token_id and close.startswith(eos):
            close = close[len(eos) :]
        return self._encode(close) if close else ()

    def _build_conversation(
        self, memory: EpisodeMemory, observation: str, admissible: Sequence[str]
    ) -> Prompt:
        assert self._pieces is not None
        content = observation_text(observation, admissible, self.config)
        user = self._encode(self._pieces.user_prefix + content + self._pieces.user_suffix)
        budget = self.config.max_prompt_tokens - len(memory.system_ids) - len(user)
        k, used = 0, 0
        for turn in reversed(memory.turn_ids):
            if used + len(turn) > budget:
                break
            k, used = k + 1, used + len(turn)
        past = [t for turn in memory.turn_ids[len(memory.turn_ids) - k :] for t in turn]
        return self._prompt([*memory.system_ids, *past, *user], k)

    # ------------------------------------------------------------------ shared
    def _prompt(self, ids: Sequence[int], k: int) -> Prompt:
        overflow = len(ids) > self.config.max_prompt_tokens
        if overflow and not self._warned_overflow:
            self._warned_overflow = True
            log.warning(
                "a prompt has %d tokens without history, more than max_prompt_tokens=%d; it is kept "
                "whole (raise agent.max_prompt_tokens or cap agent.max_admissible_actions)",
                len(ids), self.config.max_prompt_tokens,
            )
        return Prompt(ids=tuple(ids), text=self.tokenizer.decode(ids), history_shown=k, overflow=overflow)
