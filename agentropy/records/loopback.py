"""The request guard of the two local web servers (the episode viewer and the shop).

Both bind to the loopback address only, but a page in the user's browser can still reach them:
by DNS rebinding (a foreign name resolving to 127.0.0.1, so the ``Host`` header names it) or by
a cross-origin form POST. A request is served only when its ``Host`` is this server's loopback
address and, for methods that change state, when the browser's ``Origin`` (or ``Referer``, or
``Sec-Fetch-Site``) does not name another site. Clients that send none of these (scripts, curl)
are served.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["refusal"]

SAFE_METHODS = frozenset({"GET", "HEAD"})


def refusal(headers: Mapping[str, str], port: int, method: str) -> str:
    """Why the request must be refused ("" when it may be served).

    Args:
        headers: the request's headers (``http.client.HTTPMessage`` or a dict).
        port: the port the server listens on.
        method: the request method.
    """
    ours = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if headers.get("Host", "") not in ours:
        return "unexpected Host header"
    if method.upper() in SAFE_METHODS:
        return ""
    if headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
        return "cross-origin request"
    origin = headers.get("Origin")
    if origin is not None:
        return "" if origin in {f"http://{h}" for h in ours} else "cross-origin request"
    referer = headers.get("Referer")
    if referer is not None:
        parts = urlsplit(referer)
        if parts.scheme != "http" or parts.netloc not in ours:
            return "cross-origin request"
    return ""
