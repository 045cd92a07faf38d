"""The generated product catalog and the shopping goals sampled from it.

WebShop (Yao et al., 2022, "WebShop: Towards Scalable Real-World Web Interaction with Grounded
Language Agents") scraped 1.18M products and wrote instructions for them; that data cannot be
had here, so this module makes a catalog of the same shape from :mod:`agentropy.envs.webshop.vocab`
(docs/webshop.md sections 1, 2 and 8):

* Products (:class:`Product`) carry WebShop's normalised record: a 10-character ASIN, title,
  category, scrape query, breadcrumb, description, bullet points, mined attributes, option
  groups and prices, parsed from a raw price text by WebShop's rule (a range keeps both ends).
  Every random draw is stored: the hidden price of a range (the price the reward uses) and the
  title's nouns, which stand in for spaCy's part-of-speech tags in the type reward (spaCy's
  models cannot be installed here; the generator knows which title words are nouns).
* Goals (:class:`Goal`) follow WebShop's synthetic goals: one per annotated product, asking for
  1-3 of its attributes, one value of each of its option groups, and a price ceiling drawn as in
  WebShop (docs/webshop.md section 2.2, the draw stored). The instruction names the type phrase, every goal
  attribute verbatim, every option value, and ends with the price clause.
* Goals are built in catalog order and shuffled with a fixed seed; the splits are verl-agent's:
  ``test = goals[0:500]``, ``train = goals[500:N]``. ``dev`` holds 500 further goals drawn from
  the same catalog with their own random stream after the shuffled list (indices ``N..N+499``),
  so model selection never touches the test goals and verl-agent's two splits stay as they are.

Generation uses :class:`random.Random` with string seeds, whose algorithms Python keeps stable
across versions, so a seed gives the same catalog on every machine.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from agentropy.envs.webshop.vocab import (
    BRAND_SYLLABLES,
    BREADCRUMB_SEP,
    CATEGORIES,
    CATEGORY_ATTRIBUTES,
    MODIFIERS,
    TITLE_DESCRIPTORS,
    USES,
    ProductType,
)

__all__ = [
    "GENERATOR_VERSION",
    "Catalog",
    "Goal",
    "Product",
    "build_catalog",
    "format_price",
    "option_text",
    "parse_price",
    "price_ceiling",
    "split_ranges",
]

#: Bump when the generated content changes (the on-disk cache is keyed by it).
GENERATOR_VERSION = 1

#: The price used when a product has none (WebShop's rule).
MISSING_PRICE = 100.0
#: ``price_upper`` of goals whose target costs too much for a ceiling below 1,000 dollars.
NO_CEILING = 1_000_000.0
TEST_GOALS = 500
DEV_GOALS = 500
_ASIN_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Product:
    """One catalog record (docs/webshop.md section 1.1, after load-time normalisation).

    Attributes:
        asin: 10-character uppercase id.
        name: the title, shown as it is.
        category: one of the five coarse groups.
        query: the type phrase the product belongs to (WebShop's scrape query).
        product_category: breadcrumb with `` \u203a `` separators.
        description: one text block.
        bullets: the bullet points ("features").
        attributes: mined lowercase attribute phrases; empty for unannotated products.
        options: ordered option groups, (name, values).
        price_raw: the price text the prices were parsed from.
        pricing: one price, or the two ends of a range.
        hidden_price: the price the reward compares: the price, or one stored uniform draw from a
            range.
        title_nouns: the lowercase nouns of the title (brand and type nouns), duplicates kept.
    """

    asin: str
    name: str
    category: str
    query: str
    product_category: str
    description: str
    bullets: tuple[str, ...]
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price_raw: str
    pricing: tuple[float, ...]
    hidden_price: float
    title_nouns: tuple[str, ...]

    @property
    def price_text(self) -> str:
        return format_price(self.pricing)

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(v for _, values in self.options for v in values)

    def search_document(self) -> str:
        """The text the search engine indexes (docs/webshop.md section 3): title, description, first bullet
        and the option groups, lowercased."""
        first = self.bullets[0] if self.bullets else ""
        return f"{self.name} {self.description} {first} {option_text(self.options)}".lower()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Product:
        return cls(
            asin=d["asin"], name=d["name"], category=d["category"], query=d["query"],
            product_category=d["product_category"], description=d["description"],
            bullets=tuple(d["bullets"]), attributes=tuple(d["attributes"]),
            options=tuple((name, tuple(values)) for name, values in d["options"]),
            price_raw=d["price_raw"], pricing=tuple(d["pricing"]),
            hidden_price=d["hidden_price"], title_nouns=tuple(d["title_nouns"]),
        )


@dataclass(frozen=True)
class Goal:
    """One shopping instruction (docs/webshop.md section 2.1).

    Attributes:
        index: position in the goal list (the number in the task id).
        asin, category, query, name, product_category, title_nouns: copied from the target.
        instruction_text: the instruction, lowercase, price clause last.
        attributes: goal attributes, drawn from the target's attributes.
        goal_options: (option name, value) per option group of the target, names sorted. The
            reward matches the values only (WebShop's list-of-values form, docs/webshop.md section 7.6).
        price_upper: the price ceiling, or :data:`NO_CEILING` without a price clause.
        price_draw: the two multiples of 10 drawn for the ceiling (empty without a clause).
        weight: the mean over the goal's attributes of 1 / (goals using that attribute).
    """

    index: int
    asin: str
    category: str
    query: str
    name: str
    product_category: str
    title_nouns: tuple[str, ...]
    instruction_text: str
    attributes: tuple[str, ...]
    goal_options: tuple[tuple[str, str], ...]
    price_upper: float
    price_draw: tuple[float, ...]
    weight: float

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.goal_options)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Goal:
        return cls(
            index=d["index"], asin=d["asin"], category=d["category"], query=d["query"],
            name=d["name"], product_category=d["product_category"],
            title_nouns=tuple(d["title_nouns"]), instruction_text=d["instruction_text"],
            attributes=tuple(d["attributes"]),
            goal_options=tuple((n, v) for n, v in d["goal_options"]),
            price_upper=d["price_upper"], price_draw=tuple(d["price_draw"]), weight=d["weight"],
        )


@dataclass(frozen=True)
class Catalog:
    """Products and goals of one (seed, size), with the goal splits.

    Attributes:
        seed: generator seed.
        products: in catalog order (the search index's document order).
        goals: the shuffled goal list followed by the dev goals.
        splits: split name -> (start, stop) into ``goals``.
    """

    seed: int
    products: tuple[Product, ...]
    goals: tuple[Goal, ...]
    splits: Mapping[str, tuple[int, int]]

    def split_goals(self, split: str) -> tuple[Goal, ...]:
        start, stop = self.splits[split]
        return self.goals[start:stop]


# --------------------------------------------------------------------------- prices
def parse_price(raw: str) -> tuple[float, ...]:
    """WebShop's price parsing (docs/webshop.md section 1.2): split on ``$``, keep digits and dots of each
    piece, keep at most the first two values; no value gives ``(100.0,)``.

    >>> parse_price("$1,299.99"), parse_price("$10.00 - $20.00"), parse_price("")
    ((1299.99,), (10.0, 20.0), (100.0,))
    """
    values = []
    for piece in raw.split("$")[1:]:
        digits = re.sub(r"[^0-9.]", "", piece)
        try:
            values.append(float(digits))
        except ValueError:
            continue
    return tuple(values[:2]) if values else (MISSING_PRICE,)


def format_price(pricing: Sequence[float]) -> str:
    """``$24.99``, ``$5.0``, or ``$10.0 to $20.0`` for a range (Python's shortest float text)."""
    return " to ".join(f"${p!r}" for p in pricing)


def price_ceiling(hidden_price: float, rng: random.Random) -> tuple[float, tuple[float, ...]]:
    """WebShop's price ceiling (docs/webshop.md section 2.2): of the first four multiples of 10 above the
    price, two drawn without replacement, the larger one; none when fewer than two exist.

    Returns:
        ``(price_upper, the two draws)``, or ``(NO_CEILING, ())``.
    """
    first = (math.floor(hidden_price / 10) + 1) * 10  # the smallest multiple of 10 above
    above = [float(m) for m in range(max(first, 10), 1000, 10)][:4]
    if len(above) < 2:
        return NO_CEILING, ()
    draw = tuple(rng.sample(above, 2))
    return max(draw), draw


# --------------------------------------------------------------------------- text helpers
def option_text(options: Sequence[tuple[str, Sequence[str]]]) -> str:
    """``color: black, white, and size: small, large`` (the search document's option part)."""
    return ", and ".join(f"{name}: {', '.join(values)}" for name, values in options)


_SMALL_WORDS = frozenset({"and", "or", "for", "with", "of", "in", "to", "a", "the"})
_ACRONYMS = frozenset({"usb", "hdmi", "led", "hd", "gmo", "usda", "ips", "rgb", "uv", "c", "e"})


@functools.lru_cache(maxsize=4096)
def _title_case(phrase: str) -> str:
    words = []
    for i, word in enumerate(phrase.split()):
        if word in _ACRONYMS:
            words.append(word.upper())
        elif i and word in _SMALL_WORDS:
            words.append(word)
        else:
            words.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(words)


def _join_and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _head_nouns(head: str) -> list[str]:
    return [w for w in head.split() if w not in MODIFIERS]


# --------------------------------------------------------------------------- products
_DESCRIPTION = (
    "The {brand} {head} features {a} and is made for {use}.",
    "Designed with care, this {head} offers {a} for every day.",
    "Looking for {head} with {a}? This one fits {use} perfectly.",
    "Customers choose it for {use} thanks to {a}.",
)
_DESCRIPTION_FILLER = (
    "Every {head} from {brand} is checked by hand before it leaves our warehouse.",
    "Backed by our 30-day satisfaction guarantee and friendly customer support.",
    "A thoughtful choice that brings quality and value together.",
    "Made to last and easy to love.",
)
_BULLET = (
    "{A}: {head} with {a}, tested for quality and made for {use}.",
    "{A} - enjoy {a} every single day.",
    "{A}: we added {a} because our customers asked for it.",
)
_BULLET_FILLER = (
    "WHAT YOU GET: one {brand} {head} and our friendly customer service.",
    "SATISFACTION GUARANTEE: if you are not happy, contact us for a refund or replacement.",
    "QUALITY CHECKED: every item is inspected before shipping.",
)


def _brands(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    brands: list[str] = []
    while len(brands) < count:
        name = "".join(rng.choice(BRAND_SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
        if len(name) >= 4 and name not in taken:
            taken.add(name)
            brands.append(name.capitalize())
    return brands


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choice(_ASIN_CHARS) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _raw_price(rng: random.Random, ptype: ProductType, has_options: bool) -> str:
    lo, hi = ptype.price
    base = rng.uniform(lo, hi)
    base = round(base) - 0.01 if rng.random() < 0.6 and base > 2 else round(base, 2)
    roll = rng.random()
    if roll < 0.005:
        return ""  # no price listed: WebShop shows 100.0
    if has_options and roll < 0.25:
        top = round(base * rng.uniform(1.2, 2.0), 2)
        return f"${base:,.2f} - ${top:,.2f}"
    return f"${base:,.2f}"


def _product(
    rng: random.Random, category: str, ptype: ProductType, brand: str, asin: str
) -> Product:
    head = rng.choice(ptype.heads)
    pool_type = list(ptype.attributes)
    pool_cat = [a for a in CATEGORY_ATTRIBUTES[category] if a not in pool_type]
    n_type = rng.choice((1, 1, 2, 2, 2, 3, 3))
    n_cat = rng.choice((0, 0, 1, 1, 2))
    mined = rng.sample(pool_type, n_type) + rng.sample(pool_cat, n_cat)
    unlisted_pool = [a for a in pool_type + pool_cat if a not in mined]
    unlisted = rng.sample(unlisted_pool, rng.choice((0, 0, 1, 2)))
    text_attributes = mined + unlisted
    rng.shuffle(text_attributes)
    annotated = rng.random() >= 0.08

    options: list[tuple[str, tuple[str, ...]]] = []
    if rng.random() >= 0.1:
        used: set[str] = set()
        for name, pool in ptype.options:
            if options and rng.random() < 0.15:
                continue
            fresh = [v for v in pool if v not in used]
            if len(fresh) < 2:
                continue
            count = rng.randint(2, min(6, len(fresh)))
            picked = set(rng.sample(fresh, count))
            values = tuple(v for v in pool if v in picked)  # the store's own order
            used.update(values)
            options.append((name, values))

    price_raw = _raw_price(rng, ptype, bool(options))
    pricing = parse_price(price_raw)
    hidden = pricing[0] if len(pricing) == 1 else round(rng.uniform(*pricing), 2)

    # Title: brand, optional descriptor, head, then one or two attributes.
    descriptor = rng.choice(TITLE_DESCRIPTORS[category]) + " " if rng.random() < 0.7 else ""
    in_title = text_attributes[: rng.choice((1, 1, 2))]
    name = f"{brand} {descriptor}{_title_case(head)}, " + ", ".join(map(_title_case, in_title))

    use = rng.choice(USES[category])
    fill = {"brand": brand, "head": head, "use": use}
    rest = text_attributes[len(in_title):]
    sentences = [rng.choice(_DESCRIPTION).format(a=_join_and(in_title + rest[:1]), **fill)]
    for attribute in rest[1:]:
        sentences.append(rng.choice(_DESCRIPTION).format(a=attribute, **fill))
    sentences.extend(s.format(**fill) for s in rng.sample(_DESCRIPTION_FILLER, rng.randint(1, 2)))
    bullets = [
        rng.choice(_BULLET).format(A=a.upper(), a=a, **fill)
        for a in rng.sample(text_attributes, len(text_attributes))
    ]
    bullets.extend(s.format(**fill) for s in rng.sample(_BULLET_FILLER, rng.randint(1, 2)))

    return Product(
        asin=asin,
        name=name,
        category=category,
        query=ptype.query,
        product_category=BREADCRUMB_SEP.join(ptype.path),
        description=" ".join(sentences),
        bullets=tuple(bullets),
        attributes=tuple(mined) if annotated else (),
        options=tuple(options),
        price_raw=price_raw,
        pricing=pricing,
        hidden_price=hidden,
        title_nouns=(brand.lower(), *_head_nouns(head)),
    )


def _products(seed: int, num_products: int) -> list[Product]:
    rng = random.Random(f"agentropy-shop/catalog/{seed}")
    types = [(category, ptype) for category, ptypes in CATEGORIES.items() for ptype in ptypes]
    taken: set[str] = set()
    brands = {category: _brands(rng, 40, taken) for category in CATEGORIES}
    asins: set[str] = set()
    products = []
    for i in range(num_products):
        category, ptype = types[i % len(types)]
        products.append(_product(rng, category, ptype, rng.choice(brands[category]), _asin(rng, asins)))
    rng.shuffle(products)
    return products


# --------------------------------------------------------------------------- goals
_INSTRUCTION = (
    "find me {attrs} {query}",
    "i am looking for {query} that is {attrs_and}",
    "i need {query} with {attrs_and}",
    "i want to buy {query} which is {attrs_and}",
    "show me {attrs} {query}",
    "im looking for {attrs} {query}",
)


def _instruction(rng: random.Random, query: str, attributes: Sequence[str],
                 options: Sequence[tuple[str, str]], price_upper: float) -> str:
    text = rng.choice(_INSTRUCTION).format(
        query=query, attrs=", ".join(attributes), attrs_and=_join_and(list(attributes))
    )
    if options:
        text += ", with " + ", and ".join(f"{name}: {value}" for name, value in options)
    if price_upper < NO_CEILING:
        text += f", and price lower than {price_upper:.2f} dollars"
    return text


def _goal(rng: random.Random, product: Product) -> Goal:
    k = min(len(product.attributes), rng.choice((1, 1, 2, 2, 2, 3)))
    attributes = tuple(rng.sample(product.attributes, k))
    options = tuple(sorted((name, rng.choice(values)) for name, values in product.options))
    price_upper, draw = price_ceiling(product.hidden_price, rng)
    return Goal(
        index=-1,
        asin=product.asin,
        category=product.category,
        query=product.query,
        name=product.name,
        product_category=product.product_category,
        title_nouns=product.title_nouns,
        instruction_text=_instruction(rng, product.query, attributes, options, price_upper),
        attributes=attributes,
        goal_options=options,
        price_upper=price_upper,
        price_draw=draw,
        weight=0.0,
    )


def _goal_key(goal: Goal) -> tuple:
    return goal.asin, frozenset(goal.attributes), goal.goal_options


def _with_weights(goals: Sequence[Goal]) -> list[Goal]:
    uses = Counter(a for goal in goals for a in goal.attributes)
    out = []
    for index, goal in enumerate(goals):
        weight = sum(1.0 / uses[a] for a in goal.attributes) / len(goal.attributes)
        out.append(replace(goal, index=index, weight=round(weight, 8)))
    return out


def split_ranges(num_main: int, num_dev: int) -> dict[str, tuple[int, int]]:
    """verl-agent's splits of the shuffled list, plus the dev goals after it.

    ``test`` is the first 500 goals (fewer for tiny catalogs: at most half the list).
    """
    num_test = min(TEST_GOALS, num_main // 2)
    return {
        "test": (0, num_test),
        "train": (num_test, num_main),
        "dev": (num_main, num_main + num_dev),
    }


def _goals(seed: int, products: Sequence[Product]) -> tuple[list[Goal], dict[str, tuple[int, int]]]:
    rng = random.Random(f"agentropy-shop/goals/{seed}")
    annotated = [p for p in products if p.attributes]
    main = [_goal(rng, p) for p in annotated]
    # WebShop shuffles the goals with a fixed seed (233) before splitting.
    random.Random(f"agentropy-shop/shuffle/{seed}/233").shuffle(main)
    dev_rng = random.Random(f"agentropy-shop/dev-goals/{seed}")
    seen = {_goal_key(g) for g in main}
    dev: list[Goal] = []
    target = min(DEV_GOALS, max(1, len(main) // 10))
    for _ in range(20 * target):
        if len(dev) == target:
            break
        goal = _goal(dev_rng, dev_rng.choice(annotated))
        if _goal_key(goal) not in seen:
            seen.add(_goal_key(goal))
            dev.append(goal)
    return _with_weights(main + dev), split_ranges(len(main), len(dev))


def build_catalog(seed: int = 0, num_products: int = 10_000) -> Catalog:
    """Generate the catalog and goals of ``seed`` (pure; the cache lives in :mod:`store`).

    Args:
        seed: generator seed.
        num_products: catalog size; WebShop's "small" set has 1,000 and the full one 1.18M.
    """
    if num_products < 50:
        raise ValueError(f"num_products must be at least 50, got {num_products}")
    products = _products(seed, num_products)
    goals, splits = _goals(seed, products)
    return Catalog(seed=seed, products=tuple(products), goals=tuple(goals), splits=splits)
