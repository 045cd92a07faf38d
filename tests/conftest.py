"""Shared fixtures. No test touches a model hub: HF_HUB_OFFLINE is set before anything imports
transformers, and models are built locally by agentropy.agents.tiny."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """The local tiny model, built once per test session (about 3 s)."""
    from agentropy.agents.tiny import make_model

    return make_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """(model, tokenizer) loaded from :func:`tiny_model_dir`, in eval mode."""
    from agentropy.agents.tiny import load_pretrained

    model, tokenizer = load_pretrained(tiny_model_dir)
    model.eval()
    return model, tokenizer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``vllm`` need the vLLM environment; elsewhere they are skipped with a reason
    (``scripts/test.sh`` runs them in ``.venv-vllm`` after the main suite)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="vllm is not installed here; scripts/test.sh runs these in .venv-vllm")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)
