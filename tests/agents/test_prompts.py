"""Prompt building: the step template with and without history, the truncation rule, the
conversation mode's token-in/token-out growth, and the family templates."""

from __future__ import annotations

import logging

import pytest
from agentropy.agents.parsing import format_completion
from agentropy.agents.prompts import (
    GENERIC,
    TEMPLATES,
    PromptBuilder,
    first_sentence,
    observation_text,
    template_for,
)
from agentropy.configs.schema import AgentConfig

TASK = "Find the coin and take it."
OBS = [
    "You are in the kitchen. You see a fridge. To the north is the pantry.",
    "You are in the pantry. You see a shelf. To the south is the kitchen.",
    "You are in the kitchen. You see a fridge. To the north is the pantry.",
    "You are in the corridor. There is a coin here.",
]
ACTIONS = ["move north", "move south", "move east"]
ADMISSIBLE = ["move north", "move south", "take coin", "look around"]


def _builder(tokenizer, **overrides) -> PromptBuilder:
    return PromptBuilder(tokenizer, AgentConfig(**overrides))


def _played(builder: PromptBuilder, turns: int):
    """A memory after ``turns`` turns of a fixed episode (scripted completions)."""
    memory = builder.start("twx", TASK)
    for t in range(turns):
        prompt = builder.build(memory, OBS[t], ADMISSIBLE)
        tokenizer = builder.tokenizer
        completion = tokenizer(format_completion(ACTIONS[t])).input_ids + [tokenizer.eos_token_id]
        builder.record(memory, prompt, OBS[t], ACTIONS[t], completion)
    return memory


def test_first_sentence():
    assert first_sentence("You are in the kitchen. You see a fridge.") == "You are in the kitchen."
    assert first_sentence("  Nothing happens!  Try again.") == "Nothing happens!"
    assert first_sentence("Line one\nLine two.") == "Line one"
    assert first_sentence("No end mark") == "No end mark"
    assert first_sentence("Version 1.5 is out. Next.") == "Version 1.5 is out."


def test_step_prompt_without_history(tiny_model):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, history_length=0)
    memory = _played(builder, 2)
    prompt = builder.build(memory, OBS[2], ADMISSIBLE)
    assert prompt.history_shown == 0 and not prompt.overflow
    assert "Your last" not in prompt.text and ACTIONS[0] not in prompt.text.split("Admissible")[0]
    assert f"Task: {TASK}" in prompt.text
    assert f"Step 3. Observation:\n{OBS[2]}" in prompt.text
    assert "Admissible actions:\n" + "\n".join(ADMISSIBLE) in prompt.text
    assert "<think>" in prompt.text and "<action>" in prompt.text  # the answer format is stated
    assert prompt.text.endswith("<|im_start|>assistant\n")
    # The ids are exactly the chat template's rendering of the two messages.
    messages = [
        {"role": "system", "content": builder.system_text("twx")},
        {"role": "user", "content": builder.user_text(memory, OBS[2], ADMISSIBLE, 0)},
    ]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                        return_dict=False)
    assert prompt.ids == tuple(ids)
    assert tokenizer.decode(prompt.ids) == prompt.text


def test_step_prompt_with_history_shows_the_last_pairs(tiny_model):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, history_length=2)
    memory = _played(builder, 3)
    prompt = builder.build(memory, OBS[3], ADMISSIBLE)
    assert prompt.history_shown == 2
    text = prompt.text
    assert "Your last 2 of 3 steps:" in text
    assert f"Step 1 action: {ACTIONS[0]}" not in text  # older than the window
    assert f"Step 2 observation: {OBS[1]}\nStep 2 action: {ACTIONS[1]}" in text
    assert f"Step 3 observation: {OBS[2]}\nStep 3 action: {ACTIONS[2]}" in text
    assert f"Step 4. Observation:\n{OBS[3]}" in text
    # The reasoning is not carried forward, only the command sent.
    assert "<think></think>" not in text


def test_first_sentence_history_is_shorter_and_keeps_the_current_observation(tiny_model):
    _, tokenizer = tiny_model
    full = _builder(tokenizer, history_length=2)
    short = _builder(tokenizer, history_length=2, history_observation="first_sentence")
    p_full = full.build(_played(full, 3), OBS[3], ADMISSIBLE)
    p_short = short.build(_played(short, 3), OBS[3], ADMISSIBLE)
    assert "Step 2 observation: You are in the pantry.\nStep 2 action" in p_short.text
    assert f"Step 4. Observation:\n{OBS[3]}" in p_short.text
    assert len(p_short.ids) < len(p_full.ids)


def test_truncation_drops_oldest_history_never_part_of_an_observation(tiny_model):
    _, tokenizer = tiny_model
    lengths = {}
    for k in (0, 1, 2):
        builder = _builder(tokenizer, history_length=k)
        lengths[k] = len(builder.build(_played(builder, 3), OBS[3], ADMISSIBLE).ids)
    assert lengths[0] < lengths[1] < lengths[2]

    # A budget that holds one history pair but not two keeps exactly the newest pair, whole.
    for budget in (lengths[1], lengths[2] - 1):
        builder = _builder(tokenizer, history_length=2, max_prompt_tokens=budget)
        prompt = builder.build(_played(builder, 3), OBS[3], ADMISSIBLE)
        assert prompt.history_shown == 1 and len(prompt.ids) == lengths[1] <= budget
        assert f"Step 3 observation: {OBS[2]}\nStep 3 action: {ACTIONS[2]}" in prompt.text
        assert "Step 2 observation" not in prompt.text

    # One token less than the no-history prompt: nothing can be dropped, the prompt stays whole.
    builder = _builder(tokenizer, history_length=2, max_prompt_tokens=lengths[0] - 1)
    prompt = builder.build(_played(builder, 3), OBS[3], ADMISSIBLE)
    assert prompt.history_shown == 0 and prompt.overflow and len(prompt.ids) == lengths[0]
    assert f"Step 4. Observation:\n{OBS[3]}" in prompt.text


