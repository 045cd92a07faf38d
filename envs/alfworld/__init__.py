"""Household tasks: ALFWorld's text games (``agentropy/ALFWorld-v0``).

* :mod:`agentropy.envs.alfworld.env`: :class:`ALFWorldEnv`, the Gymnasium env on the real engine.
* :mod:`agentropy.envs.alfworld.generator`: ALFWorld-format games from the shipped domain, grammar and
  THOR floor plans; :mod:`agentropy.envs.alfworld.oracle`: the scripted shortest-walkthrough expert;
  :mod:`agentropy.envs.alfworld.store`: verified games cached on disk.
* :mod:`agentropy.envs.alfworld.official`: the released ALFWorld games, when ``$ALFWORLD_DATA`` has them.
* ``python -m agentropy.envs.alfworld.generate``: fill the cache ahead of training.
"""

from agentropy.envs.alfworld.env import ALFWorldEnv

__all__ = ["ALFWorldEnv"]
