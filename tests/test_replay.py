"""SPEAR's replay on the device: admission, ageing, capacity, baseline, recalibration, trigger,
sampling and the checkpoint round trip (numbers worked by hand in the comments)."""

from __future__ import annotations

import io

import pytest
import torch
from agentropy.algorithms.replay import BaselineBuffer, ReplayBuffer, SelfImitation, group_score_stats
from agentropy.configs.schema import ReplayConfig

from tests.learner_cases import rows_batch


def _batch(n: int, *, adv: list[float], traj=None, completion_len=2):
    b = rows_batch(group=[0] * n, traj=traj or list(range(n)), turn=[0] * n,
                   completion_len=completion_len)
    mask = b.loss_mask.float()
    return b.replace(advantages=torch.tensor(adv)[:, None] * mask, old_logprobs=b.rollout_logprobs)


def _si(**kw) -> SelfImitation:
    cfg = ReplayConfig(**{"enabled": True, "capacity": 8, "batch_rows": 2, "trigger": 0.5, **kw})
    return SelfImitation(cfg, seq_len=16, device="cpu")


def test_admission_takes_positive_advantage_rows_with_tokens():
    # Row advantages [0.5, -1, 0, 2, 3]; row 4 has no completion token (filtered) -> rows 0, 3.
    si = _si()
    b = _batch(5, adv=[0.5, -1, 0, 2, 3], completion_len=[2, 2, 2, 2, 0])
    assert si.admit(b, torch.tensor([1.0, 2, 3, 4, 5]), step=0) == 2
    snap = si.buffer.snapshot()
    assert set(snap[0]) == {"step", "traj_index", "turn", "group_index", "advantage", "score"}
    assert [r["traj_index"] for r in snap] == [0, 3]
    assert [r["score"] for r in snap] == [1.0, 4.0]
    assert [r["advantage"] for r in snap] == pytest.approx([0.5, 2.0])
    # The stored tokens, masks and behaviour log-probs are the rows' own.
    slots = si.buffer.slots()
    assert torch.equal(si.buffer.columns["input_ids"][slots[1], :5].long(), b.input_ids[3])
    assert torch.equal(si.buffer.columns["logprobs"][slots[1], :5], b.old_logprobs[3])


def test_ageing_by_global_step():
    # tolerate 2: at step 3 rows of steps < 1 go; rows of steps 1 and 2 stay.
    si = _si(tolerate_steps=2)
    for step in range(3):
        si.admit(_batch(1, adv=[1.0], traj=[step]), torch.tensor([float(step)]), step=step)
    si.admit(_batch(1, adv=[1.0], traj=[3]), torch.tensor([3.0]), step=3)
    assert [r["step"] for r in si.buffer.snapshot()] == [1, 2, 3]


def test_capacity_is_fixed_and_oldest_rows_go_first():
    buf = ReplayBuffer(capacity=4, seq_len=8)
    before = buf.nbytes
    ptrs = [t.data_ptr() for t in buf.columns.values()]
    for step in range(3):  # 3 x 3 rows into 4 slots
        b = _batch(3, adv=[1.0, 1.0, 1.0], traj=[10 * step, 10 * step + 1, 10 * step + 2])
        buf.add(b, torch.arange(3), logprobs=b.old_logprobs, advantage=torch.ones(3),
                score=torch.zeros(3), step=step)
    assert len(buf) == 4
    assert [r["traj_index"] for r in buf.snapshot()] == [12, 20, 21, 22]  # newest 4, in order
    assert buf.nbytes == before and ptrs == [t.data_ptr() for t in buf.columns.values()]
    with pytest.raises(ValueError, match="max_seq_len"):
        wide = _batch(1, adv=[1.0], completion_len=20)
        buf.add(wide, torch.arange(1), logprobs=wide.old_logprobs, advantage=torch.ones(1),
                score=torch.zeros(1), step=4)


def test_baseline_buffer_drops_whole_oldest_steps():
    # Capacity 5: step 0 adds 3 groups, step 1 adds 2 (5 held); step 2 adds 2 -> step 0's three
    # entries go whole, 4 remain: means [3, 4] of step 1 and [5, 6] of step 2.
    base = BaselineBuffer(capacity=5)
    base.add(0, torch.tensor([0.0, 1, 2]), torch.zeros(3))
    base.add(1, torch.tensor([3.0, 4]), torch.zeros(2))
    base.add(2, torch.tensor([5.0, 6]), torch.zeros(2))
    assert len(base) == 4
    assert base.means[:4].tolist() == [3, 4, 5, 6]
    # P50 with linear interpolation of [3, 4, 5, 6] = 4.5.
    assert base.median_mean() == pytest.approx(4.5)


def test_group_score_stats():
    # Group 0: trajectory 0 rows [10, 10] -> 10, trajectory 1 row [0] -> 0: mean 5, unbiased
    # std sqrt(50) = 7.0711. Group 3: one trajectory, rows [1, 3] -> 2: mean 2, std 0.
    means, stds = group_score_stats(torch.tensor([10.0, 10, 0, 1, 3]), torch.tensor([0, 0, 1, 2, 2]),
                                    torch.tensor([0, 0, 0, 3, 3]))
    assert means.tolist() == pytest.approx([5.0, 2.0])
    assert stds.tolist() == pytest.approx([7.0711, 0.0], abs=1e-4)


