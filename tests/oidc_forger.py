"""An attacker's OpenID provider, for the refusal tests only: it answers the protocol like a
provider (discovery, keys, authorise, token) but hands out ID tokens forged as each test asks:
signed with a key it does not publish, for another audience or issuer, expired, or with
another nonce. The real provider (tests/oidc_provider.py) cannot be made to do any of these."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "collab-forged"


@dataclass
class Forger:
    """``forgery``: "" (an honest token), "key", "audience", "issuer", "expired" or "nonce"."""

    forgery: str = ""
    published: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "published"})
    )
    secret: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "published"}))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    verifiers: list[str] = field(default_factory=list)  # the PKCE verifiers clients sent
    server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        forger = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._json(
                        {
                            "issuer": forger.issuer,
                            "authorization_endpoint": f"{forger.issuer}/authorize",
                            "token_endpoint": f"{forger.issuer}/token",
                            "jwks_uri": f"{forger.issuer}/jwks",
                        }
                    )
                if url.path == "/jwks":
                    return self._json({"keys": [forger.published.as_dict(private=False)]})
                if url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = base64.urlsafe_b64encode(hashlib.sha256(query["state"].encode()).digest()).decode()
                    forger.codes[code] = query
                    self.send_response(302)
                    self.send_header(
                        "Location",
                        f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}",
                    )
                    self.end_headers()
                    return None
                self.send_error(404)
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                asked = forger.codes.pop(form.get("code", ""), None)
                if asked is None:
                    return self._json({"error": "invalid_grant"}, 400)
                forger.verifiers.append(form.get("code_verifier", ""))
                return self._json(
                    {"access_token": "x", "token_type": "Bearer", "id_token": forger.token(asked)}
                )

            def _json(self, value: object, status: int = 200) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def token(self, asked: dict[str, str]) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://login.example.invalid" if self.forgery == "issuer" else self.issuer,
            "sub": "forged-ada",
            "aud": "another-application" if self.forgery == "audience" else CLIENT_ID,
            "iat": now - 7200 if self.forgery == "expired" else now,
            "exp": now - 3600 if self.forgery == "expired" else now + 300,
            "nonce": "a-nonce-of-another-sign-in" if self.forgery == "nonce" else asked.get("nonce", ""),
            "name": "Forged Ada",
            "preferred_username": "forged.ada",
            "groups": ["north-pathologists"],
        }
        key = self.secret if self.forgery == "key" else self.published
        return jwt.encode({"alg": "RS256", "kid": "published"}, claims, key)


def _key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "published"})


def forged_config(issuer: str) -> str:
    return f"""
[[oidc]]
name = "forged"
label = "Forged Trust"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "forged-secret"
org = "North Trust"
[oidc.roles]
"north-pathologists" = "pathologist"
"""
