"""SPEAR's self-imitation replay, on the training device (arXiv 2509.22601; docs/algorithms.md section 7.3).

Three pieces, each with ``state_dict()`` / ``load_state_dict()``:

- :class:`ReplayBuffer`: step-rows (tokens, masks, behaviour log-probs, advantage, score, global
  step, group / trajectory / turn ids) in tensors preallocated once with a fixed row capacity
  and row width. Admission writes into free slots, then over the oldest rows; memory never
  grows.
- :class:`BaselineBuffer`: the per-group mean and std of trajectory scores of recent steps,
  whose medians are the replay baseline.
- :class:`SelfImitation`: SPEAR's rules over both: admit positive-advantage rows after each
  update and age them by global step; replay when more than ``trigger x batch_rows`` stored
  rows beat the median historical group mean; recalibrate their advantages against that median;
  subsample to a power of two; empty the buffer after each replay.

- :class:`ReplayPart`: the learner part (``replay``): per update it records the baseline, draws
  a replay batch that the learner trains on after each epoch's on-policy mini-batches (its own
  policy loss and clip-cov parameters, own optimizer steps, scaled by the rising curriculum),
  admits the step's rows, and reports the buffer's rows for ``RUN/replay.jsonl``.

Settings: :class:`agentropy.configs.schema.ReplayConfig`. SPEAR's tool-call bonus is a reward
setting (``algorithm.reward.tool_call_*``, :func:`agentropy.algorithms.advantages.reward_signals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from agentropy.algorithms import functional as fn
from agentropy.algorithms.data import TokenBatch
from agentropy.algorithms.parts import ExtraPass, LearnerPart, PartContext, Tally
from agentropy.algorithms.registry import LEARNER_PARTS, POLICY_LOSSES
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.algorithms.advantages import RewardSignals
    from agentropy.configs.schema import AlgorithmConfig, ReplayConfig

__all__ = ["ReplayBuffer", "BaselineBuffer", "SelfImitation", "ReplayPart", "group_score_stats"]

#: The per-row columns of a :class:`ReplayBuffer`, with their dtypes.
_ROW_COLUMNS = {
    "advantage": torch.float32,
    "score": torch.float32,
    "step": torch.long,
    "group_index": torch.long,
    "traj_index": torch.long,
    "turn_index": torch.long,
    "num_turns": torch.long,
    "inserted": torch.long,
}
#: The per-token columns, shape (capacity, seq_len).
_TOKEN_COLUMNS = {
    "input_ids": torch.int32,
    "attention_mask": torch.bool,
    "loss_mask": torch.bool,
    "logprobs": torch.float32,
}


class ReplayBuffer:
    """A fixed set of preallocated row slots on one device.

    Token columns (capacity, seq_len): ``input_ids`` int32, ``attention_mask`` and ``loss_mask``
    bool, ``logprobs`` float32 (the behaviour log-probs the row was trained with). Row columns
    (capacity,): ``advantage`` (the row's mean token advantage at admission), ``score``,
    ``step`` (global step of admission), ``group_index``, ``traj_index``, ``turn_index``,
    ``num_turns``, ``inserted`` (admission order) and ``valid``.

    Args:
        capacity: number of row slots.
        seq_len: token width of a slot; wider rows are refused.
        device: where the tensors live (the training device).
    """

    def __init__(self, capacity: int, seq_len: int, device: torch.device | str = "cpu") -> None:
        if capacity <= 0 or seq_len <= 0:
            raise ValueError(f"capacity and seq_len must be positive, got {capacity}, {seq_len}")
        self.capacity = capacity
        self.seq_len = seq_len
        self.device = torch.device(device)
        self.columns: dict[str, Tensor] = {
            name: torch.zeros(capacity, seq_len, dtype=dtype, device=self.device)
            for name, dtype in _TOKEN_COLUMNS.items()
        }
        self.columns.update({name: torch.zeros(capacity, dtype=dtype, device=self.device)
                             for name, dtype in _ROW_COLUMNS.items()})
        self.valid = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self._counter = 0

    def __len__(self) -> int:
        return int(self.valid.sum())

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated tensors."""
        tensors = [*self.columns.values(), self.valid]
        return sum(t.numel() * t.element_size() for t in tensors)

    def clear(self) -> None:
        self.valid.zero_()

    def remove_older_than(self, min_step: int) -> int:
        """Drop rows admitted before global step ``min_step``; returns how many went."""
        old = self.valid & (self.columns["step"] < min_step)
        self.valid &= ~old
        return int(old.sum())

    def add(
        self,
        batch: TokenBatch,
        rows: Tensor,
        *,
        logprobs: Tensor,
        advantage: Tensor,
        score: Tensor,
        step: int,
    ) -> int:
        """Store some rows of ``batch``; when slots run out the oldest stored rows are overwritten.

        Args:
            batch: the step's rows.
            rows: (n,) long indices into ``batch`` of the rows to store, in order; if n exceeds
                the capacity only the last ``capacity`` are kept.
            logprobs: (B, T) behaviour log-probs of ``batch``.
            advantage: (B,) the rows' advantages.
            score: (B,) the rows' scores.
            step: the global step.

        Returns:
            The number of rows stored.
        """
        if batch.seq_len > self.seq_len:
            raise ValueError(f"rows of {batch.seq_len} tokens do not fit the replay buffer's "
                             f"{self.seq_len}; raise the learner's max_seq_len")
        rows = rows.to(self.device)[-self.capacity:]
        n = int(rows.numel())
        if n == 0:
            return 0
        # Free slots first (key -1), then the oldest rows by admission order.
        key = torch.where(self.valid, self.columns["inserted"], torch.full_like(self.valid, -1,
                                                                               dtype=torch.long))
        slots = torch.argsort(key, stable=True)[:n]
        width = batch.seq_len
        tokens = {
            "input_ids": batch.input_ids[rows],
            "attention_mask": batch.attention_mask[rows],
            "loss_mask": batch.loss_mask[rows],
            "logprobs": logprobs[rows],
        }
        for name, value in tokens.items():
            column = self.columns[name]
            column[slots, :width] = value.to(device=self.device, dtype=column.dtype)
            if width < self.seq_len:
                column[slots, width:] = 0
        order = torch.arange(self._counter, self._counter + n, device=self.device)
        per_row = {
            "advantage": advantage[rows],
            "score": score[rows],
            "step": torch.full((n,), step, device=self.device),
            "group_index": batch.group_index[rows],
            "traj_index": batch.traj_index[rows],
            "turn_index": batch.turn_index[rows],
            "num_turns": batch.num_turns[rows],
            "inserted": order,
        }
        for name, value in per_row.items():
            self.columns[name][slots] = value.to(device=self.device, dtype=_ROW_COLUMNS[name])
        self.valid[slots] = True
        self._counter += n
        return n

    def slots(self) -> Tensor:
        """Indices of the stored rows, oldest first."""
        idx = torch.nonzero(self.valid).flatten()
        return idx[torch.argsort(self.columns["inserted"][idx], stable=True)]

    def token_batch(self, slots: Tensor, advantage: Tensor) -> TokenBatch:
        """The rows at ``slots`` as a :class:`TokenBatch` for the learner.

        ``old_logprobs`` and ``rollout_logprobs`` are the stored behaviour log-probs, the
        advantage is ``advantage`` (n,) broadcast over each row's completion tokens, and
        ``traj_index`` is made unique across steps. Columns that are padding in every row are
        trimmed.
        """
        c = {name: col[slots] for name, col in self.columns.items()}
        loss_mask = c["loss_mask"]
        attention = c["attention_mask"]
        length = attention.sum(-1)
        completion = loss_mask.sum(-1)
        first = torch.where(completion > 0, loss_mask.float().argmax(-1), length)
        _, traj = torch.unique(c["step"] * (1 << 32) + c["traj_index"], return_inverse=True)
        logprobs = c["logprobs"] * loss_mask
        n = int(slots.numel())
        batch = TokenBatch(
            input_ids=c["input_ids"].long(),
            attention_mask=attention.long(),
            loss_mask=loss_mask,
            rollout_logprobs=logprobs,
            group_index=c["group_index"],
            traj_index=traj,
            turn_index=c["turn_index"],
            num_turns=c["num_turns"],
            anchor_index=torch.zeros(n, dtype=torch.long, device=self.device),
            prompt_length=first,
            completion_length=completion,
            rewards=torch.zeros(n, device=self.device),
            episode_return=c["score"],
            success=torch.zeros(n, device=self.device),
            action_is_valid=torch.ones(n, dtype=torch.bool, device=self.device),
            completion_truncated=torch.zeros(n, dtype=torch.bool, device=self.device),
            old_logprobs=logprobs,
            advantages=advantage.to(logprobs.dtype)[:, None] * loss_mask,
        )
        return batch.trim()

    def snapshot(self) -> list[dict[str, float | int]]:
        """The stored rows, oldest first, for ``RUN/replay.jsonl`` and the viewer.

        Each row: ``step`` (global step of admission), ``traj_index`` (the trajectory's position
        in that step's batch; the trainer maps (step, traj_index) to the episode id), ``turn``,
        ``group_index``, ``advantage`` and ``score``.
        """
        idx = self.slots()
        names = {"step": "step", "traj_index": "traj_index", "turn_index": "turn",
                 "group_index": "group_index", "advantage": "advantage", "score": "score"}
        cols = {out: self.columns[name][idx].tolist() for name, out in names.items()}
        return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]

    def state_dict(self) -> dict[str, Any]:
        """The stored rows (only those), oldest first, and the admission counter."""
        idx = self.slots()
        width = int(self.columns["attention_mask"][idx].sum(-1).max()) if idx.numel() else 0
        state: dict[str, Any] = {"capacity": self.capacity, "seq_len": self.seq_len,
                                 "counter": self._counter}
        for name in _TOKEN_COLUMNS:
            state[name] = self.columns[name][idx, :width].clone()
        for name in _ROW_COLUMNS:
            state[name] = self.columns[name][idx].clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["step"].numel())
        width = int(state["input_ids"].shape[1])
        if n > self.capacity or width > self.seq_len:
            raise ValueError(f"checkpoint holds {n} rows of width {width}; this buffer has "
                             f"{self.capacity} slots of width {self.seq_len}")
        self.clear()
        for name in _TOKEN_COLUMNS:
            self.columns[name][:n].zero_()
            self.columns[name][:n, :width] = state[name].to(self.device)
        for name in _ROW_COLUMNS:
            self.columns[name][:n] = state[name].to(self.device)
        self.valid[:n] = True
        self._counter = int(state["counter"])


