"""Memory and precision of the learner (algorithms/memory.py and the learner's use of it):
float32 master weights under bf16 autocast, no (rows x seq x vocab) float32 tensor, token-budget
micro-batches and activation checkpointing that leave the gradient unchanged, the reference
model in the compute dtype, the pure-bf16 optimizer."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from agentropy.agents.tiny import load_pretrained
from agentropy.algorithms import functional as fn
from agentropy.algorithms.learner import Learner
from agentropy.algorithms.memory import (
    StochasticRoundingAdamW,
    split_lm,
    stochastic_round,
    token_budget_slices,
)
from agentropy.configs.compose import load_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tests.learner_cases import make_batch, rows_batch

SMALL = ["algorithm.mini_batch_size=64", "algorithm.micro_batch_size=4"]


def _cfg(*overrides: str):
    return load_config([*SMALL, *overrides]).algorithm


# ------------------------------------------------------------------ token-budget micro-batches
def test_token_budget_slices():
    lengths = torch.tensor([10, 30, 20, 50, 5, 5, 5])
    assert token_budget_slices(lengths, max_rows=3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    # rows x longest row <= 60: [10, 30] (60), [20] (20 + 50 -> 100), [50] alone, [5, 5, 5]
    out = token_budget_slices(lengths, max_rows=8, max_tokens=60)
    assert out == [slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 7)]
    # a row longer than the budget still gets its micro-batch; max_rows still holds
    assert token_budget_slices(torch.tensor([100, 1, 1, 1]), max_rows=2, max_tokens=10) == [
        slice(0, 1), slice(1, 3), slice(3, 4)]
    for budget in (1, 7, 64, 1000):
        slices = token_budget_slices(lengths, max_rows=4, max_tokens=budget)
        assert [i for s in slices for i in range(s.start, s.stop)] == list(range(7))
        for s in slices:
            n = s.stop - s.start
            assert n == 1 or n * int(lengths[s].max()) <= budget
    assert token_budget_slices(torch.tensor([], dtype=torch.long), max_rows=2, max_tokens=5) == []


# ------------------------------------------------------------------ chunked log-probs
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_completion_logprobs_match_full_logits(chunk):
    g = torch.Generator().manual_seed(0)
    B, T, H, V = 3, 9, 8, 50
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(H, V, bias=False).double()
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 4:] = True
    mask[1, 2:6] = True  # row 2: nothing
    want = torch.randn(B, T, generator=g, dtype=torch.float64)

    lp, ent = fn.token_logprobs_and_entropy(head(hidden), ids, mask)
    (lp * want + ent).sum().backward()
    grads = [hidden.grad.clone(), head.weight.grad.clone()]
    hidden.grad = head.weight.grad = None
    lp2, ent2 = fn.completion_logprobs_and_entropy(hidden, head, ids, mask, chunk_tokens=chunk)
    (lp2 * want + ent2).sum().backward()
    assert torch.allclose(lp2, lp) and torch.allclose(ent2, ent)
    assert torch.allclose(hidden.grad, grads[0]) and torch.allclose(head.weight.grad, grads[1])
    # A micro-batch whose rows were all filtered out still backpropagates (zero gradient).
    empty = torch.zeros(B, T, dtype=torch.bool)
    lp3, ent3 = fn.completion_logprobs_and_entropy(hidden, head, ids, empty, chunk_tokens=chunk)
    (lp3.sum() + ent3.sum()).backward()
    assert not lp3.any() and not ent3.any()
    with pytest.raises(ValueError, match="first token"):
        fn.completion_logprobs_and_entropy(hidden, head, ids, torch.ones(B, T, dtype=torch.bool))


# ------------------------------------------------------------------ no (B, T, V) float32 tensor
class _LargestFloat32(TorchDispatchMode):
    """Every op's float32 outputs, forward and backward: the most elements any one had."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                self.largest = max(self.largest, t.numel())
        return out


def _wide_vocab_model(vocab: int = 16384):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    return Qwen2ForCausalLM(config).eval()


def test_learner_never_allocates_rows_x_seq_x_vocab_float32():
    # 4 rows x 48 positions x 16384 vocab = 3.1M elements; the embeddings are 16384 x 16 = 262k.
    # With the LM head in chunks of 16 positions the largest float32 tensor is 16 x 16384 = 262k.
    # The bound (a quarter of B x T x V) separates the two paths by an order of magnitude.
    B, P, C, V = 4, 32, 16, 16384
    batch = rows_batch(group=[0, 0, 1, 1], traj=[0, 1, 2, 3], turn=[0, 0, 0, 0], success=[1, 0, 1, 0],
                       prompt_len=P, completion_len=C)
    bound = B * (P + C) * V // 4
    largest = {}
    for chunk in (16, 0):  # 0: the plain path, full logits
        cfg = _cfg("algorithm=grpo", f"algorithm.logit_chunk_tokens={chunk}", "algorithm.kl.coef=0.01",
                   "algorithm.activation_checkpointing=true")
        learner = Learner(_wide_vocab_model(V), cfg, total_steps=2, max_new_tokens=C)
        with _LargestFloat32() as tracker:
            metrics = learner.update(batch).metrics
        assert metrics["actor/optimizer_steps"] == 1
        largest[chunk] = tracker.largest
    assert largest[16] <= max(16 * V, V * 16) < bound, largest
    assert largest[0] >= B * (P + C) * V, largest  # the tracker sees the plain path's logits


