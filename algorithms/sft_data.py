"""SFT rows from a dataset on disk (``sft.dataset=PATH``): bring your own demonstrations.

``PATH`` is what ``agentropy export`` writes (its ``sft/`` folder is read), a folder of parquet
files, or one parquet file, with a ``prompt`` and a ``completion`` text column and optionally
``episode_id`` (rows of one episode become one trajectory, in file order; without it every row is
its own trajectory).

Token ids in, token ids out: the text is tokenized exactly as the scripted expert's turns are
(:mod:`agentropy.agents.backends.scripted` and :class:`agentropy.agents.prompts.PromptBuilder`):
the prompt text (chat template already applied) with ``add_special_tokens=False``; the
completion likewise, followed by the EOS id (the recorded completion text drops special tokens).
So an exported expert run trains on the same rows as the expert episodes it recorded.
"""

from __future__ import annotations

from pathlib import Path

from agentropy.algorithms.data import Trajectory, Turn

__all__ = ["load_sft_trajectories", "sft_parquet_files"]


def sft_parquet_files(path: str | Path) -> list[Path]:
    """The parquet files ``path`` names (see the module docstring).

    Raises:
        FileNotFoundError: nothing to read at ``path``.
    """
    p = Path(path)
    if p.is_dir() and (p / "sft").is_dir():
        p = p / "sft"
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
    else:
        files = [p] if p.suffix == ".parquet" and p.exists() else []
    if not files:
        raise FileNotFoundError(f"sft.dataset={path}: no parquet file there (run `agentropy export RUN OUT`)")
    return files


def load_sft_trajectories(path: str | Path, tokenizer, env_id: str = "dataset") -> list[Trajectory]:
    """Read SFT rows from ``path`` and tokenize them into trajectories (one per episode)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for f in sft_parquet_files(path):
        rows.extend(pq.read_table(f).to_pylist())
    for name in ("prompt", "completion"):
        if rows and name not in rows[0]:
            raise ValueError(f"sft.dataset={path}: column {name!r} missing (have {sorted(rows[0])})")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token")
    groups: dict[str, list[Turn]] = {}
    meta: dict[str, dict] = {}
    for i, row in enumerate(rows):
        key = str(row.get("episode_id", i))
        prompt_ids = tuple(tokenizer(row["prompt"], add_special_tokens=False).input_ids)
        completion_ids = (*tokenizer(row["completion"], add_special_tokens=False).input_ids,
                          tokenizer.eos_token_id)
        groups.setdefault(key, []).append(Turn(
            prompt_ids=prompt_ids, completion_ids=completion_ids,
            completion_logprobs=(0.0,) * len(completion_ids),
            reward=float(row.get("reward", 0.0) or 0.0),
            action_is_valid=bool(row.get("action_is_valid", True)),
            action=str(row.get("action", "")), prompt_text=row["prompt"], completion_text=row["completion"],
        ))
        meta.setdefault(key, row)
    return [
        Trajectory(env_id=str(meta[k].get("env_id", env_id)), seed=None, group_id=j, policy_version=0,
                   turns=tuple(turns), task_id=str(meta[k].get("task_id", "")),
                   won=bool(meta[k].get("won", False)), episode_id=k)
        for j, (k, turns) in enumerate(groups.items())
    ]
