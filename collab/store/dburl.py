"""Which database a process opens: the SQLite file in the data dir, or a PostgreSQL server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit


class DatabaseUrlError(ValueError):
    """A database URL collab cannot use; the message never carries the password."""


@dataclass(frozen=True)
class DatabaseUrl:
    """``engine`` is "sqlite" (``path`` is the file) or "postgresql" (``conninfo``: the whole
    URL, password included, so it is left out of the repr; ``shown``: the URL without it)."""

    engine: str
    path: Path | None = None
    conninfo: str = field(default="", repr=False)
    shown: str = ""

    def __str__(self) -> str:
        return self.shown or str(self.path)


def parse_database_url(url: str | None, default_path: Path) -> DatabaseUrl:
    """No URL (or ``sqlite://``): the default file; ``sqlite:///path``: that file;
    ``postgresql://user[:password]@host[:port]/db`` (or ``postgres://``): that database."""
    if not url:
        return DatabaseUrl("sqlite", path=default_path)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        return DatabaseUrl("sqlite", path=Path(path) if path not in ("", "/") else default_path)
    if scheme in ("postgresql", "postgres"):
        if not parts.path.strip("/"):
            raise DatabaseUrlError(f"{redact(url)}: name the database (postgresql://user@host:port/DATABASE)")
        return DatabaseUrl("postgresql", conninfo=url, shown=redact(url))
    raise DatabaseUrlError(f"{redact(url)}: a database URL starts with sqlite:/// or postgresql://")


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``, fit for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a database URL that cannot be read)"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