def test_trigger_recalibration_subsampling_and_reset():
    # Baseline group means [0, 2, 4] -> median 2. Stored scores [1, 3, 5, 2.5]: rows beating the
    # median: 3, 5, 2.5 -> effective size 3 > trigger 1.5 x batch_rows 2 = 3? No (not >).
    si = _si(trigger=1.5, batch_rows=2)
    si.baseline.add(0, torch.tensor([0.0, 2.0, 4.0]), torch.ones(3))
    b = _batch(4, adv=[1.0, 1.0, 1.0, 1.0])
    si.admit(b, torch.tensor([1.0, 3.0, 5.0, 2.5]), step=0)
    assert si.effective_size() == 3 and not si.triggered()
    assert si.draw(torch.Generator().manual_seed(0)) is None and len(si.buffer) == 4
    # One more row above the median: 4 > 3 fires. A~ = score - 2 = [-1, 1, 3, 0.5, 1]; rows with
    # A~ >= 0: 4 -> 2^floor(log2 4) = 4, capped at batch_rows 2 -> 2 rows, then the buffer is empty.
    si.admit(_batch(1, adv=[1.0], traj=[9]), torch.tensor([3.0]), step=0)
    assert si.triggered()
    replay = si.draw(torch.Generator().manual_seed(0))
    assert replay.batch_size == 2 and len(si.buffer) == 0
    row_adv = (replay.advantages * replay.loss_mask).sum(-1) / replay.loss_mask.sum(-1)
    assert set(row_adv.tolist()) <= {1.0, 3.0, 0.5}
    assert torch.equal(replay.old_logprobs, replay.rollout_logprobs)
    assert (replay.old_logprobs[replay.loss_mask] < 0).all()


def test_recalibration_keeps_non_negative_and_subsamples_to_power_of_two():
    # Median group mean 2; scores [1, 3, 5, 2] -> A~ [-1, 1, 3, 0]; 3 rows with A~ >= 0 ->
    # 2^floor(log2 3) = 2 rows (batch_rows 8 does not bind).
    si = _si(trigger=0.0, batch_rows=8, capacity=16)
    si.baseline.add(0, torch.tensor([0.0, 2.0, 4.0]), torch.ones(3))
    si.admit(_batch(4, adv=[1.0] * 4), torch.tensor([1.0, 3.0, 5.0, 2.0]), step=0)
    replay = si.draw(torch.Generator().manual_seed(3))
    row_adv = (replay.advantages * replay.loss_mask).sum(-1) / replay.loss_mask.sum(-1)
    assert replay.batch_size == 2 and set(row_adv.tolist()) <= {1.0, 3.0, 0.0}
    # Seeded: the same generator seed draws the same rows.
    si.admit(_batch(4, adv=[1.0] * 4), torch.tensor([1.0, 3.0, 5.0, 2.0]), step=0)
    again = si.draw(torch.Generator().manual_seed(3))
    assert torch.equal(again.input_ids, replay.input_ids)


def test_without_recalibration_scales_the_stored_advantage():
    si = _si(trigger=0.0, recalibrate=False, advantage_scale=0.5, batch_rows=1)
    si.baseline.add(0, torch.tensor([0.0]), torch.ones(1))
    si.admit(_batch(1, adv=[4.0]), torch.tensor([1.0]), step=0)
    replay = si.draw()
    assert replay.advantages[replay.loss_mask].tolist() == [2.0, 2.0]


def test_checkpoint_round_trip():
    si = _si(capacity=6)
    si.baseline.add(0, torch.tensor([0.5, 1.5]), torch.tensor([0.1, 0.2]))
    si.admit(_batch(3, adv=[1.0, 2.0, -1.0]), torch.tensor([1.0, 2.0, 3.0]), step=0)
    si.admit(_batch(2, adv=[0.5, 0.5], traj=[7, 8], completion_len=[1, 4]), torch.tensor([4.0, 5.0]),
             step=1)
    blob = io.BytesIO()
    torch.save(si.state_dict(), blob)
    blob.seek(0)
    other = _si(capacity=6)
    other.load_state_dict(torch.load(blob))
    assert other.buffer.snapshot() == si.buffer.snapshot()
    assert other.baseline.means[: len(other.baseline)].tolist() == [0.5, 1.5]
    a, b = si.buffer.slots(), other.buffer.slots()
    for name in ("input_ids", "attention_mask", "loss_mask", "logprobs"):
        assert torch.equal(si.buffer.columns[name][a], other.buffer.columns[name][b]), name
    # Admission order continues after the restore: a new row goes after the restored ones.
    other.admit(_batch(1, adv=[1.0], traj=[42]), torch.tensor([1.0]), step=2)
    assert other.buffer.snapshot()[-1]["traj_index"] == 42
    with pytest.raises(ValueError, match="slots"):
        _si(capacity=2).load_state_dict(si.state_dict())
