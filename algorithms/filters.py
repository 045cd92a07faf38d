"""Dr.BoT's response filters and group filters (docs/algorithms.md section 7.1; DAPO's dynamic sampling).

Response filters decide, per row, whether its loss counts: a row whose completion is overlong
(stopped at the token limit), incomplete (no ``<action>...</action>`` after the last
``</think>``), repetitive (a long n-gram repeated many times) or unreadable (U+FFFD in the
decoded text) keeps its place in the batch (its score still counts in its group's statistics)
but its loss mask is cleared. Group filters drop whole groups before anything is computed.

Deviation: Dr.BoT also trims the surviving rows at random to the largest power of two; we do not,
because dropping random rows biases the gradient (docs/algorithms.md section 9.4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from agentropy.algorithms import functional as fn
from agentropy.algorithms.data import TokenBatch
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import FilterConfig

__all__ = ["completion_texts", "is_incomplete", "response_keep", "response_filter", "group_keep",
           "needs_text", "row_outcomes"]

_ACTION = re.compile(r"<action>.*?</action>", re.DOTALL)


def needs_text(cfg: FilterConfig) -> bool:
    """True if a filter of ``cfg`` reads the decoded completion."""
    return cfg.incomplete or cfg.unreadable


def completion_texts(batch: TokenBatch, tokenizer) -> list[str]:
    """Decode each row's completion tokens (special tokens kept)."""
    ids = []
    for row, (p, c) in enumerate(zip(batch.prompt_length.tolist(), batch.completion_length.tolist(),
                                     strict=True)):
        ids.append(batch.input_ids[row, p:p + c].tolist())
    return tokenizer.batch_decode(ids, skip_special_tokens=False)


def is_incomplete(text: str) -> bool:
    """No complete ``<action>...</action>`` after the last ``</think>`` (case-insensitive)."""
    text = text.lower()
    cut = text.rfind("</think>")
    tail = text if cut < 0 else text[cut + len("</think>"):]
    return _ACTION.search(tail) is None


def response_keep(batch: TokenBatch, cfg: FilterConfig, texts: Sequence[str] | None = None) -> Tensor:
    """Which rows keep their loss.

    Args:
        batch: the rows.
        cfg: which filters are on.
        texts: the decoded completions, one per row; needed by ``incomplete`` and
            ``unreadable`` (see :func:`needs_text`).

    Returns:
        (B,) bool, False for a filtered row.
    """
    keep = torch.ones(batch.batch_size, dtype=torch.bool, device=batch.input_ids.device)
    if cfg.overlong:
        keep &= ~batch.completion_truncated
    if needs_text(cfg):
        if texts is None:
            raise ValueError("the incomplete / unreadable filters need the decoded completions")
        bad = [(cfg.incomplete and is_incomplete(t)) or (cfg.unreadable and "\ufffd" in t)
               for t in texts]
        keep &= ~torch.tensor(bad, dtype=torch.bool, device=keep.device)
    if cfg.repetitive:
        rows = [fn.has_repeated_ngram(batch.input_ids[r][batch.loss_mask[r]], n=cfg.ngram,
                                     count=cfg.ngram_repeats) for r in range(batch.batch_size)]
        keep &= ~torch.tensor(rows, dtype=torch.bool, device=keep.device)
    return keep


def response_filter(batch: TokenBatch, cfg: FilterConfig, tokenizer=None) -> Tensor:
    """:func:`response_keep`, decoding the completions first when a filter reads them."""
    texts = completion_texts(batch, tokenizer) if needs_text(cfg) else None
    return response_keep(batch, cfg, texts)


def group_keep(batch: TokenBatch, scores: Tensor, cfg: FilterConfig, *,
               outcomes: Tensor | None = None) -> Tensor:
    """Which rows survive the group filters.

    Each trajectory's score is the mean of its rows' scores. ``drop_constant_groups`` drops
    groups whose trajectories all had the same outcome (no learning signal; DAPO's dynamic
    sampling without the resampling): it reads ``outcomes``, not the scores, so that
    invalid-action penalties do not keep an all-failed group alive. ``group_keep_ratio`` < 1
    keeps that fraction of groups with the highest std of trajectory scores (Dr.BoT's
    ``rollout_filter_ratio``, type ``std``).

    Args:
        batch: the rows (uses traj_index, group_index).
        scores: (B,) row scores.
        cfg: the filter settings.
        outcomes: (B,) the outcome of each row's trajectory (see :func:`row_outcomes`); the
            scores when None.

    Returns:
        (B,) bool.
    """
    keep = torch.ones(batch.batch_size, dtype=torch.bool, device=scores.device)
    if not cfg.drop_constant_groups and cfg.group_keep_ratio >= 1.0:
        return keep
    traj, traj_score, traj_group = fn.trajectory_scores(scores, batch.traj_index, batch.group_index)
    if cfg.drop_constant_groups:
        traj_outcome = traj_score
        if outcomes is not None:
            _, traj_outcome, _ = fn.trajectory_scores(outcomes.to(scores.dtype), batch.traj_index,
                                                      batch.group_index)
        _, std, _ = fn.group_stats(traj_outcome, traj_group)
        keep &= (std > 0)[traj]
    if cfg.group_keep_ratio < 1.0:
        keep &= fn.top_std_groups(traj_score, traj_group, cfg.group_keep_ratio)[traj]
    return keep


def row_outcomes(batch: TokenBatch, outcome: str) -> Tensor:
    """(B,) the outcome of each row's trajectory, without shaping: ``success`` (won) or
    ``return`` (the episode return), as ``algorithm.reward.outcome`` names it."""
    return batch.success if outcome == "success" else batch.episode_return
