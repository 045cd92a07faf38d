"""Inspecting recorded episodes: why did the agent fail?

* :mod:`agentropy.inspect.run`: index a run folder's episodes (streamed, filterable), read its
  metrics and replay-buffer snapshots;
* :mod:`agentropy.inspect.terminal`: rich views for ``agentropy replay`` (episodes turn by turn,
  GRPO groups side by side where they diverge);
* :mod:`agentropy.inspect.server` and :mod:`agentropy.inspect.html`: the HTML viewer of
  ``agentropy view`` (served on 127.0.0.1, or exported as one self-contained file);
* :mod:`agentropy.inspect.rerun`: re-run a recorded episode and report the first difference;
* :mod:`agentropy.inspect.compare`: success and score per task type for two runs.
"""

from agentropy.inspect.run import EpisodeFilter, EpisodeSummary, RunIndex

__all__ = ["EpisodeFilter", "EpisodeSummary", "RunIndex"]
