"""Golden numbers for the functional pieces the data model relies on (worked by hand)."""

from __future__ import annotations

import math

import pytest
import torch
from agentropy.algorithms.functional import aggregate, token_entropy, token_logprobs

LOSS = torch.tensor([[1.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
MASK = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 1.75),  # (1 + 2 + 2 + 2) / 4 tokens
        ("seq-mean-token-mean", 1.5),  # rows: 1/1 = 1 and 6/3 = 2 -> (1 + 2) / 2
        ("seq-mean-token-sum", 3.5),  # rows: 1 and 6 -> (1 + 6) / 2
        ("seq-mean-token-sum-norm", 7 / 3),  # (1 + 6) / T, T = 3
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_aggregate_golden(mode, expected, dtype):
    out = aggregate(LOSS.to(dtype), MASK, mode)
    assert out.dtype == dtype
    assert out.item() == pytest.approx(expected)


def test_aggregate_norm_length_and_unknown_mode():
    # Divisor 7 instead of T: (1 + 6) / 7 = 1.
    assert aggregate(LOSS, MASK, "seq-mean-token-sum-norm", norm_length=7).item() == pytest.approx(1.0)
    with pytest.raises(KeyError, match="known: seq-mean-token-mean"):
        aggregate(LOSS, MASK, "mean")


def test_token_entropy_golden():
    # Uniform over 4: ln 4. One-hot (very peaked): ~0.
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    h = token_entropy(logits)
    assert h[0].item() == pytest.approx(math.log(4))
    assert h[1].item() == pytest.approx(0.0, abs=1e-12)


def test_token_logprobs_alignment():
    # Vocabulary 2; logits predict token 1 with p = e/(1+e) from every position.
    logits = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    ids = torch.tensor([[0, 1, 0]])
    out = token_logprobs(logits, ids)
    p1 = math.log(math.e / (1 + math.e))
    p0 = math.log(1 / (1 + math.e))
    assert out.tolist()[0] == pytest.approx([0.0, p1, p0])
