"""Web shopping in the style of WebShop (Yao et al., 2022): ``agentropy/WebShop-v0``.

Modules, from data to the agent's view:

* :mod:`~agentropy.envs.webshop.vocab` and :mod:`~agentropy.envs.webshop.catalog`: the generated
  catalog and goals;
* :mod:`~agentropy.envs.webshop.search`: BM25 search (``bm25s``);
  :mod:`~agentropy.envs.webshop.store`: build and cache;
* :mod:`~agentropy.envs.webshop.reward`: the purchase reward;
  :mod:`~agentropy.envs.webshop.session`: grammar, pages and state machine;
  :mod:`~agentropy.envs.webshop.expert`: the oracle;
* :mod:`~agentropy.envs.webshop.env`: the Gymnasium environment;
  :mod:`~agentropy.envs.webshop.web`: the same sessions as clickable HTML pages on a local web
  server.

The heavy parts (the catalog and its index) load on first use, not on import.
"""

from __future__ import annotations

__all__ = ["ShopEnv"]


def __getattr__(name: str):
    if name == "ShopEnv":
        from agentropy.envs.webshop.env import ShopEnv

        return ShopEnv
    raise AttributeError(name)
