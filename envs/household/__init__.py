"""Household tasks: ALFWorld's text games (``agentropy/ALFWorld-v0``).

* :mod:`envs.household.env`: :class:`ALFWorldEnv`, the Gymnasium env on the real engine.
* :mod:`envs.household.generator`: ALFWorld-format games from the shipped domain, grammar and
  THOR floor plans; :mod:`envs.household.oracle`: the scripted shortest-walkthrough expert;
  :mod:`envs.household.store`: verified games cached on disk.
* :mod:`envs.household.official`: the released ALFWorld games, when ``$ALFWORLD_DATA`` has them.
* ``python -m envs.household.generate``: fill the cache ahead of training.
"""

from envs.household.env import ALFWorldEnv

__all__ = ["ALFWorldEnv"]
