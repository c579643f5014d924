"""The command line as a user or script meets it: outputs, exit codes, refusals; each command
in a process of its own (``python -m collab``), as a shell runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import collab_process as collab
from tests.conftest import connect_db, real_slide, sqlite_only, write_pyramid_tiff


def _slide_rows(data_dir: Path) -> list[tuple[str, str]]:
    with connect_db(data_dir) as db:
        return db.execute("SELECT id, path FROM slides ORDER BY path").fetchall()


def test_orgs_cases_and_slides(data_dir: Path, tmp_path: Path) -> None:
    assert collab("orgs", "add", "North Trust", "--network", "North", data_dir=data_dir).returncode == 0
    result = collab(
        "cases", "add", "S26-7", "--org", "North Trust", "--priority", "urgent", data_dir=data_dir
    )
    assert result.returncode == 0
    case_id = result.stdout.strip()
    assert len(case_id) == 16 and case_id.isalnum()

    a = write_pyramid_tiff(tmp_path / "a.tiff", 500, 400)
    b = write_pyramid_tiff(tmp_path / "b.tiff", 500, 400, seed=1)
    result = collab("slides", "add", str(a), str(b), "--case", "S26-7", "--stain", "H&E", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [path for _, path in lines] == [str(a), str(b)]
    assert sorted(lines) == sorted([list(row) for row in _slide_rows(data_dir)])

    # Adding the same file again registers nothing new and says so.
    again = collab("slides", "add", str(a), "--case", "S26-7", data_dir=data_dir)
    assert again.returncode == 0
    assert again.stdout.split("\t")[0] == lines[0][0]
    assert "already registered" in again.stderr
    assert len(_slide_rows(data_dir)) == 2


def test_unreadable_files_are_refused_and_not_registered(case: str, data_dir: Path, tmp_path: Path) -> None:
    good = write_pyramid_tiff(tmp_path / "good.tiff", 500, 400)
    text = tmp_path / "notes.txt"
    text.write_text("not a slide")
    truncated = tmp_path / "truncated.tiff"
    data = write_pyramid_tiff(tmp_path / "full.tiff", 900, 700).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = collab(
        "slides",
        "add",
        str(text),
        str(good),
        str(truncated),
        str(tmp_path / "absent.svs"),
        "--case",
        case,
        data_dir=data_dir,
    )
    assert result.returncode == 1
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == [str(good)]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"collab: refused {text}: not a whole-slide image collab can read")
    assert errors[1].startswith(f"collab: refused {truncated}: the slide file is ")
    assert "truncated" in errors[1]
    assert errors[2] == f"collab: refused {tmp_path / 'absent.svs'}: the slide file is missing"
    assert [path for _, path in _slide_rows(data_dir)] == [str(good)]


@pytest.mark.parametrize("flip_at", [0.3, 0.6, 0.9])
def test_corrupt_real_slide_is_refused_or_served_safely(
    case: str, data_dir: Path, tmp_path: Path, flip_at: float
) -> None:
    source = real_slide("CMU-1-Small-Region.svs").read_bytes()
    damaged = bytearray(source)
    position = int(len(damaged) * flip_at)
    damaged[position : position + 64] = bytes(64)
    path = tmp_path / "damaged.svs"
    path.write_bytes(bytes(damaged))
    result = collab("slides", "add", str(path), "--case", case, data_dir=data_dir)
    # Damage inside pixel data may only show when that part is drawn; damage to the
    # index or to sampled chunks is refused. Either way the command says which.
    if result.returncode:
        assert result.stderr.startswith(f"collab: refused {path}: ")
        assert _slide_rows(data_dir) == []
    else:
        assert len(_slide_rows(data_dir)) == 1


def test_truncated_real_slide_is_refused(case: str, data_dir: Path, tmp_path: Path) -> None:
    source = real_slide("CMU-1-Small-Region.svs").read_bytes()
    path = tmp_path / "cut.svs"
    path.write_bytes(source[: len(source) * 2 // 3])
    result = collab("slides", "add", str(path), "--case", case, data_dir=data_dir)
    assert result.returncode == 1
    assert result.stderr == (
        f"collab: refused {path}: the slide file is damaged or truncated (invalid page offset 1474362)\n"
    )
    assert _slide_rows(data_dir) == []


def test_clear_messages_for_mistakes(data_dir: Path, tmp_path: Path) -> None:
    result = collab("cases", "add", "S1", "--org", "Nowhere", data_dir=data_dir)
    assert result.returncode == 1
    assert result.stderr == "collab: no organisation named 'Nowhere' (create it with: collab orgs add NAME)\n"
    assert collab("orgs", "add", "North Trust", data_dir=data_dir).returncode == 0
    duplicate = collab("orgs", "add", "North Trust", data_dir=data_dir)
    assert (duplicate.returncode, duplicate.stderr) == (
        1,
        "collab: an organisation named 'North Trust' already exists\n",
    )
    slide = write_pyramid_tiff(tmp_path / "a.tiff", 300, 300)
    result = collab("slides", "add", str(slide), "--case", "NOPE", data_dir=data_dir)
    assert result.returncode == 1
    assert result.stderr == "collab: no case with accession 'NOPE' (create it with: collab cases add)\n"
    bad_priority = collab(
        "cases", "add", "S2", "--org", "North Trust", "--priority", "soon", data_dir=data_dir
    )
    assert bad_priority.returncode == 2
    assert "invalid choice: 'soon'" in bad_priority.stderr


@sqlite_only("asserts the SQLite file is made in $COLLAB_DATA_DIR")
def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    env_dir = tmp_path / "from-env"
    result = subprocess.run(
        [sys.executable, "-m", "collab", "orgs", "add", "East Trust"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "COLLAB_DATA_DIR": str(env_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert (env_dir / "collab.sqlite3").exists()
