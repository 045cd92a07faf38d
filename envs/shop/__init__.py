"""Web shopping in the style of WebShop (Yao et al., 2022): ``agentropy/WebShop-v0``.

Modules, from data to the agent's view:

* :mod:`~envs.shop.vocab` and :mod:`~envs.shop.catalog`: the generated catalog and goals;
* :mod:`~envs.shop.search`: BM25 search (``bm25s``); :mod:`~envs.shop.store`: build and cache;
* :mod:`~envs.shop.reward`: the purchase reward; :mod:`~envs.shop.session`: grammar, pages and
  state machine; :mod:`~envs.shop.expert`: the oracle;
* :mod:`~envs.shop.env`: the Gymnasium environment; :mod:`~envs.shop.web`: the same sessions as
  clickable HTML pages on a local web server.

The heavy parts (the catalog and its index) load on first use, not on import.
"""

from __future__ import annotations

__all__ = ["ShopEnv"]


def __getattr__(name: str):
    if name == "ShopEnv":
        from envs.shop.env import ShopEnv

        return ShopEnv
    raise AttributeError(name)
