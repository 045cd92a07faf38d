"""From a completion's text to the command sent to the environment, with a verdict on its format.

The agent must answer ``<think>reasoning</think><action>one command</action>`` (the format of the
verl-agent multi-turn recipes, docs/algorithms.md section 0). :func:`parse_completion` extracts the
command and marks the turn invalid when the format is broken:

* no ``<action>`` tags, or an opening tag without its closing tag (or the reverse);
* nested ``<action>`` tags, or more than one ``<action>`` block (exactly one command per turn);
* an empty action;
* with ``require_think``: no single ``<think>...</think>`` pair before the action.

Tags are matched case-insensitively; the command itself is passed on as written (the env
normalises case). What an invalid turn sends to the env is configurable (``invalid_action``):
``tail`` sends the command that could still be extracted (the first complete, un-nested block),
else the last ``invalid_tail_chars`` characters of the text, as verl-agent does (the env then
usually answers that nothing happens); ``empty`` sends nothing, so the env answers with its
invalid-action feedback. Either way the turn uses up a step and counts as invalid.

This verdict is about the format only. The env judges the command (``info["action_is_valid"]``);
the rollout collector marks a turn invalid when either says so and records both reasons.

Example:
    >>> from agentropy.configs.schema import AgentConfig
    >>> parse_completion("<think>coin here</think><action>take coin</action>", AgentConfig())
    ParsedAction(action='take coin', valid=True, reason='', thought='coin here')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentropy.configs.schema import AgentConfig

__all__ = ["ParsedAction", "format_completion", "parse_completion"]

_ACTION_TAG = re.compile(r"</?action>", re.IGNORECASE)
_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
#: A complete action block whose content has no action tag in it.
_ACTION_BLOCK = re.compile(r"<action>((?:(?!</?action>).)*)</action>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ParsedAction:
    """The outcome of parsing one completion.

    Attributes:
        action: what is sent to the env.
        valid: the completion has the required format.
        reason: why not ("" when valid).
        thought: the text inside ``<think>...</think>`` ("" if there is none).
    """

    action: str
    valid: bool
    reason: str
    thought: str = ""


def format_completion(action: str, thought: str = "") -> str:
    """The completion text that :func:`parse_completion` reads back as ``action`` (valid)."""
    return f"<think>{thought}</think><action>{action}</action>"


def _action_format_problem(tags: list[re.Match[str]]) -> str:
    """Why the sequence of ``<action>``/``</action>`` tags is not exactly one block, or ""."""
    if not tags:
        return "no <action>...</action> tags"
    opening = [m.group().lower() == "<action>" for m in tags]
    depth = 0
    for is_open in opening:
        depth += 1 if is_open else -1
        if depth > 1:
            return "nested <action> tags"
        if depth < 0:
            return "</action> without a preceding <action>"
    if depth != 0:
        return "<action> is not closed"
    blocks = sum(opening)
    if blocks > 1:
        return f"{blocks} <action> blocks; exactly one is expected"
    return ""


def _think(text: str, action_start: int) -> tuple[str, str]:
    """(thought, problem): the single think block before ``action_start``, or why there is none."""
    tags = list(_THINK_TAG.finditer(text))
    kinds = [m.group().lower() for m in tags]
    if kinds != ["<think>", "</think>"]:
        if not tags:
            return "", "no <think>...</think> before the action"
        return "", "malformed <think> tags (exactly one <think>...</think> is expected)"
    if tags[1].end() > action_start:
        return "", "<think>...</think> must come before the action"
    return text[tags[0].end() : tags[1].start()].strip(), ""


def parse_completion(text: str, config: AgentConfig) -> ParsedAction:
    """Extract the command from a completion and judge its format.

    Args:
        text: the completion, decoded without special tokens.
        config: uses ``require_think``, ``invalid_action`` and ``invalid_tail_chars``.

    Returns:
        The command to send, whether the format was valid, and why not.
    """
    tags = list(_ACTION_TAG.finditer(text))
    problem = _action_format_problem(tags)
    block = _ACTION_BLOCK.search(text)
    candidate = block.group(1).strip() if block else ""
    if not problem and not candidate:
        problem = "the action is empty"

    thought = ""
    if not problem or block is not None:
        thought, think_problem = _think(text, block.start() if block else len(text))
        if config.require_think and not problem:
            problem = think_problem

    if not problem:
        return ParsedAction(action=candidate, valid=True, reason="", thought=thought)
    if config.invalid_action == "empty":
        sent = ""
    else:
        sent = candidate or text[-config.invalid_tail_chars :].strip()
    return ParsedAction(action=sent, valid=False, reason=problem, thought=thought)
