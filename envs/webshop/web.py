"""The shop as clickable HTML pages on a small local web server, for people to shop by hand.

Each browser session is a :class:`~agentropy.envs.webshop.env.ShopEnv` (the same state machine, grammar and
reward as the text environment): buttons send ``click[x]`` and the search form sends
``search[query]`` through ``env.step``, and the page is rendered from the session's
:class:`~agentropy.envs.webshop.session.PageView`. Every text that reaches the page is HTML-escaped.

Routes (POSTs answer ``303 See Other`` to the page they changed):

* ``GET /``: a form to start a session (split and goal number), and the open sessions.
* ``POST /sessions`` (``split``, ``goal``): start one.
* ``GET /s/<id>``: the session's current page.
* ``POST /s/<id>`` with ``action=<command>`` or ``query=<text>``: one step. An invalid step
  answers ``400`` with the unchanged page and the reason.

The server binds to 127.0.0.1 only and runs in a background thread:

    >>> with ShopServer({"num_products": 1000}) as server:  # doctest: +SKIP
    ...     print(server.new_session_url(split="test", goal=3))
"""

from __future__ import annotations

import html
import itertools
import logging
import threading
import urllib.parse
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentropy.envs.webshop.env import ShopEnv
from agentropy.envs.webshop.session import SUB_PAGES, PageView

from agentropy.records.loopback import refusal

__all__ = ["ShopServer", "render_html"]

log = logging.getLogger(__name__)

#: Largest request body accepted (a search form is a few hundred bytes).
MAX_BODY = 16_384

