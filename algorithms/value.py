"""PPO's critic: a value function on a causal LM's last hidden state, and the learner part
that trains it (settings: :class:`agentropy.configs.schema.PPOConfig`).

The ``critic`` part is built when the advantage estimator needs values (``gae``). Two layouts
(docs/algorithms.md section 1):

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

from typing import TYPE_CHECKING, Any

import torch
from agentropy.algorithms.data import TokenBatch
from agentropy.algorithms.functional import value_loss
from agentropy.algorithms.parts import LearnerPart, LossContext, LossTerm, PartContext, Tally
from agentropy.algorithms.registry import LEARNER_PARTS
from torch import Tensor, nn

if TYPE_CHECKING:
    from agentropy.configs.schema import AlgorithmConfig

__all__ = ["ValueHead", "Critic", "SharedCritic", "SeparateCritic"]


class ValueHead(nn.Module):
    """Linear map from hidden states to values.

    The weight starts small and random (std 1 / hidden_size; from ``seed`` when given), the bias
    at 0: values start near 0, and the backbone under the head gets a gradient from the first step
    (a zero weight would block it).
    """

    def __init__(self, hidden_size: int, seed: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():  # drawn on the CPU: the same weight on every device and rank
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator) / hidden_size)
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


class SharedCritic(LearnerPart):
    """A :class:`ValueHead` on the policy's own last hidden state, in the policy's optimizer at
    ``ppo.critic_lr``; its loss, weighted by ``ppo.value_coef``, flows into the backbone."""

    def __init__(self, cfg: AlgorithmConfig, ctx: PartContext) -> None:
        self.cfg = cfg.ppo
        dtype = next(ctx.model.parameters()).dtype
        # seeded by the learner's seed, so every data-parallel rank starts with the same head
        self.head = ValueHead(ctx.model.config.hidden_size, seed=cfg.seed).to(ctx.device, dtype)
        self.out_dtype = torch.promote_types(dtype, torch.float32)

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.head.parameters()), "lr": self.cfg.critic_lr, "weight_decay": 0.0}]

    def old_columns(self) -> tuple[str, ...]:
        return ("values",)

    def old_hidden(self) -> bool:
        return True

    def old_pass(self, micro: TokenBatch, fw: Any) -> dict[str, Tensor]:
        return {"values": self.values(micro, fw) * micro.loss_mask}

    def values(self, micro: TokenBatch, fw: Any) -> Tensor:
        return self.head(fw.hidden).to(self.out_dtype)

    def wants_hidden(self, micro: TokenBatch) -> bool:
        return micro.returns is not None

    def loss_terms(self, ctx: LossContext, rows: slice, micro: TokenBatch, fw: Any) -> list[LossTerm]:
        if micro.returns is None:  # rows without value targets (the replay's)
            return []
        v_loss = value_loss(self.values(micro, fw), micro.values, micro.returns, clip=self.cfg.value_clip)
        value = (v_loss * ctx.weights("token-mean")[rows, :micro.seq_len]).sum()
        return [LossTerm("loss_value", value, coef=self.coef, scaled=False)]

    @property
    def coef(self) -> float:
        return self.cfg.value_coef

    def state_dict(self) -> dict[str, Any]:
        return {"value_head": self.head.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["value_head"])


class SeparateCritic(SharedCritic):
    """A separate :class:`Critic` with its own optimizer at ``ppo.critic_lr`` and the policy's LR
    schedule; its loss has weight 1 and gradients clipped like the policy's."""

    def __init__(self, cfg: AlgorithmConfig, ctx: PartContext) -> None:
        self.cfg = cfg.ppo
        self.critic = ctx.value_model
        self.optimizer = torch.optim.AdamW(self.critic.parameters(), lr=cfg.ppo.critic_lr,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, ctx.lr_factor)

    def param_groups(self) -> list[dict[str, Any]]:
        return []

    def old_hidden(self) -> bool:
        return False

    def values(self, micro: TokenBatch, fw: Any) -> Tensor:
        return self.critic(micro.input_ids, micro.attention_mask)

    def wants_hidden(self, micro: TokenBatch) -> bool:
        return False

    @property
    def coef(self) -> float:
        return 1.0

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def clip_grad(self, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), max_norm)

    def optimizer_step(self) -> None:
        self.optimizer.step()

    def end_step(self, step: int, tally: Tally, rows: int) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "critic_optimizer": self.optimizer.state_dict(),
                "critic_scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["critic_optimizer"])
        self.scheduler.load_state_dict(state["critic_scheduler"])


@LEARNER_PARTS.register("critic")
def _critic(cfg: AlgorithmConfig, ctx: PartContext) -> SharedCritic | None:
    if "values" not in ctx.needs:
        return None
    return SharedCritic(cfg, ctx) if ctx.value_model is None else SeparateCritic(cfg, ctx)