class BaselineBuffer:
    """Per-group mean and std of trajectory scores of recent steps, preallocated.

    Every step appends its groups; while more than ``capacity`` group entries are held, the
    oldest steps are dropped whole (SPEAR's ``baseline_buffer_size`` = 10240).
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.means = torch.zeros(capacity, device=self.device)
        self.stds = torch.zeros(capacity, device=self.device)
        self.steps = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, step: int, means: Tensor, stds: Tensor) -> None:
        """Append one step's group means and stds (both (G,))."""
        means, stds = means[-self.capacity:], stds[-self.capacity:]
        k = int(means.numel())
        excess = self.size + k - self.capacity
        if excess > 0:  # drop whole oldest steps until the new entries fit
            cut_step = self.steps[excess - 1]
            cut = int((self.steps[: self.size] <= cut_step).sum())
            keep = self.size - cut
            for t in (self.means, self.stds, self.steps):
                t[:keep] = t[cut:self.size].clone()
            self.size = keep
        s = self.size
        self.means[s:s + k] = means.to(self.device, torch.float32)
        self.stds[s:s + k] = stds.to(self.device, torch.float32)
        self.steps[s:s + k] = step
        self.size = s + k

    def median_mean(self) -> float | None:
        """P50 of the stored group means (linear interpolation), or None when empty."""
        return float(torch.quantile(self.means[: self.size], 0.5)) if self.size else None

    def median_std(self) -> float | None:
        return float(torch.quantile(self.stds[: self.size], 0.5)) if self.size else None

    def state_dict(self) -> dict[str, Any]:
        s = self.size
        return {"means": self.means[:s].clone(), "stds": self.stds[:s].clone(),
                "steps": self.steps[:s].clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["means"].numel())
        if n > self.capacity:
            raise ValueError(f"checkpoint holds {n} group entries; capacity is {self.capacity}")
        self.means[:n] = state["means"].to(self.device)
        self.stds[:n] = state["stds"].to(self.device)
        self.steps[:n] = state["steps"].to(self.device)
        self.size = n


