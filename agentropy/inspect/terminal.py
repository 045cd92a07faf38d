"""Terminal views of recorded episodes (``agentropy replay``), drawn with rich.

Recorded text is always drawn as plain :class:`rich.text.Text`, never parsed as rich markup, and
control characters (terminal escape sequences included) are shown as ``\\xNN``: a model's output
cannot restyle or clear the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from agentropy.inspect.compare import Comparison
from agentropy.inspect.run import EpisodeSummary, divergence_turn, split_completion
from agentropy.records.episodes import EpisodeRecord, TurnRecord

__all__ = [
    "comparison_table",
    "episode_table",
    "episode_view",
    "group_view",
    "safe_text",
]

# C0/C1 controls except newline and tab, and the bidirectional overrides that reorder a line.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str, style: str = "") -> Text:
    """Recorded text as a rich Text: no markup; control characters and bidirectional
    overrides shown as ``\\xNN`` / ``\\uNNNN`` escapes, so recorded text cannot restyle, clear or
    reorder the terminal."""
    return Text(_CONTROL.sub(_escape, text), style=style)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}" if value < 0 else f"{value:.{digits}f}"


def _outcome(won: bool, score: float) -> Text:
    return Text(f"WON {score:.2f}", style="bold green") if won else Text(
        f"failed {score:.2f}", style="bold red")


# ---------------------------------------------------------------------- lists
def episode_table(summaries: Sequence[EpisodeSummary], total: int, offset: int = 0) -> Table:
    """A table of episodes, one row each; ``total`` is how many matched the filter."""
    shown = f"{offset + 1}-{offset + len(summaries)}" if summaries else "none"
    table = Table(title=f"episodes {shown} of {total}", box=box.SIMPLE_HEAVY, title_justify="left")
    for name, justify, no_wrap in [
        ("episode", "left", True), ("iter", "right", True), ("grp", "right", True),
        ("pol", "right", True), ("phase", "left", True), ("task", "left", False),
        ("outcome", "left", True), ("turns", "right", True), ("inv", "right", True),
        ("entropy", "right", True),
    ]:
        wide = name in ("episode", "task")
        table.add_column(name, justify=justify, no_wrap=no_wrap and not wide,  # type: ignore[arg-type]
                         min_width=12 if wide else None, overflow="fold" if wide else "ellipsis")
    for s in summaries:
        table.add_row(
            safe_text(s.episode_id),
            "-" if s.iteration is None else str(s.iteration),
            "-" if s.group_id is None else str(s.group_id),
            str(s.policy_version),
            safe_text(s.phase),
            safe_text(s.task_id),
            _outcome(s.won, s.score),
            str(s.length),
            str(s.num_invalid),
            _fmt(s.mean_entropy),
        )
    return table


# ---------------------------------------------------------------------- one episode
def _header(record: EpisodeRecord) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    ended = "terminated" if record.terminated else "truncated" if record.truncated else "unfinished"
    rows: list[tuple[str, RenderableType]] = [
        ("env", safe_text(f"{record.env_id} {dict(record.env_kwargs)}")),
        ("task", safe_text(f"{record.task_id}: {record.task}")),
        ("agent", safe_text(f"{record.agent}, phase {record.phase}, policy version "
                            f"{record.policy_version}")),
        ("run", safe_text(f"iteration {record.iteration}, group {record.group_id}, "
                          f"seed {record.seed}, options {dict(record.options)}")),
        ("outcome", Text.assemble(_outcome(record.won, record.score),
                                  f"  reward {record.total_reward:.3f}, {record.length} turns "
                                  f"({record.num_invalid} invalid), {ended}")),
    ]
    if record.failure:
        rows.append(("failure", safe_text(record.failure, "red")))
    for name, value in rows:
        grid.add_row(name, value)
    return Panel(grid, title=safe_text(f"episode {record.episode_id}"), title_align="left")


def _turn_stats(turn: TurnRecord) -> Text:
    parts = [f"reward {turn.reward:.3f}"]
    if turn.advantage is not None:
        parts.append(f"advantage {turn.advantage:+.3f}")
    if turn.mean_entropy is not None:
        parts.append(f"entropy {turn.mean_entropy:.3f}")
    if turn.logprob_sum:
        parts.append(f"logprob {turn.logprob_sum:.2f}")
    return Text(", ".join(parts), style="dim")


def _action_text(turn: TurnRecord) -> Text:
    if turn.action_is_valid:
        return Text.assemble(safe_text(turn.action, "bold green"), Text("  valid", style="green"))
    return Text.assemble(safe_text(turn.action or "(empty)", "bold red"),
                         safe_text(f"  invalid: {turn.invalid_reason}", "red"))


def turn_view(index: int, turn: TurnRecord, *, show_prompt: bool = False) -> RenderableType:
    """One turn: observation, thinking, action with validity, reward, advantage, entropy."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True, width=11)
    grid.add_column(ratio=1)
    if show_prompt and turn.prompt:
        grid.add_row("prompt", safe_text(turn.prompt, "dim"))
    grid.add_row("observation", safe_text(turn.observation))
    thinking, answer = split_completion(turn.completion)
    if thinking:
        grid.add_row("thinking", safe_text(thinking, "italic yellow"))
    if turn.completion and answer != turn.action:
        grid.add_row("answer", safe_text(answer))
    grid.add_row("action", _action_text(turn))
    grid.add_row("", _turn_stats(turn))
    return Group(Rule(f"turn {index}", align="left", style="cyan"), grid)


