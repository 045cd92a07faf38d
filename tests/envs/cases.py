"""Which envs the contract tests make: for every registered id, a few kwargs sets.

A family adds its cases here; ``test_every_registered_id_has_cases`` fails if one is missing.
"""

from __future__ import annotations

from typing import Any

#: env id -> list of (case name, make kwargs). Cases should be fast to make and reset.
ENV_CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "agentropy/TWX-v0": [
        ("coin", {"game": "coin"}),
        ("cookingworld", {"game": "cookingworld", "split": "dev"}),
        ("sorting", {"game": "sorting", "split": "test"}),
    ],
    "agentropy/WebShop-v0": [
        ("default", {}),
        ("small-test", {"split": "test", "num_products": 1000}),
        ("small-dev", {"split": "dev", "num_products": 1000}),
    ],
    # Generated household games (small scenes); loading a game costs about a second.
    "agentropy/ALFWorld-v0": [
        ("train", {}),
        ("valid_unseen", {"split": "valid_unseen", "task_types": ["look_at_obj_in_light", 6]}),
    ],
    # Generated games are cached on disk (~/.cache/agentropy/textworld); num_games bounds how
    # many a fresh machine generates (2-10 s each).
    "agentropy/TextWorld-v0": [
        ("coin", {"game": "coin", "num_games": 4}),
        ("cooking-valid", {"game": "cooking", "split": "valid", "num_games": 3}),
        ("treasure-replan", {"game": "treasure", "split": "test", "num_games": 3, "expert_replans": True}),
    ],
    # A task with short gold paths (the turn limit is 30) and quick loads. The JVM makes every
    # case cost seconds; tests/envs/test_scienceworld.py covers the admissible-commands mode.
    "agentropy/ScienceWorld-v0": [
        ("find-animal", {"tasks": "find-animal"}),
    ],
}


def all_cases() -> list[tuple[str, str, dict[str, Any]]]:
    return [(env_id, name, kwargs) for env_id, cases in ENV_CASES.items() for name, kwargs in cases]
