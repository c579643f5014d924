"""The tests' OpenID Connect provider: npm ``oidc-provider`` (tests/oidc/provider.mjs), started on
a free port with the clients and people given, and stopped after."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, free_port, seed_case, start_server, stop_server

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tests" / "oidc" / "provider.mjs"

# People at the trusts' directories: who they are and the groups they are in.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "ada": {
        "name": "Dr Ada North",
        "preferred_username": "ada.north@north.nhs.uk",
        "groups": ["north-pathologists"],
    },
    "cora": {
        "name": "Cora Coordinator",
        "preferred_username": "cora@north.nhs.uk",
        "groups": ["north-mdt-coordinators"],
    },
    "sam": {
        "name": "Dr Sam South",
        "preferred_username": "sam.south@south.nhs.uk",
        "groups": ["south-pathologists"],
    },
    "nick": {
        "name": "Nick Catering",
        "preferred_username": "nick@north.nhs.uk",
        "groups": ["north-catering"],
    },
}


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen[str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def sign_in(self, client: httpx.Client, at: httpx.Response, account: str) -> httpx.Response:
        """At the provider's sign-in page (``at``), sign in as ``account``; the answer that
        sends the browser back (not followed)."""
        uid = re.search(r"/interaction/([^/]+)/login", at.text)
        assert uid, at.text
        return client.post(f"{self.issuer}/interaction/{uid.group(1)}/login", data={"login": account})


def trust_config(collab_url: str, issuer: str) -> str:
    """collab's ``[[oidc]]`` settings for North and South Trust, both at this provider."""
    return f"""
[[oidc]]
name = "north"
label = "North Trust"
issuer = "{issuer}"
client_id = "collab-north"
client_secret = "north-client-secret"
org = "North Trust"
[oidc.roles]
"north-pathologists" = "pathologist"
"north-mdt-coordinators" = "clinician"
[oidc.specialties]
"north-mdt-coordinators" = "nursing/MDT coordination"

[[oidc]]
name = "south"
label = "South Trust"
issuer = "{issuer}"
client_id = "collab-south"
client_secret = "south-client-secret"
org = "South Trust"
[oidc.roles]
"south-pathologists" = "pathologist"
"""


def start_provider(
    folder: Path, collab_url: str, *, more_accounts: dict[str, dict[str, Any]] | None = None
) -> OidcProvider:
    """The provider, with a client for each trust whose callbacks are at ``collab_url`` (and
    ``more_accounts`` beside ``ACCOUNTS``)."""
    folder.mkdir(parents=True, exist_ok=True)
    clients = [
        {
            "client_id": f"collab-{trust}",
            "client_secret": f"{trust}-client-secret",
            "redirect_uris": [f"{collab_url}/login/oidc/{trust}/callback"],
            "post_logout_redirect_uris": [f"{collab_url}/login"],
        }
        for trust in ("north", "south")
    ]
    config = folder / "provider.json"
    config.write_text(json.dumps({"clients": clients, "accounts": {**ACCOUNTS, **(more_accounts or {})}}))
    port = free_port()
    with (folder / "provider.log").open("a") as log:  # the child keeps its own handle
        process = subprocess.Popen(
            ["node", str(SCRIPT), str(config), str(port)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    ready = threading.Event()

    def wait() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "ready":
                ready.set()
        ready.set()

    threading.Thread(target=wait, daemon=True).start()
    if not ready.wait(30) or process.poll() is not None:
        process.kill()
        process.wait()
        raise RuntimeError(
            f"the OIDC provider did not start: {(folder / 'provider.log').read_text()[-2000:]}"
        )
    return OidcProvider(f"http://127.0.0.1:{port}", process)


@contextlib.contextmanager
def signed_on_site(
    folder: Path, *, more_accounts: dict[str, dict[str, Any]] | None = None, more_config: str = ""
) -> Iterator[tuple[Server, OidcProvider]]:
    """The provider and a collab server that trusts it for North and South Trust (and whatever
    ``more_config`` adds), case S26-1 seeded; both on free ports, both stopped after."""
    port = free_port()
    collab_url = f"http://127.0.0.1:{port}"
    provider = start_provider(folder / "provider", collab_url, more_accounts=more_accounts)
    server = None
    try:
        data_dir = folder / "data"
        data_dir.mkdir()
        seed_case(data_dir)
        config = folder / "collab.toml"
        config.write_text(trust_config(collab_url, provider.issuer) + more_config)
        server = start_server(data_dir, port, args=["--config", str(config)])
        yield server, provider
    finally:
        if server is not None:
            stop_server(server)
        provider.stop()
