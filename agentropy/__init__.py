"""agentropy: entropy-controlling reinforcement learning for LLM agents on long text tasks.

The import root of the command line, the episode log and the viewers; the environments, agents
and learners are the top-level packages ``envs``, ``agents`` and ``algorithms``.
"""

__version__ = "0.1.0"
