"""WebShop's purchase reward (docs/webshop.md section 6), with its known bugs left out.

R = r_type * (n_att + n_opt + r_price) / (|A| + |O| + 1), where A are the goal's attributes, O
its option values, n_att and n_opt the matched ones, r_price = [hidden price <= ceiling], and
r_type in {0, 0.1, 0.5, 1} says whether the right kind of product was bought. Success is
R == 1.0 exactly. This follows Yao et al. (2022), WebShop, section 3 and its reference code,
with these deliberate differences (docs/webshop.md section 7 lists the original's issues):

* **Title nouns** (7.7): the type reward's title overlap uses the nouns stored with each product
  by the generator (brand and type nouns) instead of a spaCy tagger, whose choice changed the
  original's rewards and whose models cannot be installed here.
* **Options** (7.4, 7.5, 7.6): goal options are a list of values (the human-goal form) and a
  value is matched only by an *equal* selected value (after lowercasing and collapsing spaces).
  The original's fuzzy match (token-set ratio > 85) after substring colour normalisation let
  ``small`` match ``x-small``, ``8`` match ``8.5`` and ``navy`` fail ``navy blue``; the agent
  picks option values from the product page, so exact equality loses nothing.
* **Attributes** (7.5, 7.8): a goal attribute matches a product attribute with token-set ratio
  > 85, as in the original, *unless* one token set strictly contains the other (the ratio is
  then 100: ``tea tree`` would match ``tea tree oil``). Variants such as ``essential oil`` /
  ``essential oils`` (ratio 96) still match, which is what the fuzzy match was added for. The
  text fallback looks for the attribute as whole words (``ash`` is not found in ``washable``)
  in the lowercased title, bullets and description.
* **Prices** (7.1, 7.2): the hidden price of a range is drawn once and stored in the catalog,
  and so are the goals' ceilings, so rewards are the same in every process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agentropy.envs.webshop.catalog import NO_CEILING, Goal, Product
from rapidfuzz import fuzz
from rapidfuzz import utils as fuzz_utils

__all__ = ["FUZZY_THRESHOLD", "RewardResult", "attribute_matches", "compute_reward",
           "token_set_ratio", "type_reward"]

#: A fuzzy attribute match needs a token-set ratio above this.
FUZZY_THRESHOLD = 85


@dataclass(frozen=True)
class RewardResult:
    """The reward of one purchase and its parts.

    Attributes:
        reward: R in [0, 1].
        r_type: type multiplier (0, 0.1, 0.5 or 1).
        r_att: matched fraction of the goal attributes.
        r_option: matched fraction of the goal options (None when the goal has none).
        r_price: 1.0 if the hidden price is within the ceiling, else 0.0.
        w_att, w_option, w_price: the implicit weights |A|/D, |O|/D and 1/D, D = |A|+|O|+1.
        query_match, category_match, title_score: the type reward's evidence.
        matched_attributes, matched_options: which goal attributes / option values matched.
    """

    reward: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: float
    w_att: float
    w_option: float
    w_price: float
    query_match: bool
    category_match: bool
    title_score: float
    matched_attributes: tuple[str, ...]
    matched_options: tuple[str, ...]


def _ascii(text: str) -> str:
    return text.encode("ascii", "ignore").decode()


def token_set_ratio(a: str, b: str) -> int:
    """thefuzz's ``token_set_ratio`` (docs/webshop.md section 6.1): 0..100, rounded; 0 if either is empty.

    rapidfuzz computes the same normalised Indel similarity as thefuzz (which wraps it since
    0.20); non-ASCII characters are dropped first, as the original's preprocessing does.
    """
    return int(round(fuzz.token_set_ratio(_ascii(a), _ascii(b), processor=fuzz_utils.default_process)))


def _tokens(text: str) -> frozenset[str]:
    return frozenset(fuzz_utils.default_process(_ascii(text)).split())


def _contains_words(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text) is not None


def attribute_matches(goal_attribute: str, product: Product) -> bool:
    """Section 6.3 with the strict-subset rule: a product attribute within the fuzzy threshold
    that is not a token superset or subset of the goal attribute, or else the attribute as
    whole words in the product's title, bullets or description."""
    goal_tokens = _tokens(goal_attribute)
    for attribute in product.attributes:
        tokens = _tokens(attribute)
        if goal_tokens != tokens and (goal_tokens < tokens or tokens < goal_tokens):
            continue
        if token_set_ratio(attribute, goal_attribute) > FUZZY_THRESHOLD:
            return True
    phrase = goal_attribute.lower()
    texts = (product.name.lower(), " ".join(product.bullets).lower(), product.description.lower())
    return any(_contains_words(text, phrase) for text in texts)


def _breadcrumb(path: str) -> set[str]:
    return {part.strip() for part in path.split("\u203a")}


def type_reward(product: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    """Section 6.2: ``(r_type, query_match, category_match, title_score)``."""
    query_match = product.query == goal.query
    category_match = len(_breadcrumb(product.product_category) & _breadcrumb(goal.product_category)) >= 2
    target_nouns = goal.title_nouns
    if target_nouns:
        title_score = len(set(target_nouns) & set(product.title_nouns)) / len(target_nouns)
    else:
        title_score = 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def _norm_value(value: str) -> str:
    return " ".join(value.lower().split())


def compute_reward(product: Product, goal: Goal, selected: Mapping[str, str] | Sequence[str]) -> RewardResult:
    """The reward of buying ``product`` with the ``selected`` options for ``goal``.

    Args:
        product: what was bought.
        goal: the instruction's goal.
        selected: the selected option values (a name -> value map, or the values).
    """
    values = list(selected.values()) if isinstance(selected, Mapping) else list(selected)
    chosen = {_norm_value(v) for v in values}
    r_type, query_match, category_match, title_score = type_reward(product, goal)

    matched_attributes = tuple(a for a in goal.attributes if attribute_matches(a, product))
    goal_values = goal.option_values
    matched_options = tuple(v for v in goal_values if _norm_value(v) in chosen)
    r_price = 1.0 if goal.price_upper >= NO_CEILING or product.hidden_price <= goal.price_upper else 0.0

    n_att, n_opt = len(matched_attributes), len(matched_options)
    denominator = len(goal.attributes) + len(goal_values) + 1
    reward = r_type * (n_att + n_opt + r_price) / denominator
    return RewardResult(
        reward=float(reward),
        r_type=r_type,
        r_att=n_att / len(goal.attributes) if goal.attributes else 1.0,
        r_option=n_opt / len(goal_values) if goal_values else None,
        r_price=r_price,
        w_att=len(goal.attributes) / denominator,
        w_option=len(goal_values) / denominator,
        w_price=1 / denominator,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
        matched_attributes=matched_attributes,
        matched_options=matched_options,
    )
