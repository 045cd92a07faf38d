"""The training entry point behind ``agentropy train``.

For now this is the quickstart's first stage only: it builds (or loads) the model and plays a few
recorded episodes on the configured environment. The SFT warm start, the RL loop, evaluation and
checkpoints come with the training-pipeline issue.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agentropy.play import play, summarize
from configs.schema import TrainConfig

__all__ = ["train"]

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, run_dir: str | Path) -> dict[str, float]:
    """Run ``cfg`` in ``run_dir``; returns the summary of the episodes played."""
    run_dir = Path(run_dir)
    if cfg.agent.model == "tiny":
        from agents.tiny import make_model

        path = make_model(run_dir / "model", cfg.agent.tiny)
        log.info("built the local model in %s", path)
    records = play(
        cfg.env.id,
        agent="random",
        episodes=cfg.play_episodes,
        out_dir=run_dir,
        env_kwargs=dict(cfg.env.kwargs, split=cfg.env.train_split),
        seed=cfg.seed,
        max_turns=cfg.env.max_turns,
    )
    return summarize(records)
