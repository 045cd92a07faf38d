"""The shop an environment plays in: catalog, goals and search index, built once and cached.

Generating 10,000 products and indexing them takes seconds; environments are made many times
per process and in many processes, so :func:`load_shop` keeps one :class:`Shop` per
(seed, size) in the process and one copy on disk. The disk cache is a folder per key
(generator version, a digest of the generator's source and of the ``bm25s`` version, seed,
size) under ``<cache_dir>/shop`` (default ``$AGENTROPY_CACHE``, else ``~/.cache/agentropy``). It is
written to a temporary folder and renamed into place, so a reader never sees a half-written
cache and two processes that build at once both end with a complete one. A cache that cannot
be read is rebuilt; one that cannot be written is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bm25s
from agentropy.envs.webshop import catalog as catalog_module
from agentropy.envs.webshop import search as search_module
from agentropy.envs.webshop import vocab as vocab_module
from agentropy.envs.webshop.catalog import GENERATOR_VERSION, Catalog, Goal, Product, build_catalog
from agentropy.envs.webshop.search import SearchEngine

__all__ = ["Shop", "default_cache_dir", "load_shop"]

log = logging.getLogger(__name__)

_SHOPS: dict[tuple[int, int], Shop] = {}
#: Goal fields that are copies of the target product's (goal field -> product field).
_FROM_TARGET = {"category": "category", "query": "query", "name": "name",
                "product_category": "product_category", "title_nouns": "title_nouns"}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Shop:
    """A catalog with its goals and search engine (read-only; shared by environments).

    Attributes:
        catalog: products, goals and splits.
        engine: BM25 over the products' search documents, in catalog order.
        by_asin: product by ASIN.
        key: the cache key (also a stable name of this catalog).
    """

    catalog: Catalog
    engine: SearchEngine
    by_asin: Mapping[str, Product]
    key: str

    def search(self, query: str) -> tuple[Product, ...]:
        """The top hits of ``query``, best first."""
        products = self.catalog.products
        return tuple(products[i] for i in self.engine.search(query))


def default_cache_dir() -> Path:
    return Path(os.environ.get("AGENTROPY_CACHE") or Path.home() / ".cache" / "agentropy")


def _cache_key(seed: int, num_products: int) -> str:
    digest = hashlib.sha256()
    for module in (vocab_module, catalog_module, search_module):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(bm25s.__version__.encode())
    return f"shop-v{GENERATOR_VERSION}-{digest.hexdigest()[:12]}-seed{seed}-n{num_products}"


def _write(folder: Path, catalog: Catalog, engine: SearchEngine) -> None:
    (folder / "products.json").write_text(
        json.dumps([p.to_json() for p in catalog.products], separators=(",", ":"))
    )
    # Goals store only their own fields; the target's (title, breadcrumb, ...) are copied back
    # from the product on reading.
    goals = [{k: v for k, v in g.to_json().items() if k not in _FROM_TARGET} for g in catalog.goals]
    (folder / "goals.json").write_text(
        json.dumps({"splits": catalog.splits, "goals": goals}, separators=(",", ":"))
    )
    engine.save(folder / "index")
    (folder / "meta.json").write_text(json.dumps({"seed": catalog.seed,
                                                  "num_products": len(catalog.products)}))


def _read(folder: Path) -> tuple[Catalog, SearchEngine]:
    meta = json.loads((folder / "meta.json").read_text())
    products = tuple(Product.from_json(d) for d in json.loads((folder / "products.json").read_text()))
    goal_data = json.loads((folder / "goals.json").read_text())
    by_asin = {p.asin: p for p in products}
    goals = tuple(
        Goal.from_json({**d, **{k: getattr(by_asin[d["asin"]], _FROM_TARGET[k]) for k in _FROM_TARGET}})
        for d in goal_data["goals"]
    )
    catalog = Catalog(
        seed=int(meta["seed"]),
        products=products,
        goals=goals,
        splits={name: (int(a), int(b)) for name, (a, b) in goal_data["splits"].items()},
    )
    engine = SearchEngine.load(folder / "index")
    if engine.num_docs != len(products):
        raise ValueError(f"index of {engine.num_docs} documents for {len(products)} products")
    return catalog, engine


def _build(seed: int, num_products: int) -> tuple[Catalog, SearchEngine]:
    catalog = build_catalog(seed, num_products)
    engine = SearchEngine.build([p.search_document() for p in catalog.products])
    return catalog, engine


def _store(root: Path, key: str, catalog: Catalog, engine: SearchEngine) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    except OSError as exc:
        log.warning("shop cache %s is not writable (%s); not caching", root, exc)
        return
    try:
        _write(tmp, catalog, engine)
        tmp.chmod(0o755)
        os.rename(tmp, root / key)  # atomic; fails if another process got there first
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_shop(seed: int = 0, num_products: int = 10_000, cache_dir: str | Path | None = None) -> Shop:
    """The shop of (seed, size): from this process, else from the disk cache, else built.

    Args:
        seed: catalog generator seed.
        num_products: catalog size.
        cache_dir: folder of the disk cache (default :func:`default_cache_dir`).
    """
    memo = (int(seed), int(num_products))
    with _LOCK:
        shop = _SHOPS.get(memo)
        if shop is not None:
            return shop
        key = _cache_key(seed, num_products)
        root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "shop"
        folder = root / key
        start = time.perf_counter()
        loaded = None
        if folder.is_dir():
            try:
                loaded = _read(folder)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("shop cache %s is unreadable (%s); rebuilding it", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        if loaded is None:
            loaded = _build(seed, num_products)
            _store(root, key, *loaded)
            log.info("built shop %s in %.1f s", key, time.perf_counter() - start)
        catalog, engine = loaded
        shop = Shop(catalog=catalog, engine=engine, by_asin={p.asin: p for p in catalog.products},
                    key=key)
        _SHOPS[memo] = shop
        return shop