# ------------------------------------------------------------------ same update, less memory
@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_budget_checkpointing_and_chunks_leave_the_gradient_unchanged(tiny_model_dir, algorithm):
    plain = _cfg(f"algorithm={algorithm}", "algorithm.logit_chunk_tokens=0")
    lean = dataclasses.replace(plain, logit_chunk_tokens=7, max_tokens_per_micro_batch=150,
                               activation_checkpointing=True)
    tokenizer = load_pretrained(tiny_model_dir)[1]
    batch = make_batch(tokenizer, groups=2, group_size=3, seed=5)
    assert len(token_budget_slices(batch.attention_mask.sum(1), max_rows=4, max_tokens=150)) > 3
    grads, metrics = [], []
    for cfg in (plain, lean):
        torch.manual_seed(0)
        model = load_pretrained(tiny_model_dir)[0]
        learner = Learner(model, cfg, total_steps=4, max_new_tokens=64,
                          tokenizer=tokenizer)
        metrics.append(learner.update(batch).metrics)  # one mini-batch: .grad is that step's gradient
        grads.append(torch.cat([p.grad.flatten() for p in learner._params]))
        assert learner._checkpointing == cfg.activation_checkpointing
        assert not model.training  # back in eval mode for generation
    assert grads[0].abs().max() > 0
    assert (grads[1] - grads[0]).abs().max() <= 1e-5 * grads[0].abs().max()
    for key in ("actor/loss_policy", "actor/entropy", "actor/grad_norm"):
        assert metrics[1][key] == pytest.approx(metrics[0][key], rel=1e-5, abs=1e-7), key


def test_split_lm_knows_qwen2_only(tiny_model):
    model, _ = tiny_model
    backbone, head = split_lm(model)
    assert backbone is model.model and head is model.lm_head
    assert split_lm(torch.nn.Linear(2, 2)) is None


# ------------------------------------------------------------------ precision
def _changed(learner, before):
    """Fraction of changed weights outside the input embedding, and of the embedding rows of
    tokens in the batch (the other rows get no gradient)."""
    changed = total = 0
    for name, p in learner.model.named_parameters():
        if "embed_tokens" in name:
            continue
        changed += int((p.detach() != before[name]).sum())
        total += p.numel()
    return changed / total


@pytest.mark.parametrize("pure", [False, True])
def test_bf16_compute_over_float32_master_moves_every_weight(tiny_model_dir, pure):
    # agent.dtype=bfloat16 at lr 1e-6: a float32 master under bf16 autocast changes essentially
    # every weight in one update; bf16 weights stepped by plain AdamW (the old behaviour) lose
    # most updates to rounding.
    cfg = _cfg("algorithm=grpo", "algorithm.lr=1e-6", "algorithm.kl.coef=0.01",
               f"algorithm.master_weights={'compute' if pure else 'float32'}")
    model, tokenizer = load_pretrained(tiny_model_dir, dtype="bfloat16" if pure else "float32")
    learner = Learner(model, cfg, total_steps=4, max_new_tokens=64, tokenizer=tokenizer,
                      compute_dtype="bfloat16")
    assert learner.parts["kl"].ref_model.dtype == torch.bfloat16  # the reference in the compute dtype
    batch = make_batch(tokenizer, groups=2, group_size=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = set()
    hook = model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda _m, _i, out: seen.add(out.dtype))
    metrics = learner.update(batch).metrics
    hook.remove()
    assert seen == {torch.bfloat16}  # the forward ran in bf16
    for key in ("actor/loss_policy", "actor/entropy", "actor/kl_ref"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    if pure:
        assert isinstance(learner.optimizer, StochasticRoundingAdamW)
        assert model.lm_head.weight.dtype == torch.bfloat16
        return
    assert model.lm_head.weight.dtype == torch.float32
    assert all(s["exp_avg"].dtype == torch.float32 for s in learner.optimizer.state.values())
    assert _changed(learner, before) > 0.99

    # The old behaviour, for contrast: the same step on bfloat16 weights with torch's AdamW.
    old_cfg = dataclasses.replace(cfg, master_weights="float32")
    old, _ = load_pretrained(tiny_model_dir, dtype="bfloat16")
    old_learner = Learner(old, old_cfg, total_steps=4, max_new_tokens=64, tokenizer=tokenizer)
    before = {n: p.detach().clone() for n, p in old.named_parameters()}
    old_learner.update(batch)
    assert _changed(old_learner, before) < 0.2


def test_stochastic_rounding_is_unbiased():
    torch.manual_seed(0)
    x = torch.full((200_000,), 1.0 + 2.0 ** -10)  # a quarter of the way to the next bf16
    r = stochastic_round(x, torch.bfloat16).float()
    assert set(r.unique().tolist()) == {1.0, 1.0 + 2.0 ** -7 * 1.0}
    assert r.mean().item() == pytest.approx(1.0 + 2.0 ** -10, abs=2e-5)
    assert torch.equal(stochastic_round(torch.tensor([1.5, -2.0]), torch.bfloat16).float(),
                       torch.tensor([1.5, -2.0]))


def test_activation_checkpointing_recomputes_the_layers(tiny_model_dir):
    from agentropy.algorithms.memory import enable_activation_checkpointing

    counts = []
    for on in (False, True):
        model, _ = load_pretrained(tiny_model_dir)
        if on:
            assert enable_activation_checkpointing(model)
        mlp, calls = model.model.layers[0].mlp, []
        forward = mlp.forward
        mlp.forward = lambda x, forward=forward, calls=calls: (calls.append(1), forward(x))[1]
        model.train()
        model.model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=False).last_hidden_state.sum().backward()
        counts.append(len(calls))
    assert counts == [1, 2]  # the backward pass ran the checkpointed layer again
