"""Parsing completions: good, missing, nested and repeated tags, and what an invalid turn sends."""

from __future__ import annotations

import pytest
from agentropy.agents.parsing import format_completion, parse_completion
from agentropy.configs.schema import AgentConfig

STRICT = AgentConfig()  # require_think, invalid_action="tail", 30 tail characters
EMPTY = AgentConfig(invalid_action="empty")
NO_THINK = AgentConfig(require_think=False)

# (completion text, valid, action sent with invalid_action="tail", reason fragment)
CASES = [
    ("<think>coin is here</think><action>take coin</action>", True, "take coin", ""),
    ("<think>x</think>\n<action>  move north \n</action>", True, "move north", ""),
    ("<THINK>x</THINK><Action>open fridge</Action>", True, "open fridge", ""),  # tags ignore case
    ("<think>x</think><action>take coin</action> trailing words", True, "take coin", ""),
    # Missing tags: verl-agent sends the last 30 characters.
    ("take coin", False, "take coin", "no <action>"),
    ("I think I should move north right now, yes move north", False,
     "orth right now, yes move north", "no <action>"),
    ("<think>x</think><action>take coin", False, "ink>x</think><action>take coin", "not closed"),
    ("<think>x</think>take coin</action>", False, "nk>x</think>take coin</action>", "without a preceding"),
    # Nested and repeated blocks: the first complete un-nested block is what can be sent.
    ("<think>x</think><action>go <action>take coin</action></action>", False, "take coin", "nested"),
    ("<think>x</think><action>move north</action><action>take coin</action>", False, "move north",
     "2 <action> blocks"),
    ("<think>x</think><action>   </action>", False, ">x</think><action>   </action>", "empty"),
    # Think problems (require_think): the extracted action is still what is sent.
    ("<action>take coin</action>", False, "take coin", "no <think>"),
    ("<think>a</think><think>b</think><action>take coin</action>", False, "take coin", "malformed <think>"),
    ("<think>a<action>take coin</action></think>", False, "take coin", "before the action"),
    ("<think>unclosed <action>take coin</action>", False, "take coin", "malformed <think>"),
]


@pytest.mark.parametrize(("text", "valid", "sent", "reason"), CASES)
def test_parse(text, valid, sent, reason):
    parsed = parse_completion(text, STRICT)
    assert parsed.valid is valid
    assert parsed.action == sent
    assert reason in parsed.reason
    assert (parsed.reason == "") is valid


@pytest.mark.parametrize(("text", "valid", "sent", "reason"), CASES)
def test_invalid_sends_nothing_when_configured(text, valid, sent, reason):
    parsed = parse_completion(text, EMPTY)
    assert parsed.valid is valid
    assert parsed.action == (sent if valid else "")


def test_think_is_optional_when_not_required():
    assert parse_completion("<action>take coin</action>", NO_THINK).valid
    # Action problems still count.
    assert not parse_completion("<action>a</action><action>b</action>", NO_THINK).valid


def test_thought_is_extracted():
    parsed = parse_completion("<think> the coin is here </think><action>take coin</action>", STRICT)
    assert parsed.thought == "the coin is here"


def test_tail_length_is_configurable():
    text = "move north please"
    assert parse_completion(text, AgentConfig(invalid_tail_chars=6)).action == "please"


@pytest.mark.parametrize("action", ["take coin", "click[Buy Now]", "put apple 1 in/on fridge 1", ""])
def test_format_round_trip(action):
    parsed = parse_completion(format_completion(action, "why"), STRICT)
    assert parsed.valid is bool(action)
    if action:
        assert parsed.action == action and parsed.thought == "why"
