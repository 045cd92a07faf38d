"""The viewer's local server: ``agentropy view RUN``.

A stdlib ``http.server`` bound to 127.0.0.1, run in a thread. It serves the viewer app, a small
JSON API over the run (``/api/...``, see :mod:`agentropy.inspect.api`) and the run folder's own
files under ``/files/`` for download, and nothing else:

* only GET and HEAD; only requests whose ``Host`` is this server's loopback address (a web
  page elsewhere cannot reach it through a rebound DNS name);
* ``/files/PATH`` is percent-decoded once and refused (403) if it holds ``..`` or ``.``
  segments, a leading ``/``, a backslash or a NUL, or if it resolves (symlinks followed)
  outside the run folder; files are sent as plain text or as downloads, never as HTML;
* every response carries a Content-Security-Policy that lets only the app's own script run.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agentropy.inspect.api import (
    config_payload,
    episode_page,
    episode_payload,
    group_payload,
    meta_payload,
    metrics_payload,
    replay_payload,
)
from agentropy.inspect.html import SERVER_CSP, served_page, static_asset
from agentropy.inspect.run import RunIndex
from agentropy.records.episodes import EpisodeSchemaError
from agentropy.records.loopback import refusal

__all__ = ["ViewerServer", "resolve_run_file"]

log = logging.getLogger(__name__)

_STATIC = {"/static/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
           "/static/viewer.css": ("viewer.css", "text/css; charset=utf-8")}
_TEXT_SUFFIXES = {".jsonl", ".json", ".yaml", ".yml", ".txt", ".log", ".csv", ".md"}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_LISTED_FILES = 500


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def resolve_run_file(root: Path, raw: str) -> Path:
    """The file under ``root`` that the URL path ``raw`` (after ``/files/``) names.

    Raises:
        _Refused: 403 for anything that could leave ``root``, 404 for a missing file.
    """
    rel = unquote(raw, errors="strict")
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or ":" in rel.split("/")[0]:
        raise _Refused(HTTPStatus.FORBIDDEN, "path not allowed")
    segments = rel.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise _Refused(HTTPStatus.FORBIDDEN, "path not allowed")
    root = root.resolve()
    try:
        target = root.joinpath(*segments).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise _Refused(HTTPStatus.NOT_FOUND, "no such file") from None
    except (OSError, RuntimeError):  # symlink loops, names too long
        raise _Refused(HTTPStatus.FORBIDDEN, "path not allowed") from None
    if not target.is_relative_to(root):
        raise _Refused(HTTPStatus.FORBIDDEN, "path leaves the run folder")
    if not target.is_file():
        raise _Refused(HTTPStatus.NOT_FOUND, "not a file")
    return target


def list_run_files(root: Path) -> list[dict[str, Any]]:
    """Files of the run folder (recursively, symlinks that leave it skipped), for the Run tab."""
    root = root.resolve()
    out = []
    for path in sorted(root.rglob("*")):
        if len(out) >= MAX_LISTED_FILES:
            break
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_file() and real.is_relative_to(root):
            out.append({"path": path.relative_to(root).as_posix(), "size": real.stat().st_size})
    return out


def _one(query: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[-1] for k, v in query.items()}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
        log.debug("%s - %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ responses
    def _headers(self, status: HTTPStatus, content_type: str, length: int,
                 extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", SERVER_CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self._headers(status, content_type, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    # ------------------------------------------------------------------ routing
    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._check_host()
            url = urlsplit(self.path)
            path = url.path
            query = _one(parse_qs(url.query, keep_blank_values=True))
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, served_page(self.server.index.run_dir.name).encode(),
                           "text/html; charset=utf-8")
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif path in _STATIC:
                name, content_type = _STATIC[path]
                self._send(HTTPStatus.OK, static_asset(name).encode(), content_type)
            elif path.startswith("/api/") and path[5:] in self.server.api:
                self._json(self.server.api[path[5:]](query))
            elif path.startswith("/files/"):
                # The raw path, not urlsplit's: a "?" or "#" is part of no run file name.
                self._file(self.path.split("?", 1)[0][len("/files/"):])
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except _Refused as exc:
            self._error(exc.status, str(exc))
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except EpisodeSchemaError as exc:
            log.error("%s", exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug: report it, keep serving
            log.exception("viewer request %s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _refuse_method(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only server")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def _check_host(self) -> None:
        reason = refusal(self.headers, self.server.server_address[1], self.command)
        if reason:
            raise _Refused(HTTPStatus.FORBIDDEN, reason)

    def _file(self, raw: str) -> None:
        target = resolve_run_file(self.server.index.run_dir, raw)
        suffix = target.suffix.lower()
        extra = {}
        if suffix in _TEXT_SUFFIXES:
            content_type = "text/plain; charset=utf-8"
        elif suffix in _IMAGE_TYPES:
            content_type = _IMAGE_TYPES[suffix]
        else:
            content_type = "application/octet-stream"
            extra["Content-Disposition"] = "attachment"
        size = target.stat().st_size
        self._headers(HTTPStatus.OK, content_type, size, extra)
        if self.command != "HEAD":
            with open(target, "rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    index: RunIndex
    api: dict[str, Callable[[dict[str, str]], Any]]


class ViewerServer:
    """Serve a run folder's viewer on 127.0.0.1 in a background thread.

    Args:
        run_dir: the run folder.
        port: the TCP port; 0 picks a free one.

    Example:
        >>> with ViewerServer("runs/x") as server:  # doctest: +SKIP
        ...     print(server.url)
    """

    def __init__(self, run_dir: str | Path, port: int = 0) -> None:
        self.index = RunIndex(run_dir)
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.index = self.index
        self._httpd.api = self._routes()
        self._thread: threading.Thread | None = None

    def _routes(self) -> dict[str, Callable[[dict[str, str]], Any]]:
        index = self.index

        def meta(q: dict[str, str]) -> Any:
            index.refresh()
            return meta_payload(index)

        def episodes(q: dict[str, str]) -> Any:
            index.refresh()
            return episode_page(index, q)

        def episode(q: dict[str, str]) -> Any:
            record = index.record(q.get("id", ""))
            if record is None:
                raise _Refused(HTTPStatus.NOT_FOUND, f"no episode {q.get('id', '')!r} in this run")
            return episode_payload(record)

        def group(q: dict[str, str]) -> Any:
            iteration = int(q["iteration"]) if q.get("iteration") else None
            try:
                group_id = int(q.get("group_id", ""))
            except ValueError:
                raise ValueError("group_id must be an integer") from None
            return group_payload(index.group(iteration, group_id))

        def replay(q: dict[str, str]) -> Any:
            return replay_payload(index, int(q["iteration"]) if q.get("iteration") else None)

        return {
            "meta": meta,
            "episodes": episodes,
            "episode": episode,
            "group": group,
            "metrics": lambda q: metrics_payload(index),
            "replay": replay,
            "config": lambda q: config_payload(index),
            "files": lambda q: {"files": list_run_files(index.run_dir)},
        }

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> ViewerServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="agentropy-viewer",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ViewerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