def test_overflow_warns_once(tiny_model, caplog):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, max_prompt_tokens=10)
    memory = builder.start("twx", TASK)
    with caplog.at_level(logging.WARNING, logger="agentropy.agents.prompts"):
        builder.build(memory, OBS[0], ADMISSIBLE)
        builder.build(memory, OBS[1], ADMISSIBLE)
    assert len([r for r in caplog.records if "max_prompt_tokens" in r.message]) == 1


def test_admissible_actions_cap(tiny_model):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, max_admissible_actions=2)
    prompt = builder.build(builder.start("twx", TASK), OBS[0], ADMISSIBLE)
    assert "Admissible actions:\nmove north\nmove south\n(and 2 more)" in prompt.text
    assert "take coin" not in prompt.text


def test_conversation_mode_appends_token_ids(tiny_model):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, prompt_mode="conversation")
    memory = builder.start("twx", TASK)
    previous, completion = None, []
    messages = [{"role": "system", "content": builder.system_text("twx") + f"\nTask: {TASK}"}]
    for t in range(3):
        prompt = builder.build(memory, OBS[t], ADMISSIBLE)
        assert prompt.history_shown == t
        if previous is not None:
            # The next prompt extends the previous prompt and the sampled ids, unchanged.
            head = previous.ids + tuple(completion)
            assert prompt.ids[: len(head)] == head
        messages.append({"role": "user", "content": observation_text(OBS[t], ADMISSIBLE, builder.config)})
        expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
        assert prompt.ids == tuple(expected)  # same as rendering the whole chat (canonical tokens)
        text = format_completion(ACTIONS[t])
        completion = tokenizer(text).input_ids + [tokenizer.eos_token_id]
        messages.append({"role": "assistant", "content": text})
        builder.record(memory, prompt, OBS[t], ACTIONS[t], completion)
        previous = prompt


def test_conversation_mode_truncates_whole_turns(tiny_model):
    _, tokenizer = tiny_model
    unlimited = _builder(tokenizer, prompt_mode="conversation")
    full = unlimited.build(_played(unlimited, 3), OBS[3], ADMISSIBLE)
    assert full.history_shown == 3
    # A completion cut by the token limit gets the template's closing tokens appended.
    cut = _builder(tokenizer, prompt_mode="conversation", max_prompt_tokens=len(full.ids) - 1)
    memory = _played(cut, 3)
    prompt = cut.build(memory, OBS[3], ADMISSIBLE)
    assert prompt.history_shown == 2 and len(prompt.ids) <= len(full.ids) - 1
    assert prompt.ids[: len(memory.system_ids)] == memory.system_ids  # the task stays
    assert prompt.text.count("<|im_start|>user") == 3
    # The oldest turn (its reply "move north") is the one dropped.
    assert "<action>move north</action>" not in prompt.text
    assert "<action>move south</action>" in prompt.text and "<action>move east</action>" in prompt.text


def test_conversation_mode_closes_a_truncated_completion(tiny_model):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer, prompt_mode="conversation")
    memory = builder.start("twx", TASK)
    prompt = builder.build(memory, OBS[0], ADMISSIBLE)
    unfinished = tokenizer("<think>still thinking").input_ids  # no EOS: stopped by length
    builder.record(memory, prompt, OBS[0], "", unfinished)
    nxt = builder.build(memory, OBS[1], ADMISSIBLE)
    tail = nxt.ids[len(prompt.ids) + len(unfinished) :]
    assert tail[0] == tokenizer.eos_token_id  # <|im_end|> closes the assistant turn
    assert tokenizer.decode(nxt.ids).count("<|im_start|>assistant\n<think>still thinking<|im_end|>") == 1


def test_family_templates():
    assert set(TEMPLATES) == {"twx", "textworld", "science", "household", "shop"}
    texts = {t.setting + t.advice for t in TEMPLATES.values()}
    assert len(texts) == len(TEMPLATES)  # each family has its own text
    assert template_for("no-such-family") is GENERIC


@pytest.mark.parametrize("family", [*TEMPLATES, "generic"])
def test_every_family_renders(tiny_model, family):
    _, tokenizer = tiny_model
    builder = _builder(tokenizer)
    prompt = builder.build(builder.start(family, TASK), OBS[0], ADMISSIBLE)
    assert template_for(family).setting in prompt.text and OBS[0] in prompt.text


def test_answer_format_follows_require_think(tiny_model):
    _, tokenizer = tiny_model
    assert "then <action>" in _builder(tokenizer).system_text("twx")
    assert "optionally" in _builder(tokenizer, require_think=False).system_text("twx")
