"""The browser client's files (``pillarpayout_ws/web/``), served from memory.

The files are read once, at start, into a table keyed by their names. A
request path is looked up in that table as it is, never joined to a
filesystem path or percent-decoded, so ``/../pyproject.toml`` or
``/%2e%2e/`` can only miss (404): nothing outside the table can be named.

Every answer carries an ``ETag`` and ``Cache-Control: no-cache``: a browser
keeps its copy but asks again each time (a ``304`` when nothing changed), so
a new server version is never hidden behind a stale page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import PurePosixPath

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["CONTENT_TYPES", "WebFile", "WebFiles"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page loads only its own files and talks only to its own origin
# (``connect-src 'self'`` covers ws:// to the same host and port).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class WebFile:
    body: bytes
    content_type: str
    etag: str


class WebFiles:
    """The page's files by request path (``/`` is ``index.html``)."""

    def __init__(self, files: dict[str, WebFile]) -> None:
        self._files = files

    @classmethod
    def load(cls, package: str = "pillarpayout_ws", folder: str = "web") -> WebFiles:
        """Read every file of a known type in the package folder (not its subfolders)."""
        files: dict[str, WebFile] = {}
        for entry in (resources.files(package) / folder).iterdir():
            content_type = CONTENT_TYPES.get(PurePosixPath(entry.name).suffix)
            if content_type is None or not entry.is_file():
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[entry.name] = WebFile(body, content_type, etag)
        return cls(files)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._files)

    def response(self, path: str, if_none_match: str | None = None) -> Response | None:
        """The answer for ``path`` (no query string), or ``None`` if no such file."""
        if not path.startswith("/"):
            return None
        file = self._files.get("index.html" if path == "/" else path[1:])
        if file is None:
            return None
        headers = Headers(
            [
                ("Cache-Control", "no-cache"),
                ("ETag", file.etag),
                ("X-Content-Type-Options", "nosniff"),
            ]
        )
        if if_none_match is not None and file.etag in if_none_match:
            headers["Content-Length"] = "0"
            return Response(HTTPStatus.NOT_MODIFIED.value, "Not Modified", headers, b"")
        headers["Content-Type"] = file.content_type
        headers["Content-Length"] = str(len(file.body))
        if file.content_type.startswith("text/html"):
            headers["Content-Security-Policy"] = _CSP
            headers["Referrer-Policy"] = "no-referrer"
        return Response(HTTPStatus.OK.value, "OK", headers, file.body)
