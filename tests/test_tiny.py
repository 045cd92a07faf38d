"""The local model: determinism, reload, chat template round trip, no hub access."""

from __future__ import annotations

import filecmp

import pytest
import torch
from agentropy.agents.tiny import CHAT_TEMPLATE, EOS_TOKEN, load_pretrained, make_model
from agentropy.configs.schema import TinyModelConfig

FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json", "chat_template.jinja")


def test_same_seed_gives_identical_files(tiny_model_dir, tmp_path):
    again = make_model(tmp_path / "again")
    for name in FILES:
        assert filecmp.cmp(tiny_model_dir / name, again / name, shallow=False), name


def test_other_seed_gives_other_weights_same_tokenizer(tiny_model_dir, tmp_path):
    other = make_model(tmp_path / "other", TinyModelConfig(seed=1))
    assert filecmp.cmp(tiny_model_dir / "tokenizer.json", other / "tokenizer.json", shallow=False)
    assert not filecmp.cmp(tiny_model_dir / "model.safetensors", other / "model.safetensors",
                           shallow=False)


def test_model_shape_and_untied_head(tiny_model):
    model, tokenizer = tiny_model
    cfg = model.config
    assert cfg.model_type == "qwen2" and cfg.tie_word_embeddings is False
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size == 128
    assert cfg.vocab_size % 64 == 0 and cfg.vocab_size >= len(tokenizer)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_reload_gives_identical_logits(tiny_model_dir, tiny_model):
    model, tokenizer = tiny_model
    again, _ = load_pretrained(tiny_model_dir)
    ids = torch.tensor([tokenizer("You are in the kitchen. There is a coin.").input_ids])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again.eval()(input_ids=ids).logits)


def test_chat_template_round_trip(tiny_model):
    _, tokenizer = tiny_model
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "You are in the kitchen.\nAdmissible actions: take coin"},
        {"role": "assistant", "content": "<think>the coin is here</think><action>take coin</action>"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are an agent.<|im_end|>\n"
        "<|im_start|>user\nYou are in the kitchen.\nAdmissible actions: take coin<|im_end|>\n"
        "<|im_start|>assistant\n<think>the coin is here</think><action>take coin</action><|im_end|>\n"
    )
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert tokenizer.decode(ids) == text
    assert tokenizer(text).input_ids == list(ids)
    # The generation prompt ends with the assistant header; special tokens are single ids.
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids
    assert tokenizer.eos_token_id in ids
    assert tokenizer.chat_template == CHAT_TEMPLATE


def test_tokenizer_is_byte_level_and_compact(tiny_model):
    _, tokenizer = tiny_model
    for text in ["take coin", "Ünïcödé ✓ and \\ backslashes\n\ttabs", "<action>move west</action>"]:
        assert tokenizer.decode(tokenizer(text).input_ids) == text
    # Env text is what the BPE was trained on: common phrases take few tokens.
    assert len(tokenizer("You are in the kitchen.").input_ids) <= 6


def test_hub_name_is_refused_offline():
    with pytest.raises(FileNotFoundError, match="make-model"):
        load_pretrained("Qwen/Qwen2.5-1.5B-Instruct")
