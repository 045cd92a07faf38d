"""The data that flows from rollout to learner.

Text and ragged structure live in frozen dataclasses (:class:`Turn`, :class:`Trajectory`); only
tensors go into a :class:`TokenBatch`. The layout follows the step-independent multi-turn design
of verl-agent (docs/algorithms.md section 0): every (episode, turn) pair is one training row whose
tokens are that turn's prompt followed by the completion the policy sampled for it.

Token ids in, token ids out: ``Turn.prompt_ids`` and ``Turn.completion_ids`` are exactly the ids
the rollout engine saw and sampled; nothing here decodes or re-tokenizes text.

Example:
    >>> t = Turn(prompt_ids=(5, 6, 7), completion_ids=(8, 9), completion_logprobs=(-0.1, -0.2),
    ...          reward=1.0, action_is_valid=True)
    >>> traj = Trajectory(env_id="agentropy/TWX-v0", seed=3, group_id=0, policy_version=0, turns=(t,))
    >>> batch = collate([traj], pad_token_id=0)
    >>> batch.input_ids.tolist(), batch.loss_mask.tolist()
    ([[5, 6, 7, 8, 9]], [[False, False, False, True, True]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["Turn", "Trajectory", "TokenBatch", "collate"]


@dataclass(frozen=True)
class Turn:
    """One agent step: the prompt the policy saw, what it sampled, and what the env answered.

    Attributes:
        prompt_ids: token ids of the rendered prompt (chat template applied), never trained on.
        completion_ids: token ids the policy sampled, including a final EOS if it emitted one.
        completion_logprobs: sampling log-probabilities, one per completion token, from the
            rollout engine (the behaviour policy).
        reward: the environment's per-step reward for the action this turn sent.
        action_is_valid: False when the completion could not be parsed or the env refused it.
        observation: the raw environment observation (no history) the prompt was built from;
            GiGPO groups rows by it (its "anchor state").
        action: the command that was sent to the environment.
        prompt_text: the decoded prompt, for the episode record only.
        completion_text: the decoded completion, for the episode record only.
        invalid_reason: why the turn is invalid ("" when it is valid).
        finish_reason: the engine's reason to stop generating ("stop" or "length").
        terminated: the env ended the episode at this step (won or lost).
        truncated: the turn limit ended the episode at this step.
        mean_entropy: mean token entropy of the completion under the sampling policy, if known.
        mean_temperature: mean sampling temperature of the completion's tokens when they were
            sampled at per-token temperatures (HAPO); None otherwise.
        trainable: False when the backend could not return the sampled ids and their
            log-probabilities (a chat-only API): the turn is a record, never a training row.
    """

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    completion_logprobs: tuple[float, ...]
    reward: float
    action_is_valid: bool
    observation: str = ""
    action: str = ""
    prompt_text: str = ""
    completion_text: str = ""
    invalid_reason: str = ""
    finish_reason: str = "stop"
    terminated: bool = False
    truncated: bool = False
    mean_entropy: float | None = None
    trainable: bool = True
    mean_temperature: float | None = None

    @property
    def format_ok(self) -> bool:
        """The completion passed the agent's format check. The rollout writes ``"format: ..."``
        and ``"env: ..."`` reasons; an invalid turn without a reason counts as a format failure."""
        return self.action_is_valid or (bool(self.invalid_reason) and "format:" not in self.invalid_reason)

    def __post_init__(self) -> None:
        if len(self.completion_logprobs) != len(self.completion_ids):
            raise ValueError(
                f"Turn has {len(self.completion_ids)} completion tokens but "
                f"{len(self.completion_logprobs)} logprobs; a backend must return one logprob "
                "per sampled token (never pad missing logprobs)"
            )
        if not self.prompt_ids:
            raise ValueError("Turn.prompt_ids is empty")

    @property
    def logprob_sum(self) -> float:
        return float(sum(self.completion_logprobs))


@dataclass(frozen=True)
class Trajectory:
    """One episode played by the policy in one environment.

    Attributes:
        env_id: the Gymnasium id, e.g. ``"agentropy/TWX-v0"``.
        seed: the seed passed to ``reset``; with ``options`` and ``env_kwargs`` it fixes the task.
        group_id: trajectories with the same group id played the same task (a GRPO group).
        policy_version: the version of the weights that sampled every turn.
        turns: the agent steps, in order.
        env_kwargs: keyword arguments given to ``gymnasium.make``.
        options: the ``options`` given to ``reset``.
        task: the task description text.
        task_id: a stable identifier of the task (family, split and index).
        won: the environment reported success at the end.
        score: the environment's final score in [0, 1].
        episode_id: unique id of the episode in its run.
        failure: why the episode could not be completed ("" when it was); e.g. a dead worker.
        parent_id: the episode this one branched from in a branching rollout
            (:class:`agentropy.algorithms.rollout.BranchRule`); "" for an episode started from reset.
        fork_turn: how many leading turns a branch replayed from its parent: ``turns[:fork_turn]``
            are the parent's turns (same actions, same observations), the rest its own; 0 for
            an episode started from reset.
        train_from: :func:`collate` makes training rows of ``turns[train_from:]`` only; a branch
            whose shared prefix is trained once, in its parent, sets it to ``fork_turn``.
        fixed_advantage: the advantage every completion token of this episode is trained with,
            whatever the estimator gives, or None (the estimator's); a learner part sets it in
            :meth:`agentropy.algorithms.parts.LearnerPart.merge_rollouts` (AEPO-T's REINFORCE
            episodes get 1).
    """

    env_id: str
    seed: int | None
    group_id: int
    policy_version: int
    turns: tuple[Turn, ...]
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    task: str = ""
    task_id: str = ""
    won: bool = False
    score: float = 0.0
    episode_id: str = ""
    failure: str = ""
    parent_id: str = ""
    fork_turn: int = 0
    train_from: int = 0
    fixed_advantage: float | None = None

    @property
    def length(self) -> int:
        return len(self.turns)

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    @property
    def num_invalid(self) -> int:
        return sum(not t.action_is_valid for t in self.turns)

    @property
    def terminated(self) -> bool:
        return bool(self.turns) and self.turns[-1].terminated

    @property
    def trainable(self) -> bool:
        """Every turn carries the sampled ids and their log-probabilities."""
        return all(t.trainable for t in self.turns)

    @property
    def truncated(self) -> bool:
        return bool(self.turns) and self.turns[-1].truncated


@dataclass(frozen=True)
class TokenBatch:
    """Rows of prompt + completion tokens, one row per turn, right-padded.

    Token tensors, shape (B, T):
        input_ids: long; prompt ids then completion ids, then ``pad_token_id``.
        attention_mask: long; 1 on prompt and completion tokens, 0 on padding.
        loss_mask: bool; True on completion tokens only (what the policy sampled).
        rollout_logprobs: float32; at position t the sampling log-prob of ``input_ids[:, t]``
            (so it lines up with :func:`agentropy.algorithms.functional.token_logprobs`); 0 where
            ``loss_mask`` is False.

    Row tensors, shape (B,):
        group_index: long; the trajectory's ``group_id`` (rows of one GRPO group share it).
        traj_index: long; position of the row's trajectory in the list given to :func:`collate`.
        turn_index: long; 0-based turn number within the trajectory.
        num_turns: long; number of turns of the row's trajectory.
        anchor_index: long; rows of the same group whose turn observation is the same text share
            an anchor id (GiGPO's anchor-state groups); ids are dense from 0.
        prompt_length: long; number of prompt tokens.
        completion_length: long; number of completion tokens.
        rewards: float32; the env reward of this turn.
        episode_return: float32; the sum of env rewards over the row's trajectory.
        success: float32; 1.0 if the row's trajectory was won, else 0.0.
        action_is_valid: bool; the turn's action was valid.
        completion_truncated: bool; generation stopped at the token limit (finish "length").
        format_is_valid: bool or None; the completion passed the agent's format check (its
            action may still be refused by the env); None when unknown (``action_is_valid``
            stands in).
        fixed_advantage: float32 or None; the row's trajectory's ``fixed_advantage``, NaN where
            it has none; None when no trajectory has one. The learner keeps such rows through
            the group filter and gives every completion token of them this advantage.

    Tensors the learner adds later with :meth:`replace` (None until then), shape (B, T):
        old_logprobs, ref_logprobs, values, advantages, returns.

    ``columns``: tensors the learner's parts fill in the old-policy pass, by name
    (:meth:`agentropy.algorithms.parts.LearnerPart.old_columns`, e.g. ``old_entropy``); rows
    and token columns follow the batch through :meth:`select`, :meth:`trim`, :meth:`pad_to`.
    :meth:`replace` puts a name that is not a field here.
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    rollout_logprobs: Tensor
    group_index: Tensor
    traj_index: Tensor
    turn_index: Tensor
    num_turns: Tensor
    anchor_index: Tensor
    prompt_length: Tensor
    completion_length: Tensor
    rewards: Tensor
    episode_return: Tensor
    success: Tensor
    action_is_valid: Tensor
    completion_truncated: Tensor
    old_logprobs: Tensor | None = None
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None
    advantages: Tensor | None = None
    returns: Tensor | None = None
    format_is_valid: Tensor | None = None
    fixed_advantage: Tensor | None = None
    columns: Mapping[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    def tensors(self) -> dict[str, Tensor]:
        """All tensors that are set, by key."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "columns" and getattr(self, f.name) is not None
        }

    def _map(self, fn) -> TokenBatch:
        """A copy with ``fn(key, tensor)`` applied to every tensor, the part columns included."""
        return dataclasses.replace(self, **{k: fn(k, v) for k, v in self.tensors().items()},
                                   columns={k: fn(k, v) for k, v in self.columns.items()})

    def replace(self, **tensors: Tensor | None) -> TokenBatch:
        """A copy with some tensors set, e.g. ``batch.replace(advantages=adv)``; a name that is
        not a field sets a part column."""
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in tensors.items():
            if value is not None and value.shape[0] != self.batch_size:
                raise ValueError(f"{key} has {value.shape[0]} rows, batch has {self.batch_size}")
        columns = {k: v for k, v in tensors.items() if k not in names}
        fields = {k: v for k, v in tensors.items() if k in names}
        if columns:
            fields["columns"] = {**self.columns, **{k: v for k, v in columns.items() if v is not None}}
        return dataclasses.replace(self, **fields)

    def to(self, device: torch.device | str) -> TokenBatch:
        return self._map(lambda _, v: v.to(device))

    def select(self, rows: Tensor | Sequence[int] | slice) -> TokenBatch:
        """The rows given by an index tensor, a list of indices or a slice."""
        if not isinstance(rows, slice | Tensor):
            rows = torch.as_tensor(list(rows), dtype=torch.long)
        return self._map(lambda _, v: v[rows])

    def trim(self) -> TokenBatch:
        """Drop trailing columns that are padding in every row."""
        width = int(self.attention_mask.sum(dim=1).max()) if self.batch_size else 0
        if width == self.seq_len:
            return self
        return self._map(lambda _, v: v[:, :width] if v.dim() == 2 else v)

    def pad_to(self, seq_len: int, pad_token_id: int) -> TokenBatch:
        """Right-pad every (B, T) tensor to ``seq_len`` columns."""
        extra = seq_len - self.seq_len
        if extra < 0:
            raise ValueError(f"cannot pad a batch of length {self.seq_len} to {seq_len}")

        def pad(key: str, value: Tensor) -> Tensor:
            if value.dim() != 2:
                return value
            fill = pad_token_id if key == "input_ids" else 0
            return torch.nn.functional.pad(value, (0, extra), value=fill)

        return self._map(pad)


def collate(
    trajectories: Sequence[Trajectory],
    *,
    pad_token_id: int,
    max_length: int | None = None,
) -> TokenBatch:
    """Make one training row per turn of every trajectory (from its ``train_from`` turn on).

    Args:
        trajectories: the episodes, in any order; row order follows them turn by turn.
        pad_token_id: id written into padding positions of ``input_ids``.
        max_length: if given, a row longer than this raises ``ValueError`` (prompts are cut
            by the prompt builder, never here).

    Returns:
        A :class:`TokenBatch` with B = total number of turns (less the turns before each
        trajectory's ``train_from``) and T = the longest row; ``turn_index`` keeps each row's
        turn number within its trajectory.

    Raises:
        ValueError: a trajectory is not trainable (played through an API that returns text
            only, e.g. ``agent.backend=openai`` with ``agent.openai.api=chat``).
    """
    for traj in trajectories:
        if not traj.trainable:
            raise ValueError(
                f"episode {traj.episode_id or '?'} cannot be trained on: its backend returned text "
                "without the sampled token ids and log-probabilities (a chat-only API); play it "
                "through a completions endpoint that returns them (agent.openai.api=completions on "
                "vLLM) or a local backend (hf, vllm)"
            )
    rows: list[tuple[int, int, Trajectory, Turn]] = [
        (ti, k, traj, turn)
        for ti, traj in enumerate(trajectories)
        for k, turn in enumerate(traj.turns)
        if k >= traj.train_from
    ]
    if not rows:
        raise ValueError("collate() got no turns: every trajectory is empty")
    lengths = [len(turn.prompt_ids) + len(turn.completion_ids) for _, _, _, turn in rows]
    width = max(lengths)
    if max_length is not None and width > max_length:
        raise ValueError(f"a row has {width} tokens, more than max_length={max_length}")

    n = len(rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.bool)
    rollout_logprobs = torch.zeros((n, width), dtype=torch.float32)
    anchors: dict[tuple[int, str], int] = {}
    anchor_index = []
    for r, (_, _, traj, turn) in enumerate(rows):
        p, c = len(turn.prompt_ids), len(turn.completion_ids)
        input_ids[r, : p + c] = torch.tensor(turn.prompt_ids + turn.completion_ids)
        attention_mask[r, : p + c] = 1
        loss_mask[r, p : p + c] = True
        if c:
            rollout_logprobs[r, p : p + c] = torch.tensor(turn.completion_logprobs)
        anchor_index.append(anchors.setdefault((traj.group_id, turn.observation), len(anchors)))

    def column(values: Sequence[Any], dtype: torch.dtype) -> Tensor:
        return torch.tensor(list(values), dtype=dtype)

    fixed = None
    if any(traj.fixed_advantage is not None for traj in trajectories):
        nan = float("nan")
        fixed = column((nan if traj.fixed_advantage is None else traj.fixed_advantage
                        for _, _, traj, _ in rows), torch.float32)

    return TokenBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_mask=loss_mask,
        rollout_logprobs=rollout_logprobs,
        group_index=column((traj.group_id for _, _, traj, _ in rows), torch.long),
        traj_index=column((ti for ti, _, _, _ in rows), torch.long),
        turn_index=column((k for _, k, _, _ in rows), torch.long),
        num_turns=column((traj.length for _, _, traj, _ in rows), torch.long),
        anchor_index=column(anchor_index, torch.long),
        prompt_length=column((len(t.prompt_ids) for *_, t in rows), torch.long),
        completion_length=column((len(t.completion_ids) for *_, t in rows), torch.long),
        rewards=column((t.reward for *_, t in rows), torch.float32),
        episode_return=column((traj.total_reward for _, _, traj, _ in rows), torch.float32),
        success=column((float(traj.won) for _, _, traj, _ in rows), torch.float32),
        action_is_valid=column((t.action_is_valid for *_, t in rows), torch.bool),
        completion_truncated=column((t.finish_reason == "length" for *_, t in rows), torch.bool),
        format_is_valid=column((t.format_ok for *_, t in rows), torch.bool),
        fixed_advantage=fixed,
    )

