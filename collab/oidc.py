"""Single sign-on with OpenID Connect: a trust's provider (Entra ID, NHS CIS2, any OIDC
provider) signs its people in with the authorisation code flow and PKCE (S256).

authlib builds the authorisation request and exchanges the code; joserfc checks the ID token:
its signature against the provider's published keys, its issuer, audience, expiry and the
nonce this sign-in sent. Who a person is in collab (their trust and role) comes from the
site's ``[[oidc]]`` settings (collab.integrations), never from what the person typed.

Blocking (HTTP to the provider): callers run these functions on a worker thread.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from collab.domain import ROLES, SPECIALTIES
from collab.integrations import ConfigError, is_slug, secret

DISCOVERY_TTL_S = 600.0
TIMEOUT_S = (3.0, 10.0)
# Clocks of two servers differ a little; a minute is what most providers allow.
LEEWAY_S = 60
DEFAULT_SCOPES = "openid profile email"


class SignOnRefused(Exception):
    """A sign-in that must not go ahead; the message is for the person (and the audit)."""


@dataclass(frozen=True)
class OidcProvider:
    """One trust's sign-on, as the settings file names it."""

    name: str  # in addresses: /login/oidc/{name}
    label: str  # on the sign-in button
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    scopes: str = DEFAULT_SCOPES
    org: str | None = None  # the trust its people belong to
    tenants: Mapping[str, str] = field(default_factory=dict)  # tenant id (``tid``) -> trust
    roles: Mapping[str, str] = field(default_factory=dict)  # group or role value -> role
    specialties: Mapping[str, str] = field(default_factory=dict)  # group -> specialty
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    name_claim: str = "name"

    def trust(self, claims: Mapping[str, Any]) -> str:
        """The organisation the signed-in person belongs to: from their tenant, else the
        provider's own trust."""
        tenant = str(claims.get("tid", ""))
        found = self.tenants.get(tenant) if tenant else None
        if found:
            return found
        if self.org:
            return self.org
        raise SignOnRefused(f"your organisation (tenant {tenant or 'not given'}) has no place in collab")

    def role(self, claims: Mapping[str, Any]) -> tuple[str, str | None]:
        """(role, specialty) from the person's groups; the first entry of ``roles`` (in the
        settings file's order) that the person holds wins. SignOnRefused if none does."""
        groups = claims.get(self.groups_claim, [])
        held = {str(g) for g in (groups if isinstance(groups, list) else [groups])}
        role = next((r for group, r in self.roles.items() if group in held), None)
        if role is None:
            raise SignOnRefused("your account is not in any group that has a role in collab")
        specialty = next((s for group, s in self.specialties.items() if group in held), None)
        return role, specialty if role == "clinician" else None


def parse_providers(
    tables: tuple[Mapping[str, Any], ...], environ: Mapping[str, str]
) -> tuple[OidcProvider, ...]:
    """The ``[[oidc]]`` tables as providers; ConfigError naming the entry and the fix."""
    providers = tuple(_provider(entry, i, environ) for i, entry in enumerate(tables))
    names = [p.name for p in providers]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(f"two [[oidc]] entries are named {doubled[0]!r}; each needs its own name")
    return providers


def _provider(entry: Mapping[str, Any], index: int, environ: Mapping[str, str]) -> OidcProvider:
    name = str(entry.get("name", ""))
    where = f"[[oidc]] {name!r}" if name else f"[[oidc]] entry {index + 1}"
    if not is_slug(name):
        raise ConfigError(
            f"{where}: name must be lower-case letters, digits and hyphens (it is in an address)"
        )
    issuer = str(entry.get("issuer", "")).rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: issuer must be the provider's https address, not {issuer!r}")
    client_id = str(entry.get("client_id", ""))
    if not client_id:
        raise ConfigError(f"{where}: client_id is needed (the application's id at the provider)")
    roles = {str(k): str(v) for k, v in dict(entry.get("roles", {})).items()}
    if not roles:
        raise ConfigError(f"{where}: [oidc.roles] must map at least one group to a role")
    wrong = [v for v in roles.values() if v not in ROLES]
    if wrong:
        raise ConfigError(f"{where}: {wrong[0]!r} is not a role (roles: {', '.join(ROLES)})")
    specialties = {str(k): str(v) for k, v in dict(entry.get("specialties", {})).items()}
    wrong = [v for v in specialties.values() if v not in SPECIALTIES]
    if wrong:
        raise ConfigError(f"{where}: {wrong[0]!r} is not a specialty ({', '.join(SPECIALTIES)})")
    tenants = {str(k): str(v) for k, v in dict(entry.get("tenants", {})).items()}
    org = str(entry["org"]) if entry.get("org") else None
    if not org and not tenants:
        raise ConfigError(f"{where}: org (the trust its people belong to) or [oidc.tenants] is needed")
    return OidcProvider(
        name=name,
        label=str(entry.get("label") or name),
        issuer=issuer,
        client_id=client_id,
        client_secret=secret(entry, "client_secret", where, environ),
        scopes=str(entry.get("scopes", DEFAULT_SCOPES)),
        org=org,
        tenants=tenants,
        roles=roles,
        specialties=specialties,
        groups_claim=str(entry.get("groups_claim", "groups")),
        username_claim=str(entry.get("username_claim", "preferred_username")),
        name_claim=str(entry.get("name_claim", "name")),
    )


