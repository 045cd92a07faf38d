"""The web-shopping family (envs/webshop): reward, grammar, pages, catalog, search, expert, HTTP.

The contract every env keeps (check_env, determinism, fuzz, ...) is tested for
``agentropy/WebShop-v0`` by tests/envs/test_contract.py through tests/envs/cases.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import pytest
from agentropy.envs.webshop import store
from agentropy.envs.webshop.catalog import (
    NO_CEILING,
    Goal,
    Product,
    build_catalog,
    format_price,
    parse_price,
    price_ceiling,
)
from agentropy.envs.webshop.env import ShopEnv
from agentropy.envs.webshop.expert import next_action, plan_for
from agentropy.envs.webshop.reward import attribute_matches, compute_reward, token_set_ratio, type_reward
from agentropy.envs.webshop.search import SearchEngine
from agentropy.envs.webshop.session import parse_action
from agentropy.envs.webshop.vocab import CATEGORIES, MODIFIERS

from agentropy import envs  # noqa: F401  (registers the ids)

SMALL = 1000  # products of the small catalog used where the default one is not needed


@pytest.fixture(scope="module")
def small_shop():
    return store.load_shop(0, SMALL)


@pytest.fixture(scope="module")
def default_shop():
    return store.load_shop()


# --------------------------------------------------------------------------- reward
SHAMPOO_PATH = "Beauty & Personal Care \u203a Hair Care \u203a Shampoo & Conditioner \u203a Shampoos"


def _product(**changes) -> Product:
    fields = dict(
        asin="B000000001", name="Lumora Shampoo, Tea Tree", category="beauty", query="shampoo",
        product_category=SHAMPOO_PATH, description="A gentle shampoo.", bullets=("GENTLE: for every day.",),
        attributes=("tea tree", "essential oil", "natural ingredients"),
        options=(("color", ("grey", "black")), ("size", ("xl", "x-large", "large"))),
        price_raw="$35.00", pricing=(35.0,), hidden_price=35.0, title_nouns=("lumora", "shampoo"),
    )
    fields.update(changes)
    return Product(**fields)


def _goal(**changes) -> Goal:
    fields = dict(
        index=0, asin="B000000001", category="beauty", query="shampoo", name="Lumora Shampoo, Tea Tree",
        product_category=SHAMPOO_PATH, title_nouns=("lumora", "shampoo"), instruction_text="...",
        attributes=("tea tree", "essential oils", "natural ingredients"),
        goal_options=(("color", "grey"), ("size", "xl")), price_upper=40.0, price_draw=(30.0, 40.0),
        weight=1.0,
    )
    fields.update(changes)
    return Goal(**fields)


# The acceptance cases of docs/webshop.md section 6.7: A = [tea tree, essential oils, natural
# ingredients], hidden price 35 <= ceiling 40, r_type 1 unless stated.
NO_ATTRIBUTES = dict(attributes=(), name="Lumora Shampoo", bullets=("GENTLE: for every day.",),
                     description="A gentle shampoo with natural ingredients.")


def test_acceptance_case_1_everything_matches():
    # essential oil ~ essential oils (token-set ratio 96 > 85): n_att 3, n_opt 2, r_price 1.
    # R = 1 * (3 + 2 + 1) / (3 + 2 + 1) = 6/6 = 1.
    result = compute_reward(_product(), _goal(), {"color": "grey", "size": "xl"})
    assert result.reward == 1.0
    assert (result.r_type, result.r_att, result.r_option, result.r_price) == (1.0, 1.0, 1.0, 1.0)


def test_acceptance_case_2_text_fallback_only():
    # No product attributes; "natural ingredients" is only in the description: n_att 1.
    # R = (1 + 2 + 1) / 6 = 4/6 = 0.6667.
    result = compute_reward(_product(**NO_ATTRIBUTES), _goal(), {"color": "grey", "size": "xl"})
    assert result.reward == pytest.approx(4 / 6)
    assert result.matched_attributes == ("natural ingredients",)


def test_acceptance_case_3_missing_option():
    # As case 2 plus goal option "pack of 12", not selected: |O| = 3, n_opt 2.
    # R = (1 + 2 + 1) / (3 + 3 + 1) = 4/7 = 0.5714.
    goal = _goal(goal_options=(("color", "grey"), ("size", "xl"), ("pack", "pack of 12")))
    result = compute_reward(_product(**NO_ATTRIBUTES), goal, {"color": "grey", "size": "xl"})
    assert result.reward == pytest.approx(4 / 7)
    assert result.r_option == pytest.approx(2 / 3)


def test_acceptance_case_4_type_mismatch_halves():
    # Query mismatch, breadcrumbs share 1 element, title_score = 3/20 = 0.15: none of the three
    # type signals holds -> 0.5; 0.15 >= 0.1 keeps it. R = 0.5 * 4/7 = 2/7 = 0.2857.
    target_nouns = tuple(f"n{i}" for i in range(20))
    goal = _goal(goal_options=(("color", "grey"), ("size", "xl"), ("pack", "pack of 12")),
                 title_nouns=target_nouns)
    product = _product(**NO_ATTRIBUTES, query="body wash",
                       product_category="Beauty & Personal Care \u203a Bath \u203a Body Washes",
                       title_nouns=("n0", "n1", "n2", "other"))
    result = compute_reward(product, goal, {"color": "grey", "size": "xl"})
    assert (result.query_match, result.category_match) == (False, False)
    assert result.title_score == pytest.approx(0.15)
    assert result.r_type == 0.5
    assert result.reward == pytest.approx(0.5 * 4 / 7)


def test_wrong_size_is_not_a_match():
    # The original's fuzzy option match scores tsr("x-large", "large") = 100 and would pay it.
    # Here options must be equal: A = [tea tree] matched, O = [large] not, price ok.
    # R = (1 + 0 + 1) / (1 + 1 + 1) = 2/3.
    goal = _goal(attributes=("tea tree",), goal_options=(("size", "large"),))
    result = compute_reward(_product(), goal, {"size": "x-large"})
    assert token_set_ratio("x-large", "large") == 100
    assert result.reward == pytest.approx(2 / 3)
    assert compute_reward(_product(), goal, {"size": "large"}).reward == 1.0
    # Case and spacing do not matter; selected values may also be given as a list.
    assert compute_reward(_product(), goal, ["  Large "]).reward == 1.0


def test_price_over_the_ceiling_and_hidden_range_price():
    # Hidden 45 > 40: r_price 0. A = [tea tree] matched, no options: R = (1 + 0) / (1 + 1) = 0.5.
    goal = _goal(attributes=("tea tree",), goal_options=())
    assert compute_reward(_product(hidden_price=45.0, pricing=(45.0,)), goal, {}).reward == 0.5
    # Shown as "$30.0 to $50.0", scored on the stored hidden draw: 38 passes, 42 does not.
    ranged = dict(pricing=(30.0, 50.0), price_raw="$30.00 - $50.00")
    assert compute_reward(_product(hidden_price=38.0, **ranged), goal, {}).reward == 1.0
    assert compute_reward(_product(hidden_price=42.0, **ranged), goal, {}).reward == 0.5
    # Equal to the ceiling passes (<=), and no price clause passes any price.
    assert compute_reward(_product(hidden_price=40.0), goal, {}).r_price == 1.0
    no_clause = _goal(attributes=("tea tree",), goal_options=(), price_upper=NO_CEILING)
    assert compute_reward(_product(hidden_price=1500.0), no_clause, {}).reward == 1.0


def test_type_reward_rules():
    goal = _goal(title_nouns=("lumora", "shampoo", "oil", "tree", "bottle", "x", "y", "z", "w", "v",
                              "u", "t", "s", "r", "q", "p", "o", "m", "l", "k"))
    other = dict(query="lipstick", product_category="Beauty \u203a Makeup")
    # title_score 0 -> r_type 0, even with everything else right.
    assert type_reward(_product(**other, title_nouns=("nothing",)), goal)[0] == 0.0
    # 1/20 = 0.05 < 0.1 -> 0.1; R = 0.1 * 6/6 = 0.1 with all attributes, options and price.
    product = _product(**other, title_nouns=("lumora",))
    assert type_reward(product, goal) == (0.1, False, False, 0.05)
    assert compute_reward(product, _goal(title_nouns=goal.title_nouns), {"a": "grey", "b": "xl"}).reward == (
        pytest.approx(0.1))
    # 5/20 = 0.25 > 0.2 alone keeps r_type 1.
    assert type_reward(_product(**other, title_nouns=("lumora", "shampoo", "oil", "tree", "bottle")),
                       goal)[0] == 1.0
    # A query match alone keeps 1 (title_score 0.15 >= 0.1).
    assert type_reward(_product(title_nouns=("lumora", "shampoo", "oil")), goal)[0] == 1.0
    # Two shared breadcrumb elements alone keep 1.
    crumbs = _product(query="x", product_category="Beauty & Personal Care \u203a Hair Care \u203a Other",
                      title_nouns=("lumora", "shampoo", "oil"))
    assert type_reward(crumbs, goal)[:3] == (1.0, False, True)
    # Duplicated target nouns count in the denominator: {a} & {a} over [a, a, b] = 1/3.
    score = type_reward(_product(title_nouns=("a",)), _goal(title_nouns=("a", "a", "b")))[3]
    assert score == pytest.approx(1 / 3)


def test_attribute_matching_rules():
    bare = dict(name="Lumora Shampoo", description="A shampoo.", bullets=())
    # Fuzzy variants match; strict token supersets do not (tsr would be 100).
    assert token_set_ratio("essential oil", "essential oils") == 96
    assert attribute_matches("essential oils", _product(attributes=("essential oil",), **bare))
    assert not attribute_matches("tea tree", _product(attributes=("tea tree oil",), **bare))
    assert not attribute_matches("tea tree oil", _product(attributes=("tea tree",), **bare))
    # ... but the text fallback still finds the phrase itself, as whole words.
    assert attribute_matches("tea tree", _product(attributes=(), name="Lumora Tea Tree Oil Shampoo",
                                                  description="", bullets=()))
    assert not attribute_matches("ash", _product(attributes=(), name="Lumora Shampoo",
                                                 description="Machine washable.", bullets=()))
    assert attribute_matches("machine wash", _product(attributes=(), name="x", description="",
                                                      bullets=("MACHINE WASH: easy care.",)))
    assert token_set_ratio("", "anything") == 0


# --------------------------------------------------------------------------- catalog
def test_prices_parse_and_show_like_webshop():
    assert parse_price("$1,299.99") == (1299.99,)
    assert parse_price("$10.00 - $20.00 - $30.00") == (10.0, 20.0)
    assert parse_price("") == (100.0,) and parse_price("call us") == (100.0,)
    assert format_price((24.99,)) == "$24.99" and format_price((5.0,)) == "$5.0"
    assert format_price((10.0, 20.0)) == "$10.0 to $20.0"


def test_price_ceiling_draws():
    # Price 35: the multiples above are 40, 50, 60, 70; the ceiling is the larger of two drawn
    # without replacement: 50 w.p. 1/6, 60 w.p. 2/6, 70 w.p. 3/6.
    rng = random.Random(0)
    counts = Counter(price_ceiling(35.0, rng)[0] for _ in range(6000))
    assert set(counts) == {50.0, 60.0, 70.0}
    assert counts[50.0] / 6000 == pytest.approx(1 / 6, abs=0.03)
    assert counts[70.0] / 6000 == pytest.approx(1 / 2, abs=0.03)
    assert price_ceiling(975.0, rng)[0] == 990.0  # 980 and 990 remain
    assert price_ceiling(980.0, rng) == (NO_CEILING, ())  # only 990 is above


def test_lexicon_is_consistent():
    for category, types in CATEGORIES.items():
        for ptype in types:
            for head in ptype.heads:
                nouns = [w for w in head.split() if w not in MODIFIERS]
                assert set(ptype.nouns) <= set(nouns), (category, head)
            for _, values in ptype.options:
                assert all(v == v.lower().strip() and "/" not in v for v in values)


def test_catalog_is_deterministic_and_pinned():
    a, b = build_catalog(0, 200), build_catalog(0, 200)
    assert a == b
    assert build_catalog(1, 200).products != a.products
    # Pinned content: any change of the generator's output must bump GENERATOR_VERSION.
    first = a.products[0]
    assert (first.asin, first.name) == ("B08DPA8JQP", "Tiko Heritage High Protein Bars, Shelf Stable")
    blob = json.dumps([x.to_json() for x in a.products] + [x.to_json() for x in a.goals])
    assert hashlib.sha256(blob.encode()).hexdigest() == (
        "48274a6954f467dec270ca417f3283ad7ad331f13b6aa398392782ab965e81d2")


def test_default_catalog_shape(default_shop):
    catalog = default_shop.catalog
    products = catalog.products
    assert len(products) == 10_000 and len({p.asin for p in products}) == 10_000
    assert Counter(p.category for p in products) == {c: 2000 for c in CATEGORIES}
    assert all(len(p.asin) == 10 and p.asin.isupper() and p.name.isascii() for p in products)
    assert sum(len(p.pricing) == 2 for p in products) > 1000  # price ranges
    assert any(p.price_raw == "" and p.pricing == (100.0,) for p in products)
    assert any(not p.attributes for p in products) and any(not p.options for p in products)
    assert catalog.splits["test"] == (0, 500)
    assert catalog.splits["train"] == (500, catalog.splits["dev"][0])
    assert catalog.splits["dev"][1] - catalog.splits["dev"][0] == 500
    for goal in catalog.goals[:2000]:
        target = default_shop.by_asin[goal.asin]
        text = goal.instruction_text
        assert goal.query in text and all(a in text for a in goal.attributes)
        assert all(f"{n}: {v}" in text for n, v in goal.goal_options)
        assert set(goal.attributes) <= set(target.attributes)
        if goal.price_upper < NO_CEILING:
            assert text.endswith(f", and price lower than {goal.price_upper:.2f} dollars")
            assert target.hidden_price <= goal.price_upper and goal.price_upper == max(goal.price_draw)
        else:
            assert target.hidden_price >= 980 and "price" not in text


def test_cache_round_trip_and_repair(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_SHOPS", {})
    built = store.load_shop(3, 300, tmp_path)
    folders = list((tmp_path / "shop").iterdir())
    assert [f.name for f in folders] == [built.key]  # no temporary folder left behind
    monkeypatch.setattr(store, "_SHOPS", {})
    loaded = store.load_shop(3, 300, tmp_path)
    assert loaded.catalog == built.catalog
    assert loaded.search("tea tree shampoo") == built.search("tea tree shampoo")
    assert store.load_shop(3, 300, tmp_path) is loaded  # the process keeps one per key
    # A damaged cache is rebuilt, not trusted.
    (folders[0] / "goals.json").write_text("{not json")
    monkeypatch.setattr(store, "_SHOPS", {})
    assert store.load_shop(3, 300, tmp_path).catalog == built.catalog


def test_processes_building_at_once_share_one_cache(tmp_path):
    code = ("import sys; from agentropy.envs.webshop.store import load_shop; "
            "print(len(load_shop(5, 400, sys.argv[1]).catalog.goals))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    assert len(list((tmp_path / "shop").iterdir())) == 1  # one complete folder, no leftovers


def test_unwritable_cache_still_gives_a_shop(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(store, "_SHOPS", {})
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    shop = store.load_shop(6, 100, blocker)
    assert len(shop.catalog.products) == 100
    assert "not writable" in caplog.text


# --------------------------------------------------------------------------- search
def test_search_is_bm25_with_stemming_stopwords_and_ties():
    docs = ["red shoes for running", "blue shoe", "red shoe", "the and of", "red shoes for running"]
    engine = SearchEngine.build(docs)
    hits = engine.search("Running SHOES")
    assert hits[:2] == (0, 4)  # identical documents tie: catalog order decides
    assert set(hits) == {0, 1, 2, 4}  # stemming: shoes ~ shoe; doc 3 shares no term
    assert engine.search("the of and") == ()  # stopwords only: nothing
    assert engine.search("zebra") == ()
    assert engine.search("shoe", k=2) == (1, 2)  # shorter documents first (b = 0.4), then order


def test_catalog_search_pages_of_ten(small_shop):
    # 1,000 products hold 25 of each of the 40 product types.
    assert [h.query for h in small_shop.search("shampoo")] == ["shampoo"] * 25
    hits = small_shop.search("women dress")
    assert len(hits) == 50 and all(h.query == "women's dresses" for h in hits[:10])
    assert small_shop.search("women dress") == hits


# --------------------------------------------------------------------------- grammar and pages
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("click[Buy Now]", ("click", "buy now")),
        ("search[red shoes] and more", ("search", "red shoes")),
        ("search[a [b]] c", ("search[a ", "b]")),
        ("click[< prev]", ("click", "< prev")),
        ("click[]", ("click[]", None)),
        ("click", ("click", None)),
        ("[x]", ("[x]", None)),
        ("click [buy now]", ("click ", "buy now")),
        ("a[b]c[d]", ("a[b]c", "d")),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


@pytest.fixture()
def env():
    environment = ShopEnv(split="test", num_products=SMALL)
    yield environment
    environment.close()


def _step(env, action):
    obs, reward, terminated, truncated, info = env.step(action)
    return obs, info


def test_grammar_through_the_env(env):
    obs, info = env.reset(seed=0, options={"task": 0})
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] ") and obs.endswith(" [SEP] Search")
    assert info["admissible_commands"] == ["search[<your query>]"]
    for bad in ("search[]", "search[   ]", "click[search]", "Search[shampoo]", "look", "click[next >]",
                "search[a [b]]"):
        o, i = _step(env, bad)
        assert i["action_is_valid"] is False and o.startswith("Nothing happens"), bad
    assert env.session.page == "search"
    obs, info = _step(env, "search[Tea Tree SHAMPOO] please")
    assert info["action_is_valid"] and env.session.keywords == "tea tree shampoo"
    assert obs.split(" [SEP] ")[2:5] == ["Back to Search", "Page 1 (Total results: 50)", "Next >"]
    assert "search[<your query>]" not in info["admissible_commands"]
    assert _step(env, "search[again]")[1]["action_is_valid"] is False  # no search bar here
    first = info["admissible_commands"][2]
    obs, info = _step(env, first.upper().replace("CLICK", "click"))  # ARG case is ignored
    assert info["action_is_valid"] and env.session.page == "item"
    assert _step(env, "click[ buy now]")[1]["action_is_valid"] is False  # nothing is trimmed


def test_paging_and_back_transitions(env):
    env.reset(seed=0, options={"task": 1})
    _step(env, "search[women dress]")
    seen = []
    for page in range(1, 6):
        obs, info = _step(env, "click[next >]") if page > 1 else (env.session.observation(), None)
        assert f"Page {page} (Total results: 50)" in obs
        assert ("< Prev" in obs) == (page > 1)
        seen += [p.asin for p in env.session.page_hits()]
    assert len(seen) == 50 == len(set(seen))
    obs, info = _step(env, "click[next >]")  # past the end: an empty page
    assert "Page 6 (Total results: 50)" in obs and env.session.page_hits() == ()
    assert info["admissible_commands"] == ["click[back to search]", "click[< prev]", "click[next >]"]
    _step(env, "click[< prev]")
    _step(env, "click[< prev]")
    assert env.session.page_num == 4
    product = env.session.page_hits()[0]
    obs, info = _step(env, f"click[{product.asin.lower()}]")
    assert product.name in obs and f"Price: {product.price_text}" in obs
    assert obs.endswith("Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")
    values = product.option_values
    if values:
        _step(env, f"click[{values[-1]}]")
        assert values[-1] in env.session.selected.values()
    obs, info = _step(env, "click[features]")
    assert obs.endswith(" [SEP] ".join(product.bullets))
    assert info["admissible_commands"] == ["click[back to search]", "click[< prev]"]
    _step(env, "click[< prev]")  # sub-page -> item, options kept
    assert env.session.page == "item" and (not values or values[-1] in env.session.selected.values())
    obs, _ = _step(env, "click[description]")
    assert obs.endswith(product.description)
    _step(env, "click[< prev]")
    obs, _ = _step(env, "click[reviews]")
    assert obs.endswith("Back to Search [SEP] < Prev")
    _step(env, "click[< prev]")
    _step(env, "click[< prev]")  # item -> results at the same page, options cleared
    assert (env.session.page, env.session.page_num, env.session.selected) == ("results", 4, {})
    obs, info = _step(env, "click[back to search]")
    assert env.session.page == "search" and env.session.keywords == ""
    assert info["admissible_commands"] == ["search[<your query>]"]


def test_purchase_ends_the_episode(env):
    obs, info = env.reset(seed=0, options={"task": 2})
    goal = env.session.goal
    _step(env, f"search[{goal.query}]")
    product = env.session.page_hits()[0]
    _step(env, f"click[{product.asin.lower()}]")
    obs, reward, terminated, truncated, info = env.step("click[buy now]")
    expected = compute_reward(product, goal, {})
    assert terminated and not truncated and reward == info["score"] == expected.reward
    assert info["won"] is (expected.reward == 1.0)
    assert info["purchase"]["asin"] == product.asin and info["purchase"]["r_type"] == expected.r_type
    assert obs.startswith("Thank you for shopping with us!") and info["admissible_commands"] == []
    assert "Your score (min 0.0, max 1.0) [SEP] " in obs
    o, r, terminated, truncated, i = env.step("click[buy now]")
    assert i["action_is_valid"] is False and r == 0.0 and terminated


def test_expert_recovers_from_detours(env):
    env.reset(seed=0, options={"task": 3})
    _step(env, "search[zebra stripes]")
    _step(env, "click[next >]")
    obs, info = _step(env, "click[back to search]")
    obs, info = _step(env, "search[black]")
    obs, info = _step(env, info["admissible_commands"][-1])  # some other product
    assert info["expert_action"] == "click[< prev]"
    for _ in range(15):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        assert info["action_is_valid"]
        if terminated:
            break
    assert info["won"] and info["score"] == 1.0 and info["expert_action"] is None


def _play_expert(env, index):
    obs, info = env.reset(seed=0, options={"task": index})
    for turn in range(15):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        assert info["action_is_valid"], (index, info["invalid_reason"])
        if terminated:
            return info, turn + 1
    raise AssertionError(f"goal {index} not bought in 15 turns")


@pytest.mark.parametrize(("split", "every"), [("test", 1), ("dev", 1), ("train", 9)])
def test_oracle_buys_every_goal(split, every, default_shop):
    env = ShopEnv(split=split)
    try:
        lengths = Counter()
        for index in range(0, env.num_tasks, every):
            info, turns = _play_expert(env, index)
            assert info["won"] and info["score"] == 1.0, (split, index, info["purchase"])
            lengths[turns] += 1
        assert max(lengths) <= 10
    finally:
        env.close()


def test_plans_use_the_instruction_query_mostly(default_shop):
    goals = default_shop.catalog.split_goals("test")
    plans = [plan_for(default_shop, g) for g in goals]
    from_instruction = sum(p.query.startswith(g.query.lower()) for p, g in zip(plans, goals, strict=True))
    assert from_instruction / len(goals) > 0.9
    assert all(p.target_page is not None for p in plans)


def test_seeded_resets_repeat(small_shop):
    a, b = ShopEnv(num_products=SMALL), ShopEnv(num_products=SMALL)
    try:
        for seed in range(5):
            oa, ia = a.reset(seed=seed)
            ob, ib = b.reset(seed=seed)
            assert (oa, ia) == (ob, ib)
            for action in ("search[red]", "click[next >]", "click[back to search]", "search[soft]"):
                assert a.step(action) == b.step(action)
    finally:
        a.close(), b.close()


# --------------------------------------------------------------------------- HTML over HTTP
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_RAW = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _get(url):
    with _OPENER.open(url, timeout=30) as response:
        return response.status, response.read().decode()


def _post(url, data, opener=_OPENER, content_type="application/x-www-form-urlencoded"):
    body = data if isinstance(data, bytes) else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def server(small_shop):
    from agentropy.envs.webshop.web import ShopServer

    with ShopServer({"num_products": SMALL}) as srv:
        yield srv


def test_http_oracle_purchase(server):
    url = server.new_session_url(split="test", goal=5)
    env = server.session(url.rsplit("/", 1)[1])
    plan = plan_for(env.shop, env.session.goal)
    status, page = _get(url)
    assert status == 200 and '<input type="text" name="query"' in page
    for _ in range(15):
        action = next_action(env.session, plan)
        if action is None:
            break
        name, arg = parse_action(action)
        data = {"query": arg} if name == "search" else {"action": action}
        status, page = _post(url, data)  # 303 to the session page, followed
        assert status == 200, page
    assert "Thank you for shopping with us!" in page
    assert "Your score (min 0.0, max 1.0): <b>1.0</b>" in page
    assert env.session.purchase.result.reward == 1.0


def test_http_pages_are_escaped(server):
    url = server.new_session_url(split="test", goal=6)
    nasty = "<script>alert('x')</script> & \"shampoo\""
    status, page = _post(url, {"query": nasty})
    assert status == 200
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'value="click[next &gt;]"' in page and "&amp; &quot;shampoo&quot;" in page


def test_http_bad_requests(server):
    url = server.new_session_url(split="test", goal=7)
    status, page = _post(url, {"action": "click[nowhere]"})
    assert status == 400 and "Nothing happens" in page and "Search" in page
    assert _post(url, {"action": "x" * 300})[0] == 400
    assert _post(url, {"other": "1"})[0] == 400
    assert _post(url, b"action=click%5Bbuy", content_type="text/plain")[0] == 400
    assert _post(url, b"action=%ff%fe")[0] == 400
    assert _post(url, b"a" * 20_000)[0] == 413
    assert _post(server.url + "/s/999", {"action": "click[buy now]"})[0] == 404
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(server.url + "/nothing/here")
    assert missing.value.code == 404
    assert _post(server.url + "/sessions", {"split": "test", "goal": "100000"})[0] == 400
    assert _post(server.url + "/sessions", {"split": "nope"})[0] == 400
    status, _ = _post(server.url + "/sessions", {"split": "dev", "goal": "1"}, opener=_RAW)
    assert status == 303
    status, index = _get(server.url + "/")
    assert status == 200 and "Start shopping" in index and "/s/1" in index
    # The session survived all of that.
    assert server.session(url.rsplit("/", 1)[1]).session.page == "search"


def test_cli_serves_a_goal(tmp_path):
    command = [sys.executable, "-m", "agentropy.cli", "shop", "--goal", "3", "--num-products", str(SMALL)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/s/1"), url
        status, page = _get(url)
        assert status == 200 and "Instruction:" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


# --------------------------------------------------------------------------- play
def test_play_expert_records_wins(tmp_path):
    from agentropy.play import play, summarize
    from agentropy.records.episodes import read_episodes

    records = play("agentropy/WebShop-v0", agent="expert", episodes=3, out_dir=tmp_path,
                   env_kwargs={"num_products": SMALL, "split": "test"})
    assert summarize(records)["success"] == 1.0
    stored = read_episodes(tmp_path / "episodes.jsonl")
    assert [r.task_id for r in stored] == [r.task_id for r in records]
    assert all(r.task_id.startswith("shop/") and r.score == 1.0 for r in stored)


def _request(server, method, path, headers, body=b""):
    import http.client

    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_http_foreign_hosts_and_cross_site_forms_are_refused(server):
    """DNS rebinding (a foreign Host) and a cross-origin form POST from a page in the user's
    browser are refused; the shop's own pages and plain clients are served."""
    url = server.new_session_url(split="test", goal=8)
    path, ours = "/s/" + url.rsplit("/", 1)[1], url.split("//", 1)[1].split("/", 1)[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"query=shampoo"
    assert _request(server, "GET", path, {"Host": "evil.example"})[0] == 403
    assert _request(server, "GET", path, {"Host": f"rebound.example:{ours.rsplit(':', 1)[1]}"})[0] == 403
    assert _request(server, "GET", path, {"Host": ours})[0] == 200
    refused = [{"Origin": "http://evil.example"}, {"Referer": "http://evil.example/page"},
               {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}]
    for extra in refused:
        status, page = _request(server, "POST", path, {"Host": ours, **form, **extra}, body)
        assert status == 403 and "cross-origin request" in page, extra
    assert server.session(path.rsplit("/", 1)[1]).session.view().kind == "search"  # nothing done
    for extra in [{"Origin": f"http://{ours}"}, {"Referer": f"http://{ours}{path}"}, {}]:
        fresh = "/s/" + server.new_session_url(split="test", goal=8).rsplit("/", 1)[1]
        assert _request(server, "POST", fresh, {"Host": ours, **form, **extra}, body)[0] == 303, extra
