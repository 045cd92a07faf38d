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


def _ray_processes() -> set[int]:
    """Pids of this machine's Ray processes (raylet, GCS, workers), from /proc."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"ray/core" in cmd or b"ray::" in cmd or b"raylet" in cmd or b"gcs_server" in cmd:
            out.add(int(pid))
    return out


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for this test session, started the way ``cluster=ray`` starts one (loopback
    only, 2 CPUs), and stopped at the end; no Ray process may outlive it."""
    import time

    from agentropy.algorithms.cluster import connect
    from agentropy.configs.schema import ClusterConfig

    before = _ray_processes()
    session = connect(ClusterConfig(backend="ray", num_cpus=2, object_store_mb=128))
    assert session.started
    yield session
    session.close()
    deadline = time.monotonic() + 30
    while (_ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ray_processes() - before == set(), "Ray processes outlived the session"
