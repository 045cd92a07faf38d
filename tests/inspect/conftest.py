"""Run folders shared by the inspection tests (built once per session)."""

from __future__ import annotations

import pytest

from tests.inspect.runs import write_hostile_run


@pytest.fixture(autouse=True)
def index_cache(tmp_path_factory, monkeypatch):
    """Run indexes are cached in a folder of the test session, never in the user's home."""
    folder = tmp_path_factory.getbasetemp() / "index-cache"
    monkeypatch.setenv("AGENTROPY_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory):
    """A small training run with hostile recorded texts (see tests/inspect/runs.py)."""
    return write_hostile_run(tmp_path_factory.mktemp("runs") / "hostile")


@pytest.fixture(scope="session")
def played_run(tmp_path_factory: pytest.TempPathFactory):
    """Real TextWorldExpress coin episodes, recorded by agentropy.play: 3 expert, 3 random."""
    from agentropy.play import play

    run = tmp_path_factory.mktemp("runs") / "played"
    play("agentropy/TWX-v0", agent="expert", episodes=3, out_dir=run, env_kwargs={"game": "coin"})
    play("agentropy/TWX-v0", agent="random", episodes=3, out_dir=run, env_kwargs={"game": "coin"},
         seed=10, max_turns=12)
    return run
