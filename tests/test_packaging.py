"""The built wheel: one top-level name, ``agentropy``, and every module and data file in it.

The wheel is built from a copy of the repository (setuptools writes ``build/`` and an
``.egg-info`` next to the sources), without build isolation, so no download is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Repository folder -> where its files land in the wheel (pyproject's package-dir).
FOLDERS = {"agentropy": "agentropy", "envs": "agentropy/envs", "agents": "agentropy/agents",
           "algorithms": "agentropy/algorithms", "configs": "agentropy/configs"}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "runs", "outputs", "__pycache__", "build", "*.egg-info", ".pytest_cache"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(src)], check=True, capture_output=True)
    (wheel,) = out.glob("agentropy-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.mark.slow
def test_wheel_holds_only_agentropy(wheel_names):
    tops = {name.split("/", 1)[0] for name in wheel_names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"agentropy"}
    assert all(t.startswith("agentropy-") for t in dist_info)


@pytest.mark.slow
def test_wheel_holds_every_module_and_config(wheel_names):
    missing = []
    for folder, target in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            if path.suffix in (".py", ".yaml") or path.parent.name in ("static", "data"):
                rel = path.relative_to(ROOT / folder).as_posix()
                if f"{target}/{rel}" not in wheel_names:
                    missing.append(f"{folder}/{rel}")
    assert not missing, f"not in the wheel: {missing}"