def group_score_stats(scores: Tensor, traj_index: Tensor, group_index: Tensor) -> tuple[Tensor, Tensor]:
    """Per-group mean and unbiased std of trajectory scores (a trajectory's score is the mean
    of its rows' scores; a group of one trajectory has std 0).

    Returns:
        ``(means, stds)``, each (G,) over the groups present, in group-id order.
    """
    _, traj_score, traj_group = fn.trajectory_scores(scores, traj_index, group_index)
    groups, first = torch.unique(traj_group, return_inverse=True)
    mean, std, _ = fn.group_stats(traj_score, traj_group)
    out_mean = torch.zeros(groups.numel(), dtype=scores.dtype, device=scores.device)
    out_std = torch.zeros_like(out_mean)
    out_mean[first] = mean
    out_std[first] = std
    return out_mean, out_std


class SelfImitation:
    """SPEAR's replay rules over a :class:`ReplayBuffer` and a :class:`BaselineBuffer`.

    Per global step the learner calls :meth:`record_baseline` (this step's group means), then
    :meth:`draw` (a replay batch, or None), then trains, then :meth:`admit` (this step's rows).

    Args:
        cfg: the replay settings.
        seq_len: row width of the buffer (the longest prompt + completion).
        device: the training device.
        norm_by_std: recalibrated advantages are divided by the median group std (SPEAR does
            this only when GRPO's std normalisation is on; it is off in SPEAR's recipes).
    """

    def __init__(self, cfg: ReplayConfig, seq_len: int, device: torch.device | str,
                 *, norm_by_std: bool = False) -> None:
        self.cfg = cfg
        self.norm_by_std = norm_by_std
        self.buffer = ReplayBuffer(cfg.capacity, seq_len, device)
        self.baseline = BaselineBuffer(cfg.baseline_size, device)

    def record_baseline(self, step: int, scores: Tensor, batch: TokenBatch) -> None:
        means, stds = group_score_stats(scores, batch.traj_index, batch.group_index)
        self.baseline.add(step, means, stds)

    def effective_size(self) -> int:
        """Stored rows whose score is above the median historical group mean."""
        median = self.baseline.median_mean()
        if median is None:
            return 0
        return int((self.buffer.valid & (self.buffer.columns["score"] > median)).sum())

    def triggered(self) -> bool:
        return self.effective_size() > self.cfg.trigger * self.cfg.batch_rows

    def draw(self, generator: torch.Generator | None = None) -> TokenBatch | None:
        """If the trigger fires: the replay rows, and the buffer is emptied.

        Recalibrated advantage A~ = score - median(group means) (divided by the median group
        std when ``norm_by_std``); rows with A~ >= 0 are kept and subsampled at random to
        2^floor(log2 n) rows, at most ``batch_rows``. Without recalibration the stored
        advantage x ``advantage_scale`` is used.

        Returns:
            A :class:`TokenBatch` with ``old_logprobs`` and ``advantages`` set, or None when the
            trigger does not fire or no row qualifies.
        """
        if not self.triggered():
            return None
        slots = self.buffer.slots()
        if self.cfg.recalibrate:
            adv = self.buffer.columns["score"][slots] - self.baseline.median_mean()
            if self.norm_by_std:
                adv = adv / (self.baseline.median_std() + 1e-6)
            keep = adv >= 0
            slots, adv = slots[keep], adv[keep]
        else:
            adv = self.buffer.columns["advantage"][slots] * self.cfg.advantage_scale
        self.buffer.clear()
        n = int(slots.numel())
        if n == 0:
            return None
        m = min(2 ** int(math.floor(math.log2(n))), self.cfg.batch_rows)
        pick = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu")
        pick = pick.to(slots.device)[:m]
        return self.buffer.token_batch(slots[pick], adv[pick])

    def admit(self, batch: TokenBatch, scores: Tensor, step: int) -> int:
        """Age the buffer, then store the rows of ``batch`` with a positive advantage.

        Rows older than ``tolerate_steps`` global steps are dropped first. A row is admitted if
        its mean token advantage is > 0 and it has a loss token (after the response filters).

        Args:
            batch: the step's rows with ``advantages`` and ``old_logprobs`` set.
            scores: (B,) the rows' scores.
            step: the global step.

        Returns:
            The number of rows admitted.
        """
        self.buffer.remove_older_than(step - self.cfg.tolerate_steps)
        mask = batch.loss_mask
        tokens = mask.sum(-1)
        row_adv = (batch.advantages * mask).sum(-1) / tokens.clamp_min(1)
        rows = torch.nonzero((row_adv > 0) & (tokens > 0)).flatten()
        return self.buffer.add(batch, rows, logprobs=batch.old_logprobs, advantage=row_adv,
                               score=scores, step=step)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "baseline": self.baseline.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.baseline.load_state_dict(state["baseline"])


