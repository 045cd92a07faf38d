"""The viewer's HTML page, served (``agentropy view``) or exported as one file (``--export``).

Both use the same app (``static/viewer.js`` and ``viewer.css``). Served, the page loads them from
the server and reads the run through its JSON API. Exported, they are inlined and the run's data
is embedded as JSON in a ``<script type="application/json">`` element, with ``<``, ``>`` and ``&``
written as ``\\u003c``-style escapes so that no recorded text can close the element. A
Content-Security-Policy lets only the app's own script run (by hash, in an export), so even a
mistake in escaping could not run recorded script.

A big run does not fit in one usable file: an export embeds at most ``max_episodes`` episodes,
picked evenly over the matching ones (whole GRPO groups at a time, so group views work), long
prompts are shortened, and the page says what was left out.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from agentropy.inspect.api import episode_payload, finite, meta_payload, metrics_payload
from agentropy.inspect.logs import read_config, read_replay
from agentropy.inspect.run import (
    EpisodeFilter,
    EpisodeSummary,
    RunIndex,
    divergence_turn,
    facets,
)

__all__ = ["EXPORT_PROMPT_LIMIT", "export_html", "served_page", "static_asset"]

#: Prompts longer than this are shortened in exports (head and tail kept).
EXPORT_PROMPT_LIMIT = 4000
#: Replay-buffer snapshots kept in an export (evenly spaced, the last one included).
EXPORT_REPLAY_SNAPSHOTS = 50

SERVER_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
              "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def static_asset(name: str) -> str:
    """The text of a file in ``agentropy/inspect/static``."""
    return resources.files("agentropy.inspect").joinpath("static", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _page(title: str, csp: str, style: str, script: str, data: str = "") -> str:
    page = static_asset("viewer.html")
    # One pass of substitutions on the template only: inserted texts are never re-scanned.
    parts = {
        "{{CSP}}": f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">'
        if csp else "",
        "{{TITLE}}": html.escape(title),
        "{{STYLE}}": style,
        "{{DATA}}": data,
        "{{SCRIPT}}": script,
    }
    return re.sub(r"\{\{[A-Z]+\}\}", lambda m: parts[m.group(0)], page)


def served_page(run_name: str) -> str:
    """The page ``agentropy view`` serves at ``/`` (assets and data come from the server)."""
    return _page(
        f"agentropy viewer: {run_name}",
        "",  # the server sends its policy as a header
        '<link rel="stylesheet" href="/static/viewer.css">',
        '<script src="/static/viewer.js"></script>',
    )


def embed_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` characters."""
    text = json.dumps(finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _pick_units(summaries: Sequence[EpisodeSummary], max_episodes: int) -> list[EpisodeSummary]:
    """Up to ``max_episodes`` summaries spread evenly over the run, keeping GRPO groups whole.

    Units (a group, or an episode outside any group) are taken at evenly spaced positions, as
    many as the average unit size lets fit; units that still fit then fill the budget.
    """
    units: dict[Any, list[EpisodeSummary]] = {}
    for s in summaries:
        units.setdefault(s.group_key or ("episode", s.episode_id), []).append(s)
    groups = list(units.values())
    if len(summaries) <= max_episodes:
        return list(summaries)
    wanted = max(1, int(max_episodes / (len(summaries) / len(groups))))
    order = [round(i * len(groups) / wanted) for i in range(wanted)]
    order += [i for i in range(len(groups)) if i not in set(order)]
    chosen: set[int] = set()
    budget = max_episodes
    for i in order:
        if i < len(groups) and i not in chosen and len(groups[i]) <= budget:
            chosen.add(i)
            budget -= len(groups[i])
    picked = {s.episode_id for i in chosen for s in groups[i]}
    return [s for s in summaries if s.episode_id in picked]


def export_html(
    index: RunIndex,
    out: str | Path,
    *,
    flt: EpisodeFilter | None = None,
    max_episodes: int = 200,
    prompt_limit: int = EXPORT_PROMPT_LIMIT,
) -> dict[str, int]:
    """Write the viewer with the run's data into one self-contained HTML file.

    Args:
        index: the run.
        out: the ``.html`` file to write.
        flt: which episodes to consider (all by default).
        max_episodes: at most this many episodes are embedded.
        prompt_limit: prompts longer than this keep only their head and tail.

    Returns:
        ``{"episodes": embedded, "matching": matching, "bytes": file size}``.

    Raises:
        ValueError: a damaged line of ``metrics.jsonl`` or ``replay.jsonl``, naming it.
    """
    index.refresh()
    if index.unindexed_bytes:  # a snapshot, unlike the live viewer: say what it leaves out
        warnings.warn(f"{index.episodes_path}: skipping a truncated last line "
                      f"({index.unindexed_bytes} bytes)", stacklevel=2)
    matching = index.select(flt)
    chosen = _pick_units(matching, max_episodes)
    episodes: dict[str, Any] = {}
    records_by_group: dict[str, list] = {}
    for summary, record in zip(chosen, index.records(chosen), strict=True):
        episodes[record.episode_id] = episode_payload(record, prompt_limit=prompt_limit)
        if summary.group_key is not None:
            it, gid = summary.group_key
            records_by_group.setdefault(f"{'' if it is None else it}|{gid}", []).append(record)
    groups = {
        key: {"episode_ids": [r.episode_id for r in members], "divergence": divergence_turn(members)}
        for key, members in records_by_group.items()
    }

    snapshots = read_replay(index.run_dir)
    if len(snapshots) > EXPORT_REPLAY_SNAPSHOTS:
        step = (len(snapshots) - 1) / (EXPORT_REPLAY_SNAPSHOTS - 1)
        snapshots = [snapshots[round(i * step)] for i in range(EXPORT_REPLAY_SNAPSHOTS)]
    replay = {
        "iterations": [{"iteration": s["iteration"], "size": len(s["rows"])} for s in snapshots],
        "snapshots": {
            str(s["iteration"]): [{**row, "known": row["episode_id"] in episodes} for row in s["rows"]]
            for s in snapshots
        },
    }

    notes = []
    if len(chosen) < len(matching):
        notes.append(f"This export holds {len(chosen)} of the {len(matching)} episodes"
                     f"{' that match its filter' if flt else ''}, picked evenly over the run with "
                     f"GRPO groups kept whole; run `agentropy view {index.run_dir.name}` to browse all.")
    elif flt:
        notes.append(f"This export holds the {len(chosen)} episodes that match its filter.")
    if any(len(t["prompt"]) > prompt_limit for e in episodes.values() for t in e["turns"]):
        notes.append(f"Prompts longer than {prompt_limit} characters are shortened.")
    if len(read_replay(index.run_dir)) > len(snapshots):
        notes.append(f"The replay buffer is shown after {len(snapshots)} evenly spaced iterations.")

    meta = meta_payload(index)
    meta["episodes"] = len(episodes)
    meta["export_note"] = " ".join(notes)
    meta["facets"] = facets(chosen)  # the menus list only what the export holds
    data = {
        "meta": meta,
        "summaries": [s.to_dict() for s in chosen],
        "episodes": episodes,
        "groups": groups,
        "metrics": metrics_payload(index),
        "replay": replay,
        "config": read_config(index.run_dir),
    }
    style = static_asset("viewer.css")
    script = static_asset("viewer.js")
    csp = (f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    page = _page(
        f"agentropy viewer: {index.run_dir.name}",
        csp,
        f"<style>{style}</style>",
        f"<script>{script}</script>",
        f'<script type="application/json" id="agentropy-data">{embed_json(data)}</script>',
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"episodes": len(episodes), "matching": len(matching), "bytes": out.stat().st_size}

