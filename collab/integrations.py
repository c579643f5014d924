"""The site's bridges to other systems, read from one TOML file (``collab serve --config FILE``):
the PACS it may search and read slides from (``[[pacs]]``) and the trusts' sign-on providers
(``[[oidc]]``). Without the file there are none: local files and local accounts, as embedded.

Secrets are never written in the file itself when it can be helped: ``password_env``,
``token_env`` and ``client_secret_env`` name environment variables that hold them.

    [[pacs]]
    name = "North PACS"                       # as people see it on the case page
    url = "https://pacs.north.nhs.uk/dicom-web"
    auth = "basic"                            # "none" (default), "basic" or "bearer"
    org = "North Trust"                       # whose people may search it (default: everyone's)
    username = "collab"
    password_env = "NORTH_PACS_PASSWORD"

    [[oidc]]
    name = "north"                            # in the sign-in address: /login/oidc/north
    label = "North Trust (Entra ID)"          # on the sign-in button
    issuer = "https://login.microsoftonline.com/<tenant id>/v2.0"
    client_id = "..."
    client_secret_env = "NORTH_OIDC_SECRET"
    org = "North Trust"                       # the organisation its people belong to
    [oidc.roles]                              # a group (or role claim value) -> a collab role
    "MDT-Pathologists" = "pathologist"
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collab.oidc import OidcProvider

PACS_AUTH = ("none", "basic", "bearer")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file's entry and the fix."""


@dataclass(frozen=True)
class PacsEndpoint:
    """A DICOMweb service (QIDO-RS and WADO-RS, STOW-RS for annotations) slides are read from."""

    name: str
    url: str  # the service root, e.g. http://pacs:8042/dicom-web
    auth: str = "none"
    # The organisation (trust) whose people may search it; None: every trust's.
    org: str | None = None
    username: str = ""
    # Kept out of repr: a settings value must never print a secret into a log.
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @property
    def server(self) -> str:
        return urlsplit(self.url).netloc

    def headers(self) -> dict[str, str]:
        """What each request to it carries (basic credentials are set on the session instead)."""
        return {"Authorization": f"Bearer {self.token}"} if self.auth == "bearer" else {}


@dataclass(frozen=True)
class Integrations:
    pacs: tuple[PacsEndpoint, ...] = ()
    # The trusts' sign-on providers (collab.oidc).
    oidc: tuple[OidcProvider, ...] = ()

    def pacs_for_url(self, url: str) -> PacsEndpoint | None:
        """The configured endpoint a stored slide reference points at (credentials come from it)."""
        url = url.rstrip("/")
        return next((p for p in self.pacs if p.url.rstrip("/") == url), None)

    def pacs_named(self, name: str) -> PacsEndpoint | None:
        return next((p for p in self.pacs if p.name == name), None)

    def oidc_named(self, name: str) -> OidcProvider | None:
        return next((p for p in self.oidc if p.name == name), None)


def load_integrations(path: Path | None, environ: Mapping[str, str] = os.environ) -> Integrations:
    """The file's bridges (none without a file); ConfigError naming what is wrong."""
    if path is None:
        return Integrations()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the settings file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"pacs", "oidc"})
    if unknown:
        raise ConfigError(
            f"the settings file {path} has an unknown section {unknown[0]!r} (known: pacs, oidc)"
        )
    pacs = tuple(_pacs(entry, i, environ) for i, entry in enumerate(_tables(data, "pacs")))
    names = [p.name for p in pacs]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(f"two [[pacs]] entries are named {doubled[0]!r}; each needs its own name")
    from collab.oidc import parse_providers

    return Integrations(pacs=pacs, oidc=parse_providers(tuple(_tables(data, "oidc")), environ))


def _tables(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"[[{key}]] must be a list of tables (write each as [[{key}]])")
    return value


def secret(entry: Mapping[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str:
    """``key`` from the entry, or from the environment variable named by ``key_env``."""
    variable = entry.get(f"{key}_env")
    if variable:
        value = environ.get(str(variable), "")
        if not value:
            raise ConfigError(f"{where}: the environment variable {variable} ({key}) is not set")
        return value
    return str(entry.get(key, ""))


def _pacs(entry: Mapping[str, Any], index: int, environ: Mapping[str, str]) -> PacsEndpoint:
    where = f"[[pacs]] entry {index + 1}"
    name = str(entry.get("name", "")).strip()
    url = str(entry.get("url", "")).strip().rstrip("/")
    if not name:
        raise ConfigError(f'{where}: a name is needed (as people will see it, e.g. "North PACS")')
    where = f"[[pacs]] {name!r}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: url must be the DICOMweb service's http(s) address, not {url!r}")
    auth = str(entry.get("auth", "none"))
    if auth not in PACS_AUTH:
        raise ConfigError(f"{where}: auth must be one of {', '.join(PACS_AUTH)}, not {auth!r}")
    endpoint = PacsEndpoint(
        name=name,
        url=url,
        auth=auth,
        org=str(entry["org"]).strip() if entry.get("org") else None,
        username=str(entry.get("username", "")),
        password=secret(entry, "password", where, environ) if auth == "basic" else "",
        token=secret(entry, "token", where, environ) if auth == "bearer" else "",
    )
    if auth == "basic" and not (endpoint.username and endpoint.password):
        raise ConfigError(f"{where}: basic auth needs a username and a password (or password_env)")
    if auth == "bearer" and not endpoint.token:
        raise ConfigError(f"{where}: bearer auth needs a token (or token_env)")
    return endpoint


def is_slug(name: str) -> bool:
    """A name fit for an address (lower-case letters, digits, hyphens)."""
    return bool(_SLUG.fullmatch(name))