class ReplayPart(LearnerPart):
    """SPEAR's self-imitation as a learner part (module docstring).

    Args:
        cfg: the algorithm (``replay``, and ``group.norm_by_std`` for recalibration).
        ctx: the device, the row width (``max_seq_len``) and the learner's random source.
    """

    def __init__(self, cfg: AlgorithmConfig, ctx: PartContext) -> None:
        if ctx.max_seq_len is None:
            raise ValueError("algorithm.replay needs max_seq_len (the replay buffer's row width)")
        self.cfg = cfg.replay
        self.imitation = SelfImitation(cfg.replay, ctx.max_seq_len, ctx.device,
                                       norm_by_std=cfg.group.norm_by_std)
        self.loss_fn = POLICY_LOSSES.get(cfg.replay.policy_loss.name)
        self.generator = ctx.generator
        self.labels: dict[int, list[str]] = {}  # global step -> trajectory labels of its batch
        self._passes: list[ExtraPass] = []

    def before_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally,
                      labels: Sequence[str] | None) -> None:
        coef = self.cfg.loss_coef * fn.cosine_rise(step, self.cfg.loss_steps)
        self.labels[step] = list(labels or ())
        self.imitation.record_baseline(step, signals.scores, batch)
        tally.add("replay/size", len(self.imitation.buffer))
        tally.add("replay/effective", self.imitation.effective_size())
        tally.add("replay/coef", coef)
        drawn = self.imitation.draw(self.generator)
        tally.add("replay/rows", 0 if drawn is None else drawn.batch_size)
        self._passes = ([ExtraPass(drawn, self.loss_fn, self.cfg.policy_loss, coef, "replay")]
                        if drawn is not None and coef > 0 else [])

    def extra_passes(self) -> list[ExtraPass]:
        return self._passes

    def after_update(self, batch: TokenBatch, signals: RewardSignals, step: int, tally: Tally) -> None:
        self._passes = []
        tally.count("replay/admitted", self.imitation.admit(batch, signals.scores, step))
        # Keep the labels of the steps that still have rows in the buffer.
        live = {int(s) for s in self.imitation.buffer.columns["step"][self.imitation.buffer.valid].tolist()}
        self.labels = {s: v for s, v in self.labels.items() if s in live}

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """``replay``: the buffer's rows, oldest first: ``episode_id`` (the trajectory's label),
        ``turn``, ``advantage``, ``score`` and ``step`` (global step of admission)."""
        rows = []
        for r in self.imitation.buffer.snapshot():
            ids = self.labels.get(int(r["step"]), [])
            ti = int(r["traj_index"])
            rows.append({"episode_id": ids[ti] if ti < len(ids) else "", "turn": int(r["turn"]),
                         "advantage": float(r["advantage"]), "score": float(r["score"]),
                         "step": int(r["step"])})
        return {"replay": rows}

    def state_dict(self) -> dict[str, Any]:
        return {"replay": {**self.imitation.state_dict(), "labels": self.labels}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.imitation.load_state_dict(state["replay"])
        self.labels = {int(k): list(v) for k, v in state["replay"].get("labels", {}).items()}


@LEARNER_PARTS.register("replay")
def _replay(cfg: AlgorithmConfig, ctx: PartContext) -> ReplayPart | None:
    return ReplayPart(cfg, ctx) if cfg.replay.enabled else None
