"""One shopping session: WebShop's action grammar, page state machine and text pages.

The state machine follows docs/webshop.md section 4 (pages Search, Results, Item, the Description /
Features / Reviews sub-pages and Done), and :func:`render_text` its "simple" text mode
(docs/webshop.md section 5): the page's visible text segments joined by `` [SEP] ``. The HTML pages of
:mod:`agentropy.envs.webshop.web` render the same :class:`PageView`, so text and HTML show one state.

Actions are ``search[query]`` and ``click[x]`` for a clickable of the page. Search works where
the search bar is, on the search page: the raw WebShop also accepts it elsewhere, but its agent
wrappers (verl-agent's among them) offer it only there, and so does this session. An action that
is not valid is a no-op that leaves the page as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agentropy.envs.webshop.catalog import Goal, Product
from agentropy.envs.webshop.reward import RewardResult, compute_reward
from agentropy.envs.webshop.store import Shop

__all__ = [
    "HITS_PER_PAGE",
    "SEARCH_PLACEHOLDER",
    "SEP",
    "PageView",
    "Purchase",
    "ShopSession",
    "parse_action",
    "render_text",
]

SEP = " [SEP] "
HITS_PER_PAGE = 10
#: The search entry of the admissible commands (verl-agent's wording).
SEARCH_PLACEHOLDER = "search[<your query>]"
BACK_TO_SEARCH = "back to search"
PREV = "< prev"
NEXT = "next >"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")
_ACTION = re.compile(r"(.+)\[(.+)\]", re.DOTALL)


def parse_action(action: str) -> tuple[str, str | None]:
    """Split ``NAME[ARG]`` as WebShop does (docs/webshop.md section 4.1).

    NAME is the text before the last ``[`` that has a ``]`` after it, ARG the text from there to
    the last ``]``, lowercased; text after that ``]`` is ignored and nothing is trimmed. A string
    without a non-empty bracketed part has no ARG.

    >>> parse_action("click[Buy Now]"), parse_action("search[a [b]] c"), parse_action("click[]")
    (('click', 'buy now'), ('search[a ', 'b]'), ('click[]', None))
    """
    match = _ACTION.match(action)
    if match is None:
        return action, None
    return match.group(1), match.group(2).lower()


@dataclass(frozen=True)
class Purchase:
    """What was bought, with which options, and its reward."""

    asin: str
    options: tuple[tuple[str, str], ...]
    result: RewardResult


@dataclass(frozen=True)
class PageView:
    """Everything a page shows (rendered as text by :func:`render_text`, as HTML by ``web``).

    Attributes:
        kind: ``search``, ``results``, ``item``, ``description``, ``features``, ``reviews`` or
            ``done``.
        instruction: the instruction text.
        keywords: the current search query (results and item pages).
        page_num: results page number, from 1.
        total: number of hits of the search (at most 50).
        hits: the products of this results page.
        product: the product of an item page or its sub-pages (or the one bought).
        selected: option group -> selected value, on item pages.
        visited: ASINs opened since the last "back to search".
        purchase: the purchase, on the done page.
        clickables: what can be clicked, lowercase, in page order.
    """

    kind: str
    instruction: str
    keywords: str = ""
    page_num: int = 1
    total: int = 0
    hits: tuple[Product, ...] = ()
    product: Product | None = None
    selected: tuple[tuple[str, str], ...] = ()
    visited: frozenset[str] = frozenset()
    purchase: Purchase | None = None
    clickables: tuple[str, ...] = ()


@dataclass
class _State:
    page: str = "search"
    keywords: str = ""
    page_num: int = 1
    asin: str = ""
    options: dict[str, str] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    purchase: Purchase | None = None


class ShopSession:
    """The state of one shopping episode for one goal.

    Args:
        shop: the catalog and search engine.
        goal: what to buy.
    """

    def __init__(self, shop: Shop, goal: Goal) -> None:
        self.shop = shop
        self.goal = goal
        self._state = _State()

    # ------------------------------------------------------------------ reading the page
    @property
    def page(self) -> str:
        return self._state.page

    @property
    def keywords(self) -> str:
        return self._state.keywords

    @property
    def page_num(self) -> int:
        return self._state.page_num

    @property
    def asin(self) -> str:
        return self._state.asin

    @property
    def selected(self) -> dict[str, str]:
        return dict(self._state.options)

    @property
    def purchase(self) -> Purchase | None:
        return self._state.purchase

    @property
    def done(self) -> bool:
        return self._state.page == "done"

    @property
    def has_search_bar(self) -> bool:
        return self._state.page == "search"

    def _hits(self) -> tuple[Product, ...]:
        return self.shop.search(self._state.keywords)

    def page_hits(self) -> tuple[Product, ...]:
        start = (self._state.page_num - 1) * HITS_PER_PAGE
        return self._hits()[start : start + HITS_PER_PAGE]

    def clickables(self) -> tuple[str, ...]:
        s = self._state
        if s.page == "results":
            prev = (PREV,) if s.page_num > 1 else ()
            return (BACK_TO_SEARCH, *prev, NEXT, *(p.asin.lower() for p in self.page_hits()))
        if s.page == "item":
            product = self.shop.by_asin[s.asin]
            return (BACK_TO_SEARCH, PREV, *SUB_PAGES, BUY_NOW, *product.option_values)
        if s.page in SUB_PAGES:
            return (BACK_TO_SEARCH, PREV)
        return ()

    def admissible(self) -> tuple[str, ...]:
        search = (SEARCH_PLACEHOLDER,) if self.has_search_bar else ()
        return (*search, *(f"click[{c}]" for c in self.clickables()))

    def view(self) -> PageView:
        s = self._state
        product = self.shop.by_asin.get(s.asin) if s.asin else None
        if s.purchase is not None:
            product = self.shop.by_asin[s.purchase.asin]
        return PageView(
            kind=s.page,
            instruction=self.goal.instruction_text,
            keywords=s.keywords,
            page_num=s.page_num,
            total=len(self._hits()) if s.page == "results" else 0,
            hits=self.page_hits() if s.page == "results" else (),
            product=product,
            selected=tuple(s.options.items()),
            visited=frozenset(s.visited),
            purchase=s.purchase,
            clickables=self.clickables(),
        )

    def observation(self) -> str:
        return render_text(self.view())

    # ------------------------------------------------------------------ acting
    def step(self, action: str) -> str:
        """Apply one action; returns ``""`` if it was applied, else why it was a no-op."""
        name, arg = parse_action(action)
        s = self._state
        if s.page == "done":
            return "the purchase is complete"
        if arg is None:
            return "an action reads search[query] or click[button]"
        if name == "search":
            if not self.has_search_bar:
                return "there is no search bar on this page; click[back to search] first"
            if not arg.strip():
                return "the search query is empty"
            s.page, s.keywords, s.page_num, s.asin = "results", arg, 1, ""
            s.options.clear()
            return ""
        if name != "click":
            return f"unknown action {name!r}; use search[...] or click[...]"
        if arg not in self.clickables():
            return f"there is no {arg!r} to click on this page"
        self._click(arg)
        return ""

    def _click(self, target: str) -> None:
        s = self._state
        if target == BACK_TO_SEARCH:
            self._state = _State()
        elif s.page == "results":
            if target == NEXT:
                s.page_num += 1
            elif target == PREV:
                s.page_num -= 1
            else:
                s.page, s.asin = "item", target.upper()
                s.options.clear()
                s.visited.add(s.asin)
        elif s.page == "item":
            if target == PREV:
                s.page, s.asin = "results", ""
                s.options.clear()
            elif target in SUB_PAGES:
                s.page = target
            elif target == BUY_NOW:
                product = self.shop.by_asin[s.asin]
                result = compute_reward(product, self.goal, s.options)
                s.purchase = Purchase(asin=s.asin, options=tuple(s.options.items()), result=result)
                s.page = "done"
            else:
                product = self.shop.by_asin[s.asin]
                group = next(name for name, values in product.options if target in values)
                s.options[group] = target
        elif s.page in SUB_PAGES and target == PREV:
            s.page = "item"


def render_text(view: PageView) -> str:
    """WebShop's "simple" observation of a page (docs/webshop.md section 5)."""
    head = ["Instruction:", view.instruction]
    if view.kind == "search":
        parts = ["WebShop", *head, "Search"]
    elif view.kind == "results":
        parts = [*head, "Back to Search", f"Page {view.page_num} (Total results: {view.total})"]
        if view.page_num > 1:
            parts.append("< Prev")
        parts.append("Next >")
        for product in view.hits:
            parts += [product.asin, product.name, product.price_text]
    elif view.kind == "item":
        assert view.product is not None
        parts = [*head, "Back to Search", "< Prev"]
        for name, values in view.product.options:
            parts += [name, *values]
        parts += [view.product.name, f"Price: {view.product.price_text}", "Rating: N.A.",
                  "Description", "Features", "Reviews", "Buy Now"]
    elif view.kind in SUB_PAGES:
        assert view.product is not None
        parts = [*head, "Back to Search", "< Prev"]
        if view.kind == "description":
            parts.append(view.product.description)
        elif view.kind == "features":
            parts += list(view.product.bullets)
    else:
        assert view.purchase is not None and view.product is not None
        chosen = ", ".join(f"{n}: {v}" for n, v in view.purchase.options) or "none"
        parts = ["Thank you for shopping with us!", "Purchased", view.product.asin, view.product.name,
                 f"Options: {chosen}", "Your score (min 0.0, max 1.0)",
                 repr(round(view.purchase.result.reward, 4))]
    return SEP.join(p.strip() for p in parts if p.strip())
