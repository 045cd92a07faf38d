"""The data model: Turn / Trajectory / collate, and the invariances a loss relies on."""

from __future__ import annotations

import random

import pytest
import torch
from agentropy.algorithms.data import Trajectory, Turn, collate
from agentropy.algorithms.functional import aggregate, token_logprobs

PAD = 0


def _turn(rng: random.Random, obs: str = "", reward: float = 0.0, vocab: int = 1000) -> Turn:
    p, c = rng.randint(3, 12), rng.randint(1, 6)
    return Turn(
        prompt_ids=tuple(rng.randrange(3, vocab) for _ in range(p)),
        completion_ids=tuple(rng.randrange(3, vocab) for _ in range(c)),
        completion_logprobs=tuple(-rng.random() for _ in range(c)),
        reward=reward,
        action_is_valid=rng.random() > 0.2,
        observation=obs,
        finish_reason=rng.choice(["stop", "length"]),
    )


def _trajectories(seed: int = 0, n: int = 5, vocab: int = 1000) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(1, 4)
        turns = tuple(
            _turn(rng, obs=f"room {rng.randint(0, 2)}", reward=float(t == k - 1), vocab=vocab)
            for t in range(k)
        )
        out.append(
            Trajectory(env_id="agentropy/TWX-v0", seed=i // 2, group_id=i // 2, policy_version=3,
                       turns=turns, won=bool(i % 2))
        )
    return out


def test_collate_layout_by_hand():
    t1 = Turn(prompt_ids=(5, 6, 7), completion_ids=(8, 9), completion_logprobs=(-0.5, -0.25),
              reward=0.0, action_is_valid=True, observation="a")
    t2 = Turn(prompt_ids=(5, 6), completion_ids=(4,), completion_logprobs=(-1.0,),
              reward=1.0, action_is_valid=False, observation="b", finish_reason="length")
    t3 = Turn(prompt_ids=(1,), completion_ids=(2,), completion_logprobs=(-2.0,),
              reward=0.5, action_is_valid=True, observation="a")
    a = Trajectory(env_id="e", seed=1, group_id=7, policy_version=0, turns=(t1, t2), won=True)
    b = Trajectory(env_id="e", seed=1, group_id=7, policy_version=0, turns=(t3,))
    batch = collate([a, b], pad_token_id=PAD)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 6, 4, 0, 0], [1, 2, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert batch.loss_mask.tolist() == [
        [False, False, False, True, True],
        [False, False, True, False, False],
        [False, True, False, False, False],
    ]
    assert batch.rollout_logprobs.tolist() == [
        [0, 0, 0, -0.5, -0.25], [0, 0, -1.0, 0, 0], [0, -2.0, 0, 0, 0]
    ]
    assert batch.group_index.tolist() == [7, 7, 7]
    assert batch.traj_index.tolist() == [0, 0, 1]
    assert batch.turn_index.tolist() == [0, 1, 0]
    assert batch.num_turns.tolist() == [2, 2, 1]
    # Same group and same observation text -> same anchor ("a" in both trajectories).
    assert batch.anchor_index.tolist() == [0, 1, 0]
    assert batch.rewards.tolist() == [0.0, 1.0, 0.5]
    assert batch.episode_return.tolist() == [1.0, 1.0, 0.5]
    assert batch.success.tolist() == [1.0, 1.0, 0.0]
    assert batch.action_is_valid.tolist() == [True, False, True]
    assert batch.completion_truncated.tolist() == [False, True, False]
    assert batch.prompt_length.tolist() == [3, 2, 1]
    assert batch.completion_length.tolist() == [2, 1, 1]


def test_turn_rejects_missing_logprobs():
    with pytest.raises(ValueError, match="logprobs"):
        Turn(prompt_ids=(1,), completion_ids=(2, 3), completion_logprobs=(-1.0,), reward=0.0,
             action_is_valid=True)


def test_collate_rejects_empty_and_too_long():
    with pytest.raises(ValueError, match="no turns"):
        collate([Trajectory("e", 0, 0, 0, turns=())], pad_token_id=PAD)
    with pytest.raises(ValueError, match="max_length"):
        collate(_trajectories(), pad_token_id=PAD, max_length=4)


def _loss_view(model, batch, mode):
    """What a policy-gradient loss sees: masked per-token logprobs and an aggregated loss."""
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp = token_logprobs(logits, batch.input_ids)
    adv = (batch.episode_return - 0.5)[:, None].expand_as(logp)
    loss = -(adv * logp)
    return logp * batch.loss_mask, aggregate(loss, batch.loss_mask, mode)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_padding_does_not_change_the_loss(tiny_model, mode):
    model, tokenizer = tiny_model
    batch = collate(_trajectories(vocab=len(tokenizer)), pad_token_id=tokenizer.pad_token_id)
    padded = batch.pad_to(batch.seq_len + 9, tokenizer.pad_token_id)
    logp, loss = _loss_view(model, batch, mode)
    logp_p, loss_p = _loss_view(model, padded, mode)
    torch.testing.assert_close(logp_p[:, : batch.seq_len], logp, atol=1e-5, rtol=1e-5)
    assert logp_p[:, batch.seq_len :].abs().sum() == 0
    torch.testing.assert_close(loss_p, loss, atol=1e-5, rtol=1e-5)
    # trim() undoes pad_to().
    assert torch.equal(padded.trim().input_ids, batch.input_ids)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                                  "seq-mean-token-sum-norm"])
