"""``agentropy/WebShop-v0``: WebShop-style web shopping as a Gymnasium text environment.

The agent reads an instruction ("i need tea tree shampoo ..., and price lower than 40.00
dollars"), searches a generated catalog of (by default) 10,000 products with BM25, opens
products, picks options and buys one. The purchase ends the episode with WebShop's reward
(:mod:`agentropy.envs.webshop.reward`), normalised to [0, 1]; the task is won when it is exactly 1.

Observations are WebShop's "simple" text pages (segments joined by `` [SEP] ``); the
admissible commands are verl-agent's: ``search[<your query>]`` on the search page (any
``search[...]`` with a non-empty query is accepted there) and ``click[x]`` for every clickable
of the page. The per-step reward is the change of score, so it is R on the purchase and 0
before. Tasks are goals: task ``i`` of a split is goal ``start + i`` of the goal list, and the
task id ``shop/<category>/<split>/<goal index>`` names the goal by its place in that list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentropy.envs.core import EngineState, TextEnv
from agentropy.envs.webshop.expert import ExpertPlan, next_action, plan_for
from agentropy.envs.webshop.session import SEARCH_PLACEHOLDER, ShopSession, parse_action
from agentropy.envs.webshop.store import Shop, load_shop

__all__ = ["ShopEnv"]


class ShopEnv(TextEnv):
    """Web shopping over a generated catalog.

    Args:
        split: ``"train"`` (goals 500 and up), ``"test"`` (goals 0-499) or ``"dev"`` (500 extra
            goals after the list; see :mod:`agentropy.envs.webshop.catalog`).
        num_products: catalog size (WebShop's default "small" set has 1,000; report it with
            results, small catalogs make the task easier).
        catalog_seed: seed of the catalog and goal generator.
        cache_dir: folder of the built-catalog cache (default ``$AGENTROPY_CACHE`` or
            ``~/.cache/agentropy``).
        check_admissible: refuse commands that are not admissible without touching the state.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "shop"
    splits = ("train", "test", "dev")
    engine_packages = ("bm25s", "PyStemmer", "rapidfuzz")
    has_expert = True
    rerun_kwargs = frozenset({"split", "num_products", "catalog_seed", "check_admissible"})

    def __init__(
        self,
        split: str = "train",
        num_products: int = 10_000,
        catalog_seed: int = 0,
        cache_dir: str | None = None,
        check_admissible: bool = True,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, check_admissible=check_admissible, render_mode=render_mode)
        self.num_products = num_products
        self.catalog_seed = catalog_seed
        self.shop: Shop = load_shop(catalog_seed, num_products, Path(cache_dir) if cache_dir else None)
        self._start, self._stop = self.shop.catalog.splits[split]
        self._session: ShopSession | None = None
        self._plan: ExpertPlan | None = None

    @property
    def session(self) -> ShopSession:
        """The current shopping session (after ``reset``)."""
        if self._session is None:
            raise RuntimeError("call reset() first")
        return self._session

    # ------------------------------------------------------------------ engine interface
    def _engine_num_tasks(self) -> int:
        return self._stop - self._start

    def _engine_reset(self, index: int, options: Mapping[str, Any]) -> tuple[str, str, EngineState]:
        goal = self.shop.catalog.goals[self._start + index]
        self._session = ShopSession(self.shop, goal)
        self._plan = plan_for(self.shop, goal)
        task_id = f"shop/{goal.category}/{self.split}/{goal.index}"
        return goal.instruction_text, task_id, self._engine_state("")

    def _engine_step(self, command: str) -> EngineState:
        return self._engine_state(self.session.step(command))

    def _engine_state(self, invalid_reason: str) -> EngineState:
        session = self.session
        purchase = session.purchase
        extra: dict[str, Any] = {}
        score = 0.0
        if purchase is not None:
            score = purchase.result.reward
            extra["purchase"] = {"asin": purchase.asin, "options": dict(purchase.options),
                                 **dataclasses.asdict(purchase.result)}
        assert self._plan is not None
        return EngineState(
            observation=session.observation(),
            score=score,
            won=purchase is not None and score == 1.0,
            lost=purchase is not None and score < 1.0,
            admissible=session.admissible(),
            valid=not invalid_reason,
            invalid_reason=invalid_reason,
            expert_action=next_action(session, self._plan),
            extra=extra,
        )

    def _engine_close(self) -> None:
        self._session = None

    # ------------------------------------------------------------------ action checks
    def _normalize_command(self, command: str, admissible: Sequence[str]) -> str:
        """``NAME[ARG]`` with ARG lowercased and text after the last ``]`` dropped (WebShop's
        grammar); anything else is kept as it is (and is not admissible)."""
        name, arg = parse_action(command)
        return command if arg is None else f"{name}[{arg}]"

    def _is_admissible(self, command: str, admissible: Sequence[str]) -> bool:
        if command in admissible:
            return True
        name, arg = parse_action(command)
        return name == "search" and arg is not None and bool(arg.strip()) and SEARCH_PLACEHOLDER in admissible
