"""The gateway's REST calls (publishing events), over the standard library's urllib.

Blocking by nature: the client runs them in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConnectionLost, ServerError, TradeSyncError

__all__ = ["http_base", "request_json"]


def http_base(ws_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port`` (``wss`` -> ``https``): REST shares the WebSocket's port."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def request_json(method: str, url: str, body: object = None, *, token: str | None = None, timeout: float = 10.0) -> Any:
    """One request with a JSON body (or none); returns the JSON answer.

    Raises :class:`ServerError` for an error answer, :class:`ConnectionLost` when the
    gateway could not be reached or did not answer in time, :class:`TradeSyncError` for
    an answer that is not JSON.
    """
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"accept": "application/json"}
    if data is not None:
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw: bytes = response.read()
    except urllib.error.HTTPError as err:
        text = err.read().decode("utf-8", "replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {}
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            raise ServerError("HTTP_ERROR", f"{err.code} {err.reason}: {text[:200]}", status=err.code) from None
        raise ServerError(str(error.get("code")), str(error.get("message")), status=err.code, details=answer) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        # Refused, reset, timed out, a broken answer: nothing said whether the request was done.
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        raise ConnectionLost(f"{method} {url}: {reason or type(err).__name__}") from err
    try:
        return json.loads(raw)
    except ValueError:
        raise TradeSyncError(f"{method} {url}: the answer is not JSON: {raw[:200]!r}") from None