def episode_view(record: EpisodeRecord, *, show_prompt: bool = False,
                 turns: range | None = None) -> RenderableType:
    """A whole episode, turn by turn (or only the turns in ``turns``)."""
    parts: list[RenderableType] = [_header(record)]
    for t, turn in enumerate(record.turns):
        if turns is None or t in turns:
            parts.append(turn_view(t, turn, show_prompt=show_prompt))
    return Group(*parts)


# ---------------------------------------------------------------------- GRPO groups
def group_view(records: Sequence[EpisodeRecord], *, context: int = 2) -> RenderableType:
    """The members of one GRPO group side by side, from the turn where they diverge.

    Args:
        records: the members (same task and seed).
        context: how many turns after the divergence turn to show as well.
    """
    if not records:
        return Text("no episodes in this group")
    first = records[0]
    t0 = divergence_turn(records)
    title = f"group {first.group_id} (iteration {first.iteration}): {len(records)} members, " \
            f"task {first.task_id}"
    head: list[RenderableType] = [Rule(safe_text(title), align="left", style="cyan")]
    if t0 is None:
        head.append(Text("all members played the same actions", style="bold"))
        t0 = 0
    else:
        prefix = ", ".join(t.action for t in first.turns[:t0]) or "(none)"
        head.append(Text.assemble(Text(f"same actions for turns 0-{t0 - 1}: " if t0 else
                                       "they differ from the first turn", style="bold"),
                                  safe_text(prefix if t0 else "")))
        shared = {r.turns[t0].observation for r in records if t0 < r.length}
        if len(shared) == 1:
            head.append(Panel(safe_text(shared.pop()), title=f"observation at turn {t0} (all)",
                              title_align="left"))
    table = Table(box=box.SIMPLE, show_lines=True, expand=True)
    table.add_column("", style="bold", no_wrap=True)
    for r in records:
        table.add_column(safe_text(r.episode_id), ratio=1, overflow="fold")
    table.add_row("outcome", *[Text.assemble(_outcome(r.won, r.score), f" {r.length} turns")
                               for r in records])
    for t in range(t0, t0 + context + 1):
        if all(t >= r.length for r in records):
            break
        cells: dict[str, list[RenderableType]] = {k: [] for k in ("obs", "think", "action", "stats")}
        for r in records:
            if t >= r.length:
                for k in cells:
                    cells[k].append(Text("(ended)" if k == "action" else "", style="dim"))
                continue
            turn = r.turns[t]
            thinking, _ = split_completion(turn.completion)
            cells["obs"].append(safe_text(turn.observation, "dim"))
            cells["think"].append(safe_text(thinking, "italic yellow"))
            cells["action"].append(_action_text(turn))
            cells["stats"].append(_turn_stats(turn))
        same_obs = t == t0 and len({r.turns[t].observation for r in records if t < r.length}) == 1
        if not same_obs:
            table.add_row(f"obs {t}", *cells["obs"])
        if any(c.plain for c in cells["think"] if isinstance(c, Text)):
            table.add_row(f"think {t}", *cells["think"])
        table.add_row(f"action {t}", *cells["action"])
        table.add_row(f"turn {t}", *cells["stats"])
    return Group(*head, table)


# ---------------------------------------------------------------------- compare
def comparison_table(cmp: Comparison) -> RenderableType:
    """Success and score per task type, A and B side by side, with B - A."""
    table = Table(box=box.SIMPLE_HEAVY, title="success and score per task type",
                  title_justify="left", padding=(0, 1), pad_edge=False, collapse_padding=True)
    table.add_column("task type", no_wrap=True, max_width=16)
    for side in ("A", "B"):
        for name in ("n", "succ", "score"):
            table.add_column(f"{side} {name}", justify="right", no_wrap=True,
                             min_width=len(name) + 2)
    table.add_column("Δ succ", justify="right", no_wrap=True, min_width=6)
    table.add_column("Δ score", justify="right", no_wrap=True, min_width=7)

    def delta(x: float, a: int, b: int) -> Text:
        if not a or not b:
            return Text("-")
        return Text(f"{x:+.3f}", style="green" if x > 0 else "red" if x < 0 else "")

    def cells(a, b) -> list[RenderableType]:
        out: list[RenderableType] = []
        for s in (a, b):
            out += [str(s.episodes), f"{s.success:.3f}" if s.episodes else "-",
                    f"{s.score:.3f}" if s.episodes else "-"]
        out += [delta(b.success - a.success, a.episodes, b.episodes),
                delta(b.score - a.score, a.episodes, b.episodes)]
        return out

    for kind, (a, b) in cmp.rows.items():
        table.add_row(safe_text(kind), *cells(a, b))
    table.add_section()
    table.add_row(Text("all", style="bold"), *cells(*cmp.total))
    note = Text(
        f"A: {cmp.label_a}\nB: {cmp.label_b}\ntask ids: {cmp.tasks_a} in A, {cmp.tasks_b} in B, "
        f"{cmp.shared_tasks} in both", style="dim")
    if cmp.shared_tasks < max(cmp.tasks_a, cmp.tasks_b):
        note.append("\nthe two sides did not play the same tasks; --common compares only the "
                    "shared ones", style="yellow")
    return Group(table, note)


