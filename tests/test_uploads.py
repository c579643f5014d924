"""Slides into the app: the tus upload server (/api/uploads) and the scanner's import folder,
against a real server over HTTP."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import tifffile

from tests.conftest import Server, add_user, api_token, collab, write_fake_svs, write_pyramid_tiff

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _case_id(server: Server) -> str:
    case_id: str = server.client.get("/api/worklist").json()["cases"][0]["id"]
    return case_id


def _create(client: httpx.Client, length: int, **meta: str) -> httpx.Response:
    return client.post(
        "/api/uploads", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": _meta(**meta)}
    )


def _offset(client: httpx.Client, location: str) -> int:
    head = client.head(location, headers=TUS)
    assert head.status_code == 200, head.text
    return int(head.headers["Upload-Offset"])


def _dropped_patch(server: Server, location: str, offset: int, total: int, body: bytes, seen: int) -> None:
    """A PATCH that announces ``total`` bytes, sends ``body`` (fewer) and loses its connection
    once the server reports an offset of at least ``seen``."""
    host, port = server.url.removeprefix("http://").split(":")
    token = server.client.headers["Authorization"]
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + body)
        deadline = time.monotonic() + 10
        while _offset(server.client, location) < seen:
            assert time.monotonic() < deadline, f"the server never wrote {seen} bytes"
            time.sleep(0.05)


def _resume(client: httpx.Client, location: str, data: bytes) -> httpx.Response:
    """What a tus client does after a drop: ask for the offset, send the rest from there."""
    for _ in range(3):
        offset = _offset(client, location)
        sent = client.patch(location, headers={**OCTETS, "Upload-Offset": str(offset)}, content=data[offset:])
        if sent.status_code not in (409, 423):  # the server was still writing what came before the drop
            return sent
    return sent


def test_an_upload_resumes_after_a_dropped_connection_and_the_slide_is_served(
    server: Server, tmp_path: Path
) -> None:
    # Uncompressed: big enough for the server to write a first piece before the drop.
    data = write_pyramid_tiff(tmp_path / "big.tiff", 1400, 1000, tile=256, compression="none").read_bytes()
    assert len(data) > 4 << 20
    case_id = _case_id(server)
    created = _create(server.client, len(data), filename="big.tiff", case_id=case_id)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert _offset(server.client, location) == 0

    first = server.client.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=data[:4000])
    assert first.status_code == 204, first.text
    assert first.headers["Upload-Offset"] == "4000"

    _dropped_patch(server, location, 4000, len(data) - 4000, data[4000 : 4000 + (3 << 20)], 4000 + (2 << 20))
    assert _offset(server.client, location) >= 4000 + (2 << 20)  # what arrived before the drop is kept

    rest = _resume(server.client, location, data)
    assert rest.status_code == 204, rest.text
    slide_id = rest.headers["Collab-Slide-Id"]
    slides = server.client.get(f"/api/cases/{case_id}").json()["slides"]
    assert [s["id"] for s in slides] == [slide_id]
    assert server.client.get(f"/api/slides/{slide_id}").json()["width"] == 1400
    tile = server.client.get(f"/slides/{slide_id}_files/11/0_0.jpeg")
    assert tile.status_code == 200 and tile.content[:2] == b"\xff\xd8"
    stored = list((server.data_dir / "slides").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == data
    assert not list((server.data_dir / "uploads").glob("*.part"))


def test_a_patch_at_the_wrong_offset_is_a_conflict(server: Server) -> None:
    location = _create(server.client, 100, filename="a.svs").headers["Location"]
    wrong = server.client.patch(location, headers={**OCTETS, "Upload-Offset": "10"}, content=b"x" * 10)
    assert wrong.status_code == 409
    assert wrong.headers["Upload-Offset"] == "0"
    assert _offset(server.client, location) == 0


def test_an_upload_over_the_maximum_size_is_refused(server: Server) -> None:
    too_big = _create(server.client, 21 << 30, filename="huge.svs")
    assert too_big.status_code == 413
    assert "20 GiB" in too_big.json()["detail"]
    over = _create(server.client, 10, filename="small.svs").headers["Location"]
    sent = server.client.patch(over, headers={**OCTETS, "Upload-Offset": "0"}, content=b"x" * 11)
    assert sent.status_code == 413


def test_another_persons_upload_does_not_exist_for_them(server: Server) -> None:
    location = _create(server.client, 100, filename="a.svs").headers["Location"]
    add_user(server.data_dir, "north.other", "pathologist", "North Trust")
    other = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {api_token(server.data_dir, 'north.other')}"}
    )
    with other:
        assert other.head(location, headers=TUS).status_code == 404
        assert (
            other.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=b"x").status_code == 404
        )
        assert other.delete(location, headers=TUS).status_code == 404
    assert _offset(server.client, location) == 0


def test_a_file_that_is_not_a_slide_is_refused_and_nothing_is_kept(server: Server) -> None:
    data = b"II*\x00" + os.urandom(5000)  # looks like a TIFF for four bytes
    case_id = _case_id(server)
    location = _create(server.client, len(data), filename="scan.tiff", case_id=case_id).headers["Location"]
    refused = server.client.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=data)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("This file is not a slide we can read: ")
    assert server.client.get(f"/api/cases/{case_id}").json()["slides"] == []
    assert not list((server.data_dir / "uploads").glob("*.part"))
    assert not (server.data_dir / "slides").exists() or not list((server.data_dir / "slides").iterdir())
    assert server.client.get(location).json()["state"] == "refused"
    wrong_kind = _create(server.client, 10, filename="notes.txt")
    assert wrong_kind.status_code == 415


def _svs_with_barcode(path: Path, barcode: str) -> Path:
    """A small Aperio SVS whose description records a barcode, with a label image."""
    head = "Aperio Image Library v12.0.0 \r\n"
    props = f"|AppMag = 20|MPP = 0.5|Barcode = {barcode}"
    base = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(256, 256), compression="jpeg", photometric="rgb", metadata=None,
                  description=f"{head}512x512 [0,0 512x512] (256x256) JPEG/RGB Q=70{props}")  # fmt: skip
        tif.write(base[::8, ::8], compression="jpeg", photometric="rgb", metadata=None,
                  description=f"{head}512x512 -> 64x64 - {props}")  # fmt: skip
        tif.write(np.full((100, 120, 3), 200, np.uint8), compression="lzw", photometric="rgb", metadata=None,
                  subfiletype=1, description=f"{head}label 120x100")  # fmt: skip
    return path


def _settled(path: Path) -> Path:
    """As if the scanner had finished writing it a while ago."""
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def test_the_import_folder_lists_slides_to_attach_once(server: Server, tmp_path: Path) -> None:
    folder = server.data_dir / "import"
    folder.mkdir()
    _settled(_svs_with_barcode(folder / "scan-001.svs", "S26-1-A1"))
    _settled(write_fake_svs(folder / "scan-002.svs"))
    (folder / "broken.tiff").write_bytes(b"not a slide")
    _settled(folder / "broken.tiff")
    (folder / "notes.txt").write_text("ignored")

    listed = server.client.get("/api/slides/unassigned").json()["slides"]
    by_name = {s["filename"]: s for s in listed}
    assert set(by_name) == {"scan-001.svs", "scan-002.svs", "broken.tiff"}
    assert by_name["scan-001.svs"]["barcode"] == "S26-1-A1"
    assert by_name["scan-002.svs"]["barcode"] is None
    assert by_name["broken.tiff"]["refusal"]
    label = server.client.get(by_name["scan-001.svs"]["label"])
    assert label.status_code == 200 and label.headers["content-type"] == "image/jpeg"
    assert server.client.get("/api/slides/unassigned").json()["slides"] == listed  # not imported twice

    # Another trust's pathologist sees neither the list nor the label (patient-identifying).
    assert collab("orgs", "add", "South Trust", data_dir=server.data_dir).returncode == 0
    add_user(server.data_dir, "south.path", "pathologist", "South Trust")
    south = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {api_token(server.data_dir, 'south.path')}"}
    )
    with south:
        assert south.get("/api/slides/unassigned").json()["slides"] == []
        assert south.get(by_name["scan-001.svs"]["label"]).status_code == 404
        case_id = _case_id(server)
        sneaky = south.post(f"/api/slides/{by_name['scan-001.svs']['id']}/attach", json={"case_id": case_id})
        assert sneaky.status_code == 404

    case_id = _case_id(server)
    attached = server.client.post(
        f"/api/slides/{by_name['scan-001.svs']['id']}/attach", json={"case_id": case_id}
    )
    assert attached.status_code == 200, attached.text
    slide_id = attached.json()["slide_id"]
    assert [s["id"] for s in server.client.get(f"/api/cases/{case_id}").json()["slides"]] == [slide_id]
    assert server.client.get(f"/slides/{slide_id}_files/9/0_0.jpeg").status_code == 200
    left = {s["filename"] for s in server.client.get("/api/slides/unassigned").json()["slides"]}
    assert left == {"scan-002.svs", "broken.tiff"}
    refused = server.client.post(
        f"/api/slides/{by_name['broken.tiff']['id']}/attach", json={"case_id": case_id}
    )
    assert refused.status_code == 409


def test_an_upload_without_a_case_waits_among_the_unassigned_slides(server: Server, tmp_path: Path) -> None:
    data = write_fake_svs(tmp_path / "loose.svs").read_bytes()
    location = _create(server.client, len(data), filename="loose.svs").headers["Location"]
    done = server.client.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=data)
    assert done.status_code == 204, done.text
    (listed,) = server.client.get("/api/slides/unassigned").json()["slides"]
    assert listed["id"] == done.headers["Collab-Slide-Id"]
    assert listed["source"] == "upload" and listed["label"]