# -- the protocol ---------------------------------------------------------------


class Discovery:
    """Providers' published metadata and keys, fetched when first needed and kept a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}

    def metadata(
        self, provider: OidcProvider, *, fresh_keys: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(openid-configuration, JWKS). A key the cached set lacks (the provider rotated its
        keys) is looked for again with ``fresh_keys``."""
        import requests

        with self._lock:
            hit = self._found.get(provider.issuer)
        if hit and hit[0] > time.monotonic() and not fresh_keys:
            return hit[1], hit[2]
        try:
            config = requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=TIMEOUT_S)
            config.raise_for_status()
            meta = config.json()
            keys = requests.get(meta["jwks_uri"], timeout=TIMEOUT_S)
            keys.raise_for_status()
            jwks = keys.json()
        except Exception as exc:
            raise SignOnRefused(
                f"{provider.label} did not answer ({type(exc).__name__}); try again shortly"
            ) from None
        if meta.get("issuer", "").rstrip("/") != provider.issuer:
            raise SignOnRefused(f"{provider.label} describes itself as another issuer")
        with self._lock:
            self._found[provider.issuer] = (time.monotonic() + DISCOVERY_TTL_S, meta, jwks)
        return meta, jwks


def authorization_url(
    provider: OidcProvider, meta: Mapping[str, Any], redirect_uri: str
) -> tuple[str, str, str, str]:
    """(address to send the browser to, state, nonce, PKCE verifier) for a new sign-in."""
    from authlib.integrations.requests_client import OAuth2Session

    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    session = OAuth2Session(
        provider.client_id, scope=provider.scopes, redirect_uri=redirect_uri, code_challenge_method="S256"
    )
    url, _ = session.create_authorization_url(
        meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
    )
    return url, state, nonce, verifier


def exchange(
    provider: OidcProvider,
    discovery: Discovery,
    *,
    code: str,
    verifier: str,
    nonce: str,
    redirect_uri: str,
) -> tuple[dict[str, Any], str]:
    """The checked claims of the ID token the code is exchanged for, and the token itself
    (for signing out at the provider). SignOnRefused with the reason otherwise."""
    from authlib.integrations.requests_client import OAuth2Session

    meta, _ = discovery.metadata(provider)
    session = OAuth2Session(
        provider.client_id,
        provider.client_secret or None,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if provider.client_secret else "none",
    )
    try:
        token = session.fetch_token(
            meta["token_endpoint"], code=code, code_verifier=verifier, timeout=TIMEOUT_S
        )
    except Exception as exc:
        raise SignOnRefused(f"{provider.label} would not complete the sign-in ({_reason(exc)})") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SignOnRefused(f"{provider.label} sent no ID token")
    return check_id_token(provider, discovery, id_token, nonce), id_token


def check_id_token(provider: OidcProvider, discovery: Discovery, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims if its signature, issuer, audience, times and nonce are right."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    algorithms = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
    for fresh in (False, True):
        _, jwks = discovery.metadata(provider, fresh_keys=fresh)
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=algorithms)  # type: ignore[arg-type]
            break
        except JoseError as exc:
            if fresh:
                raise SignOnRefused(
                    f"the sign-in token's signature is not {provider.label}'s ({exc.error})"
                ) from None
        except ValueError as exc:  # a key id the set lacks, or a malformed token
            if fresh:
                raise SignOnRefused(f"the sign-in token cannot be read ({exc})") from None
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_S,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise SignOnRefused(f"the sign-in token is not valid here: {exc.description or exc.error}") from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if provider.client_id not in audiences:
        raise SignOnRefused("the sign-in token was issued for another application")
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise SignOnRefused("the sign-in token was issued for another application")
    return dict(claims)


def end_session_url(
    provider: OidcProvider, meta: Mapping[str, Any], id_token: str | None, back_to: str
) -> str | None:
    """Where to send the browser so the provider ends its own session too, if it can. The client
    id names the application (RP-Initiated Logout 1.0), so the way back is accepted even without
    the ID token, which is not kept when it was too big for a cookie."""
    endpoint = meta.get("end_session_endpoint")
    if not endpoint:
        return None
    query = {"client_id": provider.client_id, "post_logout_redirect_uri": back_to}
    if id_token:
        query["id_token_hint"] = id_token
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:200]
