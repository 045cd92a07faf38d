"""The small local model: a Qwen2-architecture causal LM and a byte-level BPE tokenizer.

Machines without a GPU or a model hub still need a real policy to train. :func:`make_model`
trains a byte-level BPE tokenizer on the environments' own text (:mod:`agentropy.agents.corpus`) and the
prompts' fixed wording (:func:`agentropy.agents.prompts.scaffold_texts`), wraps it
with a ChatML chat template (the format of Qwen2.5-Instruct, so prompts are rendered the same
way for the tiny model and for hub models), builds a randomly initialised ``Qwen2ForCausalLM``
with untied embeddings (vLLM's weight reload drops a tied ``lm_head``, see docs/models.md section 2.3), and
saves both with ``save_pretrained``. The same seed gives byte-identical files.

:func:`load_pretrained` is the one loading path for the tiny model's folder and for hub models
(``Qwen/Qwen2.5-1.5B-Instruct`` on machines that have the hub).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from agentropy.agents.corpus import read_corpus
from agentropy.agents.prompts import scaffold_texts
from agentropy.configs.schema import TinyModelConfig
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "build_model",
    "load_pretrained",
    "make_model",
    "train_tokenizer",
]

log = logging.getLogger(__name__)

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, EOS_TOKEN)
FORMAT_TAGS = ("<think>", "</think>", "<action>", "</action>")

#: ChatML, as used by Qwen2.5-Instruct (without its default system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it as a chat tokenizer.

    Args:
        texts: the training corpus.
        vocab_size: target size including the 256 byte symbols and the special tokens.

    Returns:
        A tokenizer with eos ``<|im_end|>``, pad ``<|endoftext|>`` and the ChatML template.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    # The agent's format tags become single tokens: byte-level pre-tokenisation would otherwise
    # split them at their punctuation ("<", "think", "></", ...), almost doubling the length of
    # a short answer. They are not special: decoding keeps them.
    bpe.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in FORMAT_TAGS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
        model_max_length=1 << 20,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: PreTrainedTokenizerFast, config: TinyModelConfig) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM sized for ``tokenizer``, seeded by ``config.seed``."""
    vocab = -(-len(tokenizer) // 64) * 64
    qwen = Qwen2Config(
        vocab_size=vocab,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)
        model = Qwen2ForCausalLM(qwen)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def make_model(
    out_dir: str | Path, config: TinyModelConfig | None = None, corpus: str | Path | None = None
) -> Path:
    """Build the tokenizer and the model and save both to ``out_dir``.

    Args:
        out_dir: folder to write (created if needed).
        config: model and tokenizer sizes and the seed (the defaults when None).
        corpus: a corpus file written by :func:`agentropy.agents.corpus.write_corpus`; the one shipped
            with the package when None.

    Returns:
        ``out_dir`` as a Path; load it with :func:`load_pretrained`.
    """
    config = config or TinyModelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The prompts' own wording is part of what the model reads: train on it too (agentropy.agents.prompts).
    tokenizer = train_tokenizer([*read_corpus(corpus), *scaffold_texts()], config.vocab_size)
    model = build_model(tokenizer, config)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    (out / "agentropy_tiny.json").write_text(_json(asdict(config)))
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny model: %d parameters, %d tokens, saved to %s", n, len(tokenizer), out)
    return out


def load_pretrained(
    name_or_path: str | Path, *, dtype: torch.dtype | str = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a causal LM and its tokenizer from a local folder or a hub name.

    Args:
        name_or_path: a folder written by :func:`make_model` or ``save_pretrained``, or a hub
            model name such as ``Qwen/Qwen2.5-1.5B-Instruct``.
        dtype: parameter dtype (``torch.float32``, ``torch.bfloat16`` or their names).

    Raises:
        FileNotFoundError: the name is not a local folder and the hub is offline.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    local = Path(name_or_path).is_dir()
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if not local and offline:
        raise FileNotFoundError(
            f"model {str(name_or_path)!r} is not a local folder and the hub is offline "
            "(HF_HUB_OFFLINE is set); build the local model with `agentropy make-model DIR`"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    if tokenizer.chat_template is None:
        raise ValueError(f"tokenizer of {name_or_path!s} has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype)
    return model, tokenizer


def _json(obj: object) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