def test_row_order_does_not_change_the_loss(tiny_model, mode):
    model, tokenizer = tiny_model
    trajs = _trajectories(seed=1, n=6, vocab=len(tokenizer))
    batch = collate(trajs, pad_token_id=tokenizer.pad_token_id)
    shuffled = list(trajs)
    random.Random(5).shuffle(shuffled)
    batch_s = collate(shuffled, pad_token_id=tokenizer.pad_token_id)
    _, loss = _loss_view(model, batch, mode)
    _, loss_s = _loss_view(model, batch_s, mode)
    torch.testing.assert_close(loss_s, loss, atol=1e-5, rtol=1e-5)
    # Rows within a batch can also be permuted freely.
    perm = torch.randperm(batch.batch_size, generator=torch.Generator().manual_seed(0))
    _, loss_p = _loss_view(model, batch.select(perm), mode)
    torch.testing.assert_close(loss_p, loss, atol=1e-5, rtol=1e-5)


def test_group_and_anchor_indices_follow_their_rows():
    trajs = _trajectories(seed=2, n=6)
    batch = collate(trajs, pad_token_id=PAD)
    for r in range(batch.batch_size):
        traj = trajs[int(batch.traj_index[r])]
        turn = traj.turns[int(batch.turn_index[r])]
        assert int(batch.group_index[r]) == traj.group_id
        n = len(turn.prompt_ids) + len(turn.completion_ids)
        assert batch.input_ids[r, :n].tolist() == list(turn.prompt_ids + turn.completion_ids)
    # Rows share an anchor exactly when they share group and observation text.
    keys = [(trajs[int(batch.traj_index[r])].group_id,
             trajs[int(batch.traj_index[r])].turns[int(batch.turn_index[r])].observation)
            for r in range(batch.batch_size)]
    for i in range(batch.batch_size):
        for j in range(batch.batch_size):
            assert (keys[i] == keys[j]) == (int(batch.anchor_index[i]) == int(batch.anchor_index[j]))


def test_rollout_logprobs_line_up_with_a_forward_pass(tiny_model):
    """Logprobs stored at the positions of their tokens agree with token_logprobs' alignment."""
    model, tokenizer = tiny_model
    prompt = tuple(tokenizer.apply_chat_template([{"role": "user", "content": "take coin"}],
                                                 add_generation_prompt=True, tokenize=True,
                                                 return_dict=False))
    completion = tuple(tokenizer("<action>take coin</action>").input_ids) + (tokenizer.eos_token_id,)
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = token_logprobs(model(input_ids=ids).logits, ids)[0, len(prompt):]
    turn = Turn(prompt_ids=prompt, completion_ids=completion,
                completion_logprobs=tuple(logp.tolist()), reward=0.0, action_is_valid=True)
    batch = collate([Trajectory("e", 0, 0, 0, turns=(turn,))], pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        again = token_logprobs(model(input_ids=batch.input_ids).logits, batch.input_ids)
    torch.testing.assert_close(again[batch.loss_mask], batch.rollout_logprobs[batch.loss_mask])


def test_batch_select_replace_to():
    batch = collate(_trajectories(), pad_token_id=PAD)
    adv = torch.arange(batch.batch_size, dtype=torch.float32)[:, None].expand(-1, batch.seq_len)
    with_adv = batch.replace(advantages=adv)
    assert batch.advantages is None and with_adv.advantages is adv
    sub = with_adv.select([2, 0])
    assert sub.batch_size == 2 and sub.advantages[:, 0].tolist() == [2.0, 0.0]
    assert sub.to("cpu").input_ids.device.type == "cpu"
    with pytest.raises(ValueError, match="rows"):
        batch.replace(advantages=adv[:1])
