"""The shop's oracle: search for the target, open it, pick the goal's options, buy.

:func:`plan_for` decides once per goal which query finds the target and on which results page
(one or two searches); :func:`next_action` then reads the session's state and answers with the
next command from *any* state, so the expert also recovers after an agent's detour: wrong
pages are left with ``< prev`` or ``back to search``.

The first query is what an agent can write from the instruction alone: the type phrase, the goal
attributes and the option values. If the target is not among its 50 hits, the expert searches
for the target's title instead. The target satisfies its own goal by construction (its own
attributes, options and a ceiling above its hidden price), so following the plan earns reward 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentropy.envs.core import MAX_ACTION_CHARS
from agentropy.envs.webshop.catalog import Goal
from agentropy.envs.webshop.session import (
    BACK_TO_SEARCH,
    BUY_NOW,
    HITS_PER_PAGE,
    NEXT,
    PREV,
    SUB_PAGES,
    ShopSession,
)
from agentropy.envs.webshop.store import Shop

__all__ = ["ExpertPlan", "next_action", "plan_for"]

_MAX_QUERY = MAX_ACTION_CHARS - len("search[]")


@dataclass(frozen=True)
class ExpertPlan:
    """How the expert reaches the goal's target.

    Attributes:
        query: the search query (lowercase, as the session stores it).
        target: the target's ASIN.
        target_page: the results page that lists the target (None: no query finds it).
        option_values: the option values to select, in the goal's order.
    """

    query: str
    target: str
    target_page: int | None
    option_values: tuple[str, ...]


def _clean(query: str) -> str:
    words = query.lower().replace("[", " ").replace("]", " ").replace("\\", " ").split()
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > _MAX_QUERY:
            break
        out = f"{out} {word}" if out else word
    return out


def plan_for(shop: Shop, goal: Goal) -> ExpertPlan:
    """The query and results page that lead to ``goal``'s target."""
    target = shop.by_asin[goal.asin]
    candidates = (
        _clean(" ".join((goal.query, *goal.attributes, *goal.option_values))),
        _clean(target.name),
    )
    for query in candidates:
        hits = shop.search(query)
        for rank, product in enumerate(hits):
            if product.asin == goal.asin:
                return ExpertPlan(query, goal.asin, rank // HITS_PER_PAGE + 1, goal.option_values)
    return ExpertPlan(candidates[-1], goal.asin, None, goal.option_values)


def next_action(session: ShopSession, plan: ExpertPlan) -> str | None:
    """The expert's command in the session's current state (None when done or unreachable)."""
    if session.done or plan.target_page is None:
        return None
    page = session.page
    if page == "search":
        return f"search[{plan.query}]"
    if page == "results":
        if session.keywords != plan.query:
            return f"click[{BACK_TO_SEARCH}]"
        if session.page_num == plan.target_page:
            return f"click[{plan.target.lower()}]"
        return f"click[{NEXT}]" if session.page_num < plan.target_page else f"click[{PREV}]"
    if page == "item":
        if session.asin != plan.target:
            return f"click[{PREV}]"
        chosen = set(session.selected.values())
        for value in plan.option_values:
            if value not in chosen:
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"
    if page in SUB_PAGES:
        return f"click[{PREV}]"
    return None
