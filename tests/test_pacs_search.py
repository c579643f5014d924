"""Finding slides in a PACS from a case: a real Orthanc (DICOMweb plugin) that asks for basic
credentials, or for a bearer token checked by its own request filter, holds a whole-slide series
labelled with an accession number and a patient ID. A pathologist or coordinator searches it
from the case, sees the series with an overview, attaches it (only its reference is stored), and
its tiles are then read from the PACS. Everyone else is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from tests.conftest import (
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    start_server,
    stop_server,
)
from tests.orthanc import Orthanc, available, new_orthanc

SHARED = Path(__file__).resolve().parents[2] / "shared" / "slides"
SLIDE = SHARED / "dicom-boxes"
ACCESSION = "S26-PACS-7"
PATIENT_ID = "9434765919"
PASSWORD = "orthanc-test-password-1"
TOKEN = "pacs-bearer-token-7f3a"

pytestmark = [
    pytest.mark.skipif(not SLIDE.is_dir(), reason="../shared/slides is not here"),
    pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed"),
]


def relabelled(source: Path, dest: Path, accession: str = ACCESSION) -> Path:
    """A copy of a DICOM WSI series whose study carries an accession number and our patient."""
    dest.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        data = pydicom.dcmread(path)
        data.AccessionNumber = accession
        data.PatientID = PATIENT_ID
        data.PatientName = "Hopper^Grace"
        data.save_as(dest / path.name)
    return dest


def _case_id(data_dir: Path) -> str:
    with connect_db(data_dir) as db:
        return str(db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0])


def _pacs_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orthanc: Orthanc, auth: str
) -> tuple[Server, str]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    secret = {
        "basic": 'username = "collab"\npassword_env = "TEST_PACS_PASSWORD"\n',
        "bearer": 'token_env = "TEST_PACS_TOKEN"\n',
    }
    config = tmp_path / "collab.toml"
    config.write_text(
        f'[[pacs]]\nname = "North PACS"\nurl = "{orthanc.dicomweb}"\nauth = "{auth}"\n{secret[auth]}'
    )
    monkeypatch.setenv("TEST_PACS_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_PACS_TOKEN", TOKEN)
    server = start_server(data_dir, args=["--config", str(config)])
    server.client.headers["Authorization"] = f"Bearer {api_token(data_dir, 'north.path')}"
    return server, _case_id(data_dir)


@pytest.fixture(params=["basic", "bearer"])
def pacs(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, str]]:
    auth = request.param
    orthanc = new_orthanc(
        tmp_path / "orthanc",
        users={"collab": PASSWORD} if auth == "basic" else None,
        bearer=TOKEN if auth == "bearer" else None,
    )
    server = None
    try:
        orthanc.upload(relabelled(SLIDE, tmp_path / "relabelled"))
        server, case_id = _pacs_server(tmp_path, monkeypatch, orthanc, auth)
        yield server, case_id
    finally:
        if server is not None:
            stop_server(server)
        orthanc.stop()


def test_search_attach_and_read_tiles_through_an_authenticated_pacs(pacs: tuple[Server, str]) -> None:
    server, case_id = pacs
    by_accession = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": ACCESSION})
    assert by_accession.status_code == 200, by_accession.text
    (hit,) = by_accession.json()["series"]
    assert hit["accession"] == ACCESSION and hit["patient_id"] == PATIENT_ID
    assert hit["patient_name"] == "Grace Hopper" and hit["attached"] is False
    by_patient = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": PATIENT_ID}).json()
    assert [s["series"] for s in by_patient["series"]] == [hit["series"]]

    picture = server.client.get(
        f"/cases/{case_id}/pacs/thumbnail.jpeg",
        params={"pacs": "North PACS", "study": hit["study"], "series": hit["series"]},
    )
    assert picture.status_code == 200, picture.text
    image = Image.open(io.BytesIO(picture.content))
    assert image.format == "JPEG" and max(image.size) <= 256

    made = server.client.post(
        f"/api/cases/{case_id}/pacs/attach",
        json={"pacs": "North PACS", "study": hit["study"], "series": hit["series"], "stain": "H&E"},
    )
    assert made.status_code == 201, made.text
    slide_id = made.json()["slide_id"]
    assert server.client.get(f"/slides/{slide_id}.dzi").status_code == 200
    tile = server.client.get(f"/slides/{slide_id}_files/0/0_0.jpeg")
    assert tile.status_code == 200, tile.text

    again = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": ACCESSION}).json()
    assert again["series"][0]["attached"] is True
    with connect_db(server.data_dir) as db:
        (stored,) = db.execute("SELECT path FROM slides WHERE id = ?", (slide_id,)).fetchone()
        audit = db.execute("SELECT detail FROM audit WHERE event = 'slide attached'").fetchall()
    assert stored.startswith("dicomweb+") and hit["series"] in stored
    assert PASSWORD not in stored and TOKEN not in stored  # credentials stay in the settings
    assert any("North PACS" in row[0] for row in audit)


def test_who_may_search_the_pacs(pacs: tuple[Server, str]) -> None:
    server, case_id = pacs
    data_dir = server.data_dir
    add_user(data_dir, "north.coord", "clinician", "North Trust", "--specialty", "nursing/MDT coordination")
    add_user(data_dir, "north.onc", "clinician", "North Trust", "--specialty", "oncology")
    add_user(data_dir, "north.student", "student", "North Trust")
    # South contributes to the case: that opens the case, never North's PACS (every patient).
    assert collab("orgs", "add", "South Trust", data_dir=data_dir).returncode == 0
    add_user(data_dir, "south.path", "pathologist", "South Trust")
    assert collab("cases", "share", "S26-1", "--org", "South Trust", data_dir=data_dir).returncode == 0
    people = (("north.coord", 200), ("north.onc", 403), ("north.student", 404), ("south.path", 403))
    for username, status in people:
        headers = {"Authorization": f"Bearer {api_token(data_dir, username)}"}
        answer = server.client.get(
            f"/api/cases/{case_id}/pacs/search", params={"q": ACCESSION}, headers=headers
        )
        assert answer.status_code == status, (username, answer.text)
        if status != 200:
            assert "Grace" not in answer.text and PATIENT_ID not in answer.text
    wildcard = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": "S26*"})
    assert wildcard.status_code == 400 and "wildcard" in wildcard.json()["detail"]
    not_a_uid = server.client.post(
        f"/api/cases/{case_id}/pacs/attach", json={"pacs": "North PACS", "study": "1.2", "series": "x'--"}
    )
    assert not_a_uid.status_code == 422, not_a_uid.text


def test_a_pacs_kept_for_one_trust_is_not_offered_to_another(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    config = tmp_path / "collab.toml"
    config.write_text(
        '[[pacs]]\nname = "South PACS"\nurl = "http://127.0.0.1:9/dicom-web"\norg = "South Trust"\n'
    )
    server = start_server(data_dir, args=["--config", str(config)])
    try:
        server.client.headers["Authorization"] = f"Bearer {api_token(data_dir, 'north.path')}"
        case_id = _case_id(data_dir)
        answer = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": ACCESSION})
        assert answer.status_code == 404 and "for your trust" in answer.json()["detail"]
        assert "Add from the PACS" not in server.client.get(f"/cases/{case_id}").text
    finally:
        stop_server(server)


def test_wrong_credentials_give_a_503_naming_the_pacs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orthanc = new_orthanc(tmp_path / "orthanc", users={"collab": "another-password"})
    server = None
    try:
        server, case_id = _pacs_server(tmp_path, monkeypatch, orthanc, "basic")
        answer = server.client.get(f"/api/cases/{case_id}/pacs/search", params={"q": ACCESSION})
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert "North PACS" in detail and orthanc.url.split("//")[1] in detail
        # Its answer, not the request's address (whose query holds what was searched for).
        assert "the server answered 401" in detail and ACCESSION not in detail
        assert "an administrator must check the credentials" in detail
        assert PASSWORD not in answer.text
    finally:
        if server is not None:
            stop_server(server)
        orthanc.stop()
