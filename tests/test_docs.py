"""Every document the repository refers to ships with it, and every cited section exists.

Scans the tracked text files (Python, Markdown, YAML, shell, TOML, JS, HTML) for names of
Markdown files (in code, a name that is a whole string literal is a file the code reads or
writes, and is left alone) and for citations such as "docs/algorithms.md section 7.3" (or "sections 1, 2
and 8", "sections 1-3"), and for Markdown links with anchors. A Markdown file must exist
relative to the repository root or to the citing file's folder; a cited section must be a
numbered heading of that page ("## 3. GiGPO", "### 3.2 ..."); an anchor must be a heading's slug.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".js", ".html"}

# A Markdown file name, alone or with a relative path, not part of a URL or a longer word.
MD_NAME = re.compile(r"(?<![\w/.\-*<{])((?:\.{1,2}/|[\w\-]+/)*[\w\-.]*\w\.md)(?![\w/])")
NUM = r"\d+(?:\.\d+)*"
SECTION_CITE = re.compile(
    rf"(docs/[\w\-]+\.md),?\s+(sections?|§)\s*({NUM}(?:(?:\s*,\s*and\s+|\s*,\s*|\s+and\s+|\s*-\s*){NUM})*)")
MD_LINK = re.compile(r"\]\(([^)\s]*?)(?:#([\w\-]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$", re.M)
NUMBERED = re.compile(rf"^({NUM})(?:\.|\s|$)")
URL = re.compile(r"[a-z]+://\S+")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                 and not {".git", ".venv", "node_modules"} & set(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in names if Path(n).suffix in SUFFIXES and (ROOT / n).is_file()]


@cache
def headings(page: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The numbered sections and the anchor slugs of a Markdown page."""
    numbers, slugs = set(), set()
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    for _, title in HEADING.findall(text):
        m = NUMBERED.match(title)
        if m:
            numbers.add(m.group(1))
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        slugs.add(slug)
    return frozenset(numbers), frozenset(slugs)


def cited_numbers(spec: str) -> list[str]:
    """ "1, 2 and 8" -> [1, 2, 8]; "1-3" -> [1, 2, 3]."""
    out: list[str] = []
    for part in re.split(r"\s*,\s*and\s+|\s*,\s*|\s+and\s+", spec):
        if "-" in part:
            lo, hi = (p.strip() for p in part.split("-", 1))
            if lo.isdigit() and hi.isdigit():
                out += [str(i) for i in range(int(lo), int(hi) + 1)]
                continue
            out += [lo, hi]
        else:
            out.append(part.strip())
    return out


def resolve(name: str, source: Path) -> Path | None:
    for base in (ROOT, source.parent):
        candidate = (base / name).resolve()
        if candidate.is_file() and ROOT in candidate.parents:
            return candidate
    return None


def problems_in(path: Path, raw: str | None = None) -> list[str]:
    """What ``path`` (or ``raw``, read as if it were at ``path``) cites that does not exist."""
    rel = path.relative_to(ROOT)
    if raw is None:
        raw = path.read_text(encoding="utf-8", errors="replace")
    text = URL.sub(" ", raw)
    found = []
    code = path.suffix in {".py", ".js", ".sh"}
    for m in MD_NAME.finditer(text):
        quoted = text[m.start() - 1:m.start()] in ("'", '"') and text[m.end():m.end() + 1] in ("'", '"')
        if code and quoted:
            continue  # a whole string literal is a file the code reads or writes, not a citation
        if resolve(m.group(1), path) is None:
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{rel}:{line}: refers to {m.group(1)}, which is not in the repository")
    # Citations may be split over lines of a comment or docstring: join them first.
    joined = re.sub(r"\s*\n\s*(?:#+:?\s*)?", " ", text)
    for m in SECTION_CITE.finditer(joined):
        page = ROOT / m.group(1)
        if not page.is_file():
            continue  # reported above
        numbers, _ = headings(page)
        for number in cited_numbers(m.group(3)):
            if number not in numbers:
                found.append(f"{rel}: cites {m.group(1)} section {number}, which {m.group(1)} does not have")
    if path.suffix == ".md":
        for m in MD_LINK.finditer(raw):
            target, anchor = m.group(1), m.group(2)
            if URL.match(target) or not anchor:
                continue
            page = path if not target else resolve(target, path)
            if page is None or page.suffix != ".md":
                continue
            if anchor not in headings(page)[1]:
                found.append(f"{rel}: links to {target}#{anchor}, which has no such heading")
    return found


def test_cited_documents_and_sections_exist():
    problems = [p for path in tracked_files() for p in problems_in(path)]
    assert not problems, "\n".join(problems)


def test_the_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    assert pages, "docs/ has no pages"
    missing = [name for name in pages if f"({name})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


@pytest.mark.parametrize(("text", "expected"), [
    ("see docs/algorithms.md section 7.3 for", ["section 7.3"]),
    ("(docs/webshop.md sections 1, 2 and 8)", ["section 1", "section 2", "section 8"]),
    ("docs/alfworld.md sections 1-3)", ["section 1", "section 2", "section 3"]),
])
def test_citations_are_parsed(text, expected):
    m = SECTION_CITE.search(text)
    assert m is not None
    assert [f"section {n}" for n in cited_numbers(m.group(3))] == expected


def test_a_missing_page_or_section_is_reported():
    # The checker must be able to fail: a made-up page and a made-up section are both caught.
    body = "# see docs/algorithms.md section " + "99 and docs/no_such_page" + ".md\n"
    found = problems_in(ROOT / "tests" / "probe.py", body)
    assert any("no_such_page.md" in p for p in found), found
    assert any("section 99" in p for p in found), found


def test_the_learner_page_matches_the_recipes_registries_and_method_configs():
    """docs/algorithms.md section 15 lists every recipe; every registered advantage estimator,
    policy loss and learner part is named; every knob of a wired method's config is documented."""
    import dataclasses

    from agentropy.configs import methods
    from agentropy.configs.parts import names
    from agentropy.configs.schema import AlgorithmConfig

    text = (ROOT / "docs" / "algorithms.md").read_text()
    table = text[text.index("## 15. Every learner"):]
    listed = re.findall(r"^\| `algorithm=(\w+)` \|", table, re.M)
    assert sorted(listed) == sorted(p.stem for p in (ROOT / "configs" / "algorithm").glob("*.yaml"))
    for kind in ("advantage estimator", "policy loss", "learner part"):
        assert [n for n in names(kind) if f"`{n}`" not in text] == [], kind
    undocumented = []
    for field in dataclasses.fields(AlgorithmConfig):
        config = getattr(AlgorithmConfig(), field.name)
        if type(config).__module__ == methods.__name__:
            undocumented += [f"{field.name}.{knob.name}" for knob in dataclasses.fields(config)
                             if f"`{field.name}.{knob.name}`" not in text]
    assert undocumented == []
