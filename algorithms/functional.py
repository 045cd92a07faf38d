"""The math of the learners as pure functions over tensors.

Every function here takes explicit tensors and returns tensors; there is no hidden state and no
device or dtype assumption (float32 and float64 both work). Shapes use B rows, T token positions,
V vocabulary entries. The registries in :mod:`algorithms.registry` and the learner call these.
"""

from __future__ import annotations

import torch
from torch import Tensor

from algorithms.registry import AGGREGATIONS

__all__ = ["token_logprobs", "token_entropy", "aggregate"]


def token_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-probability of each token given the tokens before it.

    Args:
        logits: (B, T, V) causal-LM logits; ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: (B, T) token ids.

    Returns:
        (B, T) where entry t is log p(input_ids[:, t] | input_ids[:, :t]); column 0 has no
        prediction and is 0. This lines up with ``TokenBatch.rollout_logprobs``.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1).to(logits.dtype)
    return torch.nn.functional.pad(picked, (1, 0), value=0.0)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of the softmax over the last dimension.

    Args:
        logits: (..., V) unnormalised log-probabilities.

    Returns:
        (...) entropy H = logsumexp(z) - sum softmax(z) * z.
    """
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


@AGGREGATIONS.register("token-mean")
def _token_mean(loss: Tensor, mask: Tensor, norm_length: int | None) -> Tensor:
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


@AGGREGATIONS.register("seq-mean-token-mean")
def _seq_mean_token_mean(loss: Tensor, mask: Tensor, norm_length: int | None) -> Tensor:
    mask = mask.to(loss.dtype)
    per_row = (loss * mask).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)
    has_tokens = (mask.sum(dim=-1) > 0).to(loss.dtype)
    return (per_row * has_tokens).sum() / has_tokens.sum().clamp_min(1.0)


@AGGREGATIONS.register("seq-mean-token-sum")
def _seq_mean_token_sum(loss: Tensor, mask: Tensor, norm_length: int | None) -> Tensor:
    mask = mask.to(loss.dtype)
    per_row = (loss * mask).sum(dim=-1)
    has_tokens = (mask.sum(dim=-1) > 0).to(loss.dtype)
    return (per_row * has_tokens).sum() / has_tokens.sum().clamp_min(1.0)


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def _seq_mean_token_sum_norm(loss: Tensor, mask: Tensor, norm_length: int | None) -> Tensor:
    # Dr.GRPO / Dr.BoT: masked row sums, summed over rows (not averaged), divided by the
    # response-length budget, so the scale does not depend on how long responses are.
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / (norm_length or loss.shape[-1])


def aggregate(loss: Tensor, mask: Tensor, mode: str, *, norm_length: int | None = None) -> Tensor:
    """Reduce a per-token loss matrix to a scalar.

    Args:
        loss: (N, T) per-token loss.
        mask: (N, T) bool or 0/1; the tokens that count.
        mode: ``token-mean`` (masked sum / mask sum), ``seq-mean-token-mean`` (mean over rows
            of each row's masked mean), ``seq-mean-token-sum`` (mean over rows of each row's
            masked sum) or ``seq-mean-token-sum-norm`` (sum over rows of masked row sums / T).
            Rows without any masked token are left out of the row means.
        norm_length: the divisor of ``seq-mean-token-sum-norm``; defaults to T as in verl,
            where T is the response-length budget. Our rows hold prompt + completion, so the
            learner passes its generation budget here, which keeps the loss independent of
            padding.

    Returns:
        A scalar tensor.
    """
    return AGGREGATIONS.get(mode)(loss, mask, norm_length)
