"""PPO's value function: a linear head on a causal LM's last hidden state.

Two ways to use it (docs/algorithms.md section 1):

- shared backbone (the learner's default for PPO): a :class:`ValueHead` reads the policy's own
  last hidden state from the same forward pass, so PPO costs one forward + backward on CPU; the
  value loss flows into the backbone, weighted by ``ppo.value_coef``;
- separate critic (verl's layout, "initialised from the same base LLM"): a :class:`Critic`
  wrapping its own copy of the backbone, passed to the learner as ``value_model`` and trained by
  its own optimizer at ``ppo.critic_lr``.

Values line up with :func:`agentropy.algorithms.functional.token_logprobs`: ``values[:, t]`` is the
value of the state that generates token t, i.e. the head applied to the hidden state at t - 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ValueHead", "Critic"]


class ValueHead(nn.Module):
    """Linear map from hidden states to values.

    The weight starts small and random (std 1 / hidden_size), the bias at 0: values start near
    0, and the backbone under the head gets a gradient from the first step (a zero weight would
    block it).
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.proj.weight, std=1.0 / hidden_size)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, T, H) last hidden states -> (B, T) values; column 0 is 0."""
        v = self.proj(hidden[:, :-1].to(self.proj.weight.dtype)).squeeze(-1)
        return torch.nn.functional.pad(v, (1, 0))


class Critic(nn.Module):
    """A transformer body with a :class:`ValueHead`: ``forward(input_ids, attention_mask)``.

    Args:
        backbone: a Hugging Face model, e.g. a copy of the policy's causal LM; its
            ``base_model`` (the body without the LM head) is kept.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.body = backbone.base_model
        self.head = ValueHead(backbone.config.hidden_size)
        self.head.to(next(self.body.parameters()).dtype)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T) ids and mask -> (B, T) values aligned with the tokens."""
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return self.head(out.last_hidden_state)
