"""The text corpus the local tokenizer is trained on, built from the environments themselves.

The tiny model's tokenizer should cut the text the agent actually reads and writes into few
tokens: task descriptions, observations, admissible commands, actions, and the prompt format.
:func:`environment_texts` plays expert episodes (with some random detours, so non-expert states
appear too) in each registered family and yields those texts. ``agentropy make-corpus`` writes
them to ``agents/data/corpus.txt.gz``, which ships with the package so that every machine trains
the same tokenizer from the same bytes in about a second.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CORPUS_SOURCES", "FORMAT_TEXTS", "build_corpus", "environment_texts", "read_corpus", "write_corpus",
]

log = logging.getLogger(__name__)

#: (env id, make kwargs, episodes) played to build the shipped corpus.
CORPUS_SOURCES: tuple[tuple[str, Mapping[str, Any], int], ...] = (
    ("agentropy/TWX-v0", {"game": "coin"}, 300),
    ("agentropy/TWX-v0", {"game": "cookingworld"}, 100),
    ("agentropy/TWX-v0", {"game": "twc"}, 100),
    ("agentropy/TWX-v0", {"game": "mapreader"}, 60),
    ("agentropy/TWX-v0", {"game": "arithmetic"}, 60),
    ("agentropy/TWX-v0", {"game": "sorting"}, 60),
    ("agentropy/TWX-v0", {"game": "simonsays"}, 60),
    ("agentropy/TWX-v0", {"game": "peckingorder"}, 60),
    ("agentropy/TextWorld-v0", {"game": "cooking"}, 12),
    ("agentropy/TextWorld-v0", {"game": "coin"}, 12),
    ("agentropy/TextWorld-v0", {"game": "treasure"}, 12),
    ("agentropy/ALFWorld-v0", {}, 60),
    ("agentropy/ScienceWorld-v0", {"admissible_commands": True, "variations_per_task": 1}, 30),
    ("agentropy/WebShop-v0", {}, 150),
)

#: Text of the agent's output format, so the tags become single tokens.
FORMAT_TEXTS: tuple[str, ...] = tuple(
    f"<think>{thought}</think><action>{action}</action>"
    for thought, action in [
        ("I should look around first.", "look around"),
        ("The coin is not here, so I will move on.", "move north"),
        ("The target is listed, take it.", "take coin"),
        ("", "inventory"),
    ]
)

DEFAULT_CORPUS = "data/corpus.txt.gz"


def environment_texts(
    sources: Sequence[tuple[str, Mapping[str, Any], int]] = CORPUS_SOURCES,
    *,
    seed: int = 0,
    detour_prob: float = 0.25,
) -> Iterator[str]:
    """Play episodes and yield the texts an agent sees and writes.

    Args:
        sources: (env id, make kwargs, number of episodes) triples.
        seed: seeds the episodes and the random detours.
        detour_prob: probability of a random admissible command instead of the expert's.
    """
    import gymnasium as gym

    from agentropy import envs  # noqa: F401  (registers the ids)

    rng = np.random.default_rng(seed)
    for env_id, kwargs, episodes in sources:
        env = gym.make(env_id, **kwargs)
        try:
            for episode in range(episodes):
                obs, info = env.reset(seed=seed * 100_003 + episode)
                yield info["task"]
                while True:
                    yield obs
                    commands = info["admissible_commands"]
                    if commands:
                        yield "\n".join(commands)
                    action = info.get("expert_action")
                    if commands and (action is None or rng.random() < detour_prob):
                        action = commands[int(rng.integers(len(commands)))]
                    if action is None:
                        break
                    yield f"<think></think><action>{action}</action>"
                    obs, _, terminated, truncated, info = env.step(action)
                    if terminated or truncated:
                        yield obs
                        break
        finally:
            env.close()
        log.info("corpus: played %d episodes of %s %s", episodes, env_id, dict(kwargs))


def write_corpus(texts: Iterable[str], path: str | Path) -> int:
    """Write texts, one per record separated by a blank line, gzip-compressed and byte-stable."""
    n = 0
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for text in texts:
            out.write(text.replace("\n\n", "\n").encode() + b"\n\n")
            n += 1
    return n


def read_corpus(path: str | Path | None = None) -> list[str]:
    """Read a corpus written by :func:`write_corpus`; the shipped one when ``path`` is None."""
    if path is None:
        data = resources.files("agentropy.agents").joinpath(DEFAULT_CORPUS).read_bytes()
    else:
        data = Path(path).read_bytes()
    return [t for t in gzip.decompress(data).decode().split("\n\n") if t]


def build_corpus(path: str | Path, *, seed: int = 0) -> int:
    """Play :data:`CORPUS_SOURCES` and write the corpus to ``path``.

    Texts are de-duplicated (first occurrence kept, in play order): repeats of the same
    observation would only slow BPE training down without changing what it learns much.
    """
    texts = dict.fromkeys([*FORMAT_TEXTS, *environment_texts(seed=seed)])
    return write_corpus(texts, path)
