"""Shared helpers of the backend tests: real chat prompts and a teacher-forced reference."""

from __future__ import annotations

import torch
from agentropy.agents.backends.base import Generation
from transformers import TopPLogitsWarper

__all__ = ["chat_prompts", "teacher_forced"]


def chat_prompts(tokenizer) -> list[list[int]]:
    texts = ["You are in the kitchen.", "Take the coin. " * 3, "move north\n" * 6, "Task: find the coin."]
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        for t in texts
    ]


def teacher_forced(model, prompt, gen: Generation, temperature: float, top_p: float = 1.0):
    """Teacher-forced (log-probabilities, entropies) of ``gen`` under the sampling distribution."""
    ids = torch.tensor([list(prompt) + list(gen.token_ids)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    scores = logits / (temperature or 1.0)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(ids, scores)
    logp = torch.log_softmax(scores, dim=-1)
    picked = logp.gather(1, torch.tensor(gen.token_ids)[:, None]).squeeze(1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    return picked, entropy
