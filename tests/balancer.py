"""Debian's nginx in front of collab processes, as docs/deploy/nginx.conf puts it: round robin,
no stickiness, and the proxy settings of docs/deploy/collab-proxy.conf itself (the TLS there is
left out: the processes and the test speak plain HTTP on loopback)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_CONF = REPO / "docs" / "deploy" / "collab-proxy.conf"


def available() -> bool:
    return Path(NGINX).exists()


@dataclass
class Nginx:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path, upstreams: list[str]) -> Nginx:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        servers = "\n".join(
            f"        server {url.removeprefix('http://')} max_fails=2 fail_timeout=10s;" for url in upstreams
        )
        (folder / "nginx.conf").write_text(
            f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream collab {{
{servers}
        keepalive 16;
    }}
    map $http_upgrade $collab_connection {{
        default upgrade;
        "" "";
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://collab;
            include {PROXY_CONF};
        }}
    }}
}}
"""
        )
        process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(folder / 'error.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return cls(folder, port, process)
            except OSError:
                time.sleep(0.02)
        process.kill()
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
