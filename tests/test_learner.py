"""The learner on the tiny model: one step of every algorithm config changes every trainable
parameter with a finite loss; micro-batching does not change the gradient; SPEAR replays from
its device buffer; checkpoints restore the whole learner; filters and the old-policy pass."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from pathlib import Path

import pytest
import torch
from agentropy.agents.tiny import load_pretrained
from agentropy.algorithms.learner import Learner
from agentropy.algorithms.value import Critic
from agentropy.configs.compose import load_config

from tests.learner_cases import make_batch, make_trajectories

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "algorithm"
ALGORITHMS = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
# AGENTROPY_LEARNER_EXTRA adds overrides to every test here, e.g. the memory settings:
# "algorithm.max_tokens_per_micro_batch=200 algorithm.activation_checkpointing=true".
SMALL = ["algorithm.mini_batch_size=64", "algorithm.micro_batch_size=4",
         "algorithm.replay.batch_rows=2", "algorithm.replay.capacity=64",
         *os.environ.get("AGENTROPY_LEARNER_EXTRA", "").split()]


def _cfg(*overrides: str):
    return load_config([*SMALL, *overrides]).algorithm


def _learner(model_dir, cfg, *, dtype=torch.float32, **kw):
    model, tokenizer = load_pretrained(model_dir)
    model = model.to(dtype)
    learner = Learner(model, cfg, total_steps=10, max_new_tokens=64, max_seq_len=256,
                      tokenizer=tokenizer, **kw)
    return learner, tokenizer


def _trainable(learner):
    named = dict(learner.model.named_parameters())
    critic = learner.parts.get("critic")
    for name in ("head", "critic"):
        if hasattr(critic, name):
            named.update({f"{name}.{n}": p for n, p in getattr(critic, name).named_parameters()})
    return {n: p for n, p in named.items() if p.requires_grad}


def test_every_algorithm_config_is_tested():
    assert ALGORITHMS == ["aepo_a", "aepo_t", "ares", "canon", "dapo", "drbot", "empg", "epo", "gigpo",
                          "grpo", "hapo", "lp_reg", "ppo", "siren", "spear", "steer"]


COMPOSED = [("epo", "ppo"), ("empg", "gigpo"), ("spear", "drbot"), ("steer", "gigpo"), ("lp_reg", "drbot"),
            ("ares", "gigpo")]


@pytest.mark.parametrize(("algorithm", "base"), [(a, None) for a in ALGORITHMS] + COMPOSED)
def test_one_step_changes_every_parameter(tiny_model_dir, algorithm, base):
    overrides = [f"algorithm={algorithm}"] + ([f"algorithm.base={base}"] if base else [])
    learner, tokenizer = _learner(tiny_model_dir, _cfg(*overrides))
    before = {n: p.detach().clone() for n, p in _trainable(learner).items()}
    batch = make_batch(tokenizer, groups=2, group_size=2)
    result = learner.update(batch)
    metrics = result.metrics
    unchanged = [n for n, p in _trainable(learner).items() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert metrics["actor/optimizer_steps"] == 1 and metrics["batch/rows"] > 0
    for key in ("actor/loss_policy", "actor/loss_entropy", "actor/entropy", "actor/grad_norm"):
        assert math.isfinite(metrics[key]), key
    assert metrics["adv/std"] > 0
    assert learner.step == 1
    assert result.row_advantages.shape == (batch.batch_size,)
    assert torch.isfinite(result.row_advantages).all()


def test_ppo_with_a_separate_critic(tiny_model_dir):
    critic_backbone, _ = load_pretrained(tiny_model_dir)
    learner, tokenizer = _learner(tiny_model_dir, _cfg("algorithm=ppo"),
                                  value_model=Critic(critic_backbone))
    assert not hasattr(learner.parts["critic"], "head") and learner.parts["critic"].critic is not None
    before = {n: p.detach().clone() for n, p in _trainable(learner).items()}
    metrics = learner.update(make_batch(tokenizer)).metrics
    assert not [n for n, p in _trainable(learner).items() if torch.equal(p, before[n])]
    assert math.isfinite(metrics["actor/loss_value"])


@pytest.mark.parametrize("algorithm", ["epo", "drbot", "ppo"])
def test_micro_batch_size_does_not_change_the_gradient(tiny_model_dir, algorithm):
    # One mini-batch of all rows, old log-probs perturbed so that clipping is active; the
    # accumulated gradient must be the same for micro-batches of 1, 3 and all rows (float64).
    base = _cfg(f"algorithm={algorithm}")
    learner, tokenizer = _learner(tiny_model_dir, base, dtype=torch.float64)
    batch = make_batch(tokenizer, groups=2, group_size=3, seed=5)
    g = torch.Generator().manual_seed(0)
    shape = batch.input_ids.shape
    noise = torch.randn(shape, generator=g, dtype=torch.float64) * 0.3
    mask = batch.loss_mask
    batch = batch.replace(
        old_logprobs=(batch.rollout_logprobs.double() + noise) * mask,
        ref_logprobs=(batch.rollout_logprobs.double() - noise) * mask,
        advantages=torch.randn(shape, generator=g, dtype=torch.float64) * mask,
        values=torch.randn(shape, generator=g, dtype=torch.float64) * mask,
        returns=torch.randn(shape, generator=g, dtype=torch.float64) * mask,
    )
    grads = []
    for micro in (1, 3, batch.batch_size):
        learner.cfg = dataclasses.replace(base, micro_batch_size=micro)
        learner.optimizer.zero_grad(set_to_none=True)
        learner.backward(batch)
        grads.append(torch.cat([p.grad.flatten() for p in learner._params if p.grad is not None]))
    assert grads[0].abs().max() > 0
    for other in grads[1:]:
        assert torch.allclose(other, grads[0], rtol=1e-9, atol=1e-12)


def test_spear_replays_rows_from_the_device_buffer(tiny_model_dir):
    # Step 0 admits the positive-advantage rows; at step 1 more than 0.5 x 2 of them beat the
    # median group mean, so 2 rows are replayed with their own optimizer step, scaled by
    # gamma_1 = (1 - cos(pi / 2)) / 2 = 0.5 (loss_steps 2), and the buffer is emptied first.
    cfg = _cfg("algorithm=spear", "algorithm.replay.trigger=0.5", "algorithm.replay.loss_steps=2")
    learner, tokenizer = _learner(tiny_model_dir, cfg)
    r0 = learner.update(make_batch(tokenizer, seed=0))
    m0 = r0.metrics
    assert m0["replay/rows"] == 0 and m0["replay/admitted"] > 0
    snapshot = r0.records["replay"]
    assert snapshot == learner.records()["replay"]
    assert len(snapshot) == m0["replay/admitted"] and all(r["step"] == 0 for r in snapshot)
    assert all(r["advantage"] > 0 for r in snapshot)
    r1 = learner.update(make_batch(tokenizer, seed=1))
    m1 = r1.metrics
    assert m1["replay/rows"] == 2 and m1["replay/optimizer_steps"] == 1
    assert m1["replay/coef"] == pytest.approx(0.5)
    assert math.isfinite(m1["replay/loss_policy"])
    assert all(r["step"] == 1 for r in r1.records["replay"])


def test_checkpoint_restores_the_whole_learner(tiny_model_dir, tmp_path):
    # Learner A: step on b0, checkpoint (the project's atomic checkpoint folder), step on b1.
    # Learner B: built fresh, loads A's weights and state, steps on b1: same metrics, same
    # weights, same replay buffer as A.
    from agentropy.algorithms.checkpoint import load_checkpoint, save_checkpoint

    cfg = _cfg("algorithm=spear", "algorithm.epo.enabled=true", "algorithm.replay.trigger=0.5",
               "algorithm.replay.loss_steps=2", "algorithm.lr_schedule=cosine",
               "algorithm.warmup_ratio=0.2")
    a, tokenizer = _learner(tiny_model_dir, cfg)
    b0, b1 = make_batch(tokenizer, seed=0), make_batch(tokenizer, seed=1)
    a.update(b0)
    path = save_checkpoint(tmp_path, 1, model_state=a.model.state_dict(),
                           state={"learner": a.state_dict()}, meta={})
    m_a = a.update(b1).metrics

    saved = load_checkpoint(path)
    b, _ = _learner(tiny_model_dir, cfg)
    b.model.load_state_dict(saved.model_state)
    b.load_state_dict(saved.state["learner"])
    assert b.step == 1 and b.parts["epo"].term.hist_mean == pytest.approx(m_a["epo/hist_entropy"])
    m_b = b.update(b1).metrics
    assert m_b.keys() == m_a.keys()
    for key, value in m_a.items():
        assert m_b[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-7), name
    assert a.records() == b.records()


def test_reference_is_the_initial_model_and_is_frozen(tiny_model_dir):
    learner, tokenizer = _learner(tiny_model_dir, _cfg("algorithm=grpo", "algorithm.lr=1e-3"))
    first = copy.deepcopy(learner.model.state_dict())
    learner.update(make_batch(tokenizer))
    ref_model = learner.parts["kl"].ref_model
    for name, p in ref_model.state_dict().items():
        assert torch.equal(p, first[name]), name
    assert not any(p.requires_grad for p in ref_model.parameters())
    metrics = learner.update(make_batch(tokenizer, seed=1)).metrics
    assert metrics["actor/kl_ref"] > 0


def test_response_and_group_filters(tiny_model_dir):
    # Dr.BoT: one incomplete and one truncated completion lose their loss; a group filter of
    # 0.5 over 2 groups keeps the group with the higher score std.
    import random

    from agentropy.algorithms.data import Trajectory, collate

    from tests.learner_cases import make_turn

    learner, tokenizer = _learner(tiny_model_dir, _cfg("algorithm=drbot"))
    trajs = make_trajectories(tokenizer, groups=2, group_size=2)
    rng = random.Random(0)
    bad = (make_turn(tokenizer, rng, "kitchen", reward=0.0, complete=False),
           make_turn(tokenizer, rng, "pantry", reward=0.0, finish="length"))
    trajs[1] = dataclasses.replace(trajs[1], turns=trajs[1].turns + bad)
    batch = collate(trajs, pad_token_id=tokenizer.pad_token_id)
    metrics = learner.update(batch).metrics
    assert metrics["batch/filtered_rows"] == 2 and metrics["batch/dropped_rows"] == 0

    cfg = _cfg("algorithm=drbot", "algorithm.filters.group_keep_ratio=0.5")
    learner, _ = _learner(tiny_model_dir, cfg)
    # Group 1: both lose (std 0); group 0: one wins, one loses -> group 1 is dropped.
    trajs = make_trajectories(tokenizer, groups=2, group_size=2)
    trajs[2] = dataclasses.replace(trajs[2], won=False)
    rows_group1 = sum(t.length for t in trajs[2:])
    result = learner.update(collate(trajs, pad_token_id=tokenizer.pad_token_id))
    assert result.metrics["batch/dropped_rows"] == rows_group1
    assert int(result.row_advantages.isnan().sum()) == rows_group1
    assert isinstance(trajs[0], Trajectory)


def test_rollout_logprobs_need_no_extra_forward_pass(tiny_model_dir):
    # old_logprobs=rollout, no KL, GRPO: the only forward passes are the training ones
    # (6 rows / micro-batch 4 -> 2); recompute adds one pass per micro-batch.
    for mode, expected in (("rollout", 2), ("recompute", 4)):
        learner, tokenizer = _learner(tiny_model_dir, _cfg("algorithm=grpo", "algorithm.kl.coef=0",
                                                           f"algorithm.old_logprobs={mode}"))
        calls = []
        hook = learner.model.model.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        batch = make_batch(tokenizer, groups=2, group_size=2, seed=3)
        batch = batch.select(list(range(6)))
        learner.update(batch)
        hook.remove()
        assert len(calls) == expected, mode


def test_learner_needs_what_its_config_asks_for(tiny_model_dir):
    model, _ = load_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="tokenizer"):
        Learner(model, _cfg("algorithm=drbot"), total_steps=1, max_new_tokens=8)
    with pytest.raises(ValueError, match="max_seq_len"):
        Learner(model, _cfg("algorithm=spear"), total_steps=1, max_new_tokens=8)