_STYLE = """
body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}
.instruction{background:#fff7e0;border:1px solid #e0c060;padding:.6em;margin-bottom:1em}
button{margin:.15em;padding:.3em .7em;cursor:pointer}
button.selected{background:#2a6;color:#fff}
button.visited{color:#888}
.hit{border-bottom:1px solid #ddd;padding:.4em 0}
.price{font-weight:bold}
.error{background:#fdd;border:1px solid #c66;padding:.5em;margin-bottom:1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _button(action: str, label: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<button type="submit" name="action" value="{_e(action)}"{cls}>{_e(label)}</button>'


def _click(target: str, label: str, css: str = "") -> str:
    return _button(f"click[{target}]", label, css)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def render_html(view: PageView, session_url: str, error: str = "") -> str:
    """One page of a session as HTML (the same content as the text page, as buttons)."""
    parts = [f"<h1>WebShop</h1><div class=\"instruction\"><b>Instruction:</b> {_e(view.instruction)}</div>"]
    if error:
        parts.append(f'<div class="error">{_e(error)}</div>')
    if view.kind == "search":
        parts.append(
            f'<form method="post" action="{_e(session_url)}">'
            '<input type="text" name="query" size="60" autofocus aria-label="search query">'
            '<button type="submit">Search</button></form>'
        )
        return _page("WebShop", "".join(parts))

    parts.append(f'<form method="post" action="{_e(session_url)}">')
    if view.kind != "done":
        parts.append(_click("back to search", "Back to Search"))
    if view.kind == "results":
        parts.append(f"<p>Page {view.page_num} (Total results: {view.total}) "
                     f"for <i>{_e(view.keywords)}</i></p>")
        if view.page_num > 1:
            parts.append(_click("< prev", "< Prev"))
        parts.append(_click("next >", "Next >"))
        for product in view.hits:
            css = "visited" if product.asin in view.visited else ""
            parts.append(
                f'<div class="hit">{_click(product.asin.lower(), product.asin, css)} '
                f'{_e(product.name)} <span class="price">{_e(product.price_text)}</span></div>'
            )
    elif view.kind == "item":
        assert view.product is not None
        product, selected = view.product, dict(view.selected)
        parts.append(_click("< prev", "< Prev"))
        for name, values in product.options:
            buttons = "".join(
                _click(v, v, "selected" if selected.get(name) == v else "") for v in values
            )
            parts.append(f"<p><b>{_e(name)}</b>: {buttons}</p>")
        parts.append(f"<h2>{_e(product.name)}</h2><p class=\"price\">Price: {_e(product.price_text)}</p>"
                     "<p>Rating: N.A.</p>")
        parts.append("".join(_click(s, s.capitalize()) for s in SUB_PAGES))
        parts.append(_click("buy now", "Buy Now"))
    elif view.kind in SUB_PAGES:
        assert view.product is not None
        parts.append(_click("< prev", "< Prev"))
        parts.append(f"<h2>{_e(view.kind.capitalize())}</h2>")
        if view.kind == "description":
            parts.append(f"<p>{_e(view.product.description)}</p>")
        elif view.kind == "features":
            parts.append("<ul>" + "".join(f"<li>{_e(b)}</li>" for b in view.product.bullets) + "</ul>")
        else:
            parts.append("<p>No reviews.</p>")
    else:
        assert view.purchase is not None and view.product is not None
        result = view.purchase.result
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
            for k, v in (
                ("r_type", result.r_type), ("r_att", result.r_att), ("r_option", result.r_option),
                ("r_price", result.r_price), ("matched attributes", ", ".join(result.matched_attributes)),
                ("matched options", ", ".join(result.matched_options)),
            )
        )
        chosen = ", ".join(f"{n}: {v}" for n, v in view.purchase.options) or "none"
        parts.append(
            f"<h2>Thank you for shopping with us!</h2><p>Purchased {_e(view.product.asin)}: "
            f"{_e(view.product.name)} (options: {_e(chosen)})</p>"
            f"<p>Your score (min 0.0, max 1.0): <b>{_e(round(result.reward, 4))}</b></p>"
            f"<table>{rows}</table>"
        )
    parts.append("</form>")
    return _page("WebShop", "".join(parts))


class ShopServer:
    """A local web server whose sessions are :class:`ShopEnv` instances.

    Args:
        env_kwargs: keyword arguments of every session's :class:`ShopEnv` (not ``split``).
        host: address to bind; only loopback addresses are allowed.
        port: TCP port; 0 picks a free one.
    """

    def __init__(self, env_kwargs: Mapping[str, Any] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the shop server only binds to the loopback address, not {host!r}")
        self.env_kwargs = dict(env_kwargs or {})
        self.env_kwargs.pop("split", None)
        self._sessions: dict[str, ShopEnv] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ShopServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="shop-server",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close every session (safe to call twice)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            for env in self._sessions.values():
                env.close()
            self._sessions.clear()

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_session(self, split: str = "test", goal: int | None = None, seed: int = 0) -> str:
        """Start a session on task ``goal`` of ``split`` (or a seeded draw); returns its id."""
        env = ShopEnv(split=split, **self.env_kwargs)
        try:
            env.reset(seed=seed, options=None if goal is None else {"task": goal})
        except ValueError:
            env.close()
            raise
        with self._lock:
            sid = str(next(self._ids))
            self._sessions[sid] = env
        return sid

    def new_session_url(self, split: str = "test", goal: int | None = None, seed: int = 0) -> str:
        return f"{self.url}/s/{self.new_session(split, goal, seed)}"

    def session(self, sid: str) -> ShopEnv | None:
        with self._lock:
            return self._sessions.get(sid)

    def sessions(self) -> list[tuple[str, ShopEnv]]:
        with self._lock:
            return list(self._sessions.items())


def _handler_class(server: ShopServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "agentropy-shop"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            log.debug("%s %s", self.address_string(), format % args)

        # -------------------------------------------------------------- responses
        def _send(self, status: HTTPStatus, body: str, headers: Mapping[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, _page(f"{status.value} {status.phrase}",
                                     f"<h1>{status.value} {_e(status.phrase)}</h1><p>{_e(message)}</p>"
                                     '<p><a href="/">Start page</a></p>'))

        def _redirect(self, location: str) -> None:
            self._send(HTTPStatus.SEE_OTHER, _page("See Other", f'<a href="{_e(location)}">continue</a>'),
                       {"Location": location})

        def _form(self) -> dict[str, str] | None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
                return None
            if length < 0 or length > MAX_BODY:
                self._drain(length)
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body must be at most {MAX_BODY} bytes")
                return None
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                self._error(HTTPStatus.BAD_REQUEST, "send a form (application/x-www-form-urlencoded)")
                return None
            try:
                pairs = urllib.parse.parse_qsl(raw.decode("ascii"), keep_blank_values=True,
                                               strict_parsing=bool(raw), max_num_fields=8,
                                               errors="strict")
            except (UnicodeDecodeError, ValueError) as exc:
                self._error(HTTPStatus.BAD_REQUEST, f"malformed form: {exc}")
                return None
            return dict(pairs)

        def _drain(self, length: int) -> None:
            """Read (and drop) a refused body, so that closing the connection does not reset it
            before the client has read the answer."""
            remaining = min(max(length, 0), 1 << 20)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

        def _session_id(self) -> str | None:
            path = urllib.parse.urlsplit(self.path).path
            parts = path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "s":
                return parts[1]
            return None

        # -------------------------------------------------------------- routes
        def _refused(self) -> bool:
            """Refuse (403) a request from another site (see agentropy.records.loopback)."""
            reason = refusal(self.headers, self.server.server_address[1], self.command)
            if reason:
                length = self.headers.get("Content-Length", "0")
                self._drain(int(length) if length.isdigit() else 0)
                self._error(HTTPStatus.FORBIDDEN, reason)
            return bool(reason)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self._refused():
                return
            path = urllib.parse.urlsplit(self.path).path
            if path == "/":
                self._send(HTTPStatus.OK, self._index())
                return
            sid = self._session_id()
            env = server.session(sid) if sid is not None else None
            if env is None:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
                return
            with server._lock:
                page = render_html(env.session.view(), f"/s/{sid}")
            self._send(HTTPStatus.OK, page)

        def do_POST(self) -> None:  # noqa: N802
            if self._refused():
                return
            path = urllib.parse.urlsplit(self.path).path
            form = self._form()
            if form is None:
                return
            if path == "/sessions":
                self._new_session(form)
                return
            sid = self._session_id()
            env = server.session(sid) if sid is not None else None
            if env is None:
                self._error(HTTPStatus.NOT_FOUND, f"no such session: {path}")
                return
            if "query" in form:
                action = f"search[{form['query']}]"
            elif "action" in form:
                action = form["action"]
            else:
                self._error(HTTPStatus.BAD_REQUEST, "the form needs an 'action' or a 'query' field")
                return
            with server._lock:
                _, _, _, _, info = env.step(action)
                reason = "" if info["action_is_valid"] else f"Nothing happens: {info['invalid_reason']}."
                page = render_html(env.session.view(), f"/s/{sid}", reason)
            if reason:
                self._send(HTTPStatus.BAD_REQUEST, page)
            else:
                self._redirect(f"/s/{sid}")

        def _new_session(self, form: Mapping[str, str]) -> None:
            split = form.get("split", "test")
            goal_text = form.get("goal", "").strip()
            try:
                goal = int(goal_text) if goal_text else None
                sid = server.new_session(split=split, goal=goal)
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
                return
            self._redirect(f"/s/{sid}")

        def _index(self) -> str:
            options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in ShopEnv.splits)
            links = "".join(
                f'<li><a href="/s/{_e(sid)}">session {_e(sid)}</a>: '
                f"{_e(env.session.goal.instruction_text)}</li>"
                for sid, env in server.sessions()
            )
            return _page("WebShop", (
                "<h1>WebShop</h1>"
                '<form method="post" action="/sessions">Split <select name="split">'
                f'{options}</select> goal number <input name="goal" size="6" placeholder="random"> '
                '<button type="submit">Start shopping</button></form>'
                f"<h2>Sessions</h2><ul>{links}</ul>"
            ))

    return Handler
