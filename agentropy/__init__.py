"""agentropy: entropy-controlling reinforcement learning for LLM agents on long text tasks.

One import name with layers that point one way (``tests/test_layers.py`` checks it):

* :mod:`agentropy.records`: the episode record and the JSON-lines log (the bottom);
* :mod:`agentropy.envs`: Gymnasium text environments;
* :mod:`agentropy.configs`: the typed configuration;
* :mod:`agentropy.agents`: prompts, parsing, model backends;
* :mod:`agentropy.algorithms`: the learners' math, the collector, the training loop;
* :mod:`agentropy.cli`, :mod:`agentropy.play`, :mod:`agentropy.inspect`: the command line and
  the episode viewers (the top).

In the repository the middle layers keep their own top-level folders (``envs/``, ``agents/``,
``algorithms/``, ``configs/``); ``pyproject.toml`` installs them under ``agentropy``.
"""

__version__ = "0.1.0"
