"""A real Orthanc PACS with its DICOMweb plugin (Debian's `orthanc` and `orthanc-dicomweb`),
started on free ports with a temporary storage folder, for the tests of slides kept in a PACS."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def available() -> bool:
    return Path(ORTHANC).exists() and DICOMWEB_PLUGIN.exists()


@dataclass
class Orthanc:
    url: str  # the REST root
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    # Basic credentials it asks for ({user: password}); none: it asks for none.
    users: dict[str, str] | None = None
    # A bearer token every request must carry (checked by Orthanc's own Lua request filter).
    bearer: str | None = None

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def headers(self) -> dict[str, str]:
        """What a request needs to be let in."""
        if self.bearer:
            return {"Authorization": f"Bearer {self.bearer}"}
        if self.users:
            user, password = next(iter(self.users.items()))
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        return {}

    def config(self) -> dict[str, Any]:
        """Orthanc's configuration file, as a dict."""
        config: dict[str, Any] = {
            "Name": "collab-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        if self.users:
            config |= {"AuthenticationEnabled": True, "RegisteredUsers": self.users}
        if self.bearer:
            lua = self.folder / "bearer.lua"
            lua.write_text(
                "function IncomingHttpRequestFilter(method, uri, ip, username, headers)\n"
                f"  return headers['authorization'] == 'Bearer {self.bearer}'\n"
                "end\n"
            )
            config["LuaScripts"] = [str(lua)]
        return config

    def start(self) -> None:
        """Start it with ``config()``; returns once it answers."""
        (self.folder / "orthanc.json").write_text(json.dumps(self.config()))
        with (self.folder / "orthanc.log").open("ab") as log:  # the child keeps its own handle
            command = [ORTHANC, str(self.folder / "orthanc.json")]
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1, headers=self.headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a process we started, until it answers
        raise RuntimeError("Orthanc did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def upload(self, folder: Path) -> None:
        """Store every DICOM file of ``folder`` (POST /instances)."""
        for path in sorted(folder.iterdir()):
            if path.is_file():
                body = path.read_bytes()
                answer = httpx.post(f"{self.url}/instances", content=body, timeout=60, headers=self.headers)
                assert answer.status_code == 200, answer.text


def new_orthanc(folder: Path, *, users: dict[str, str] | None = None, bearer: str | None = None) -> Orthanc:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    orthanc = Orthanc(f"http://127.0.0.1:{port}", folder, port, users=users, bearer=bearer)
    orthanc.start()
    return orthanc
