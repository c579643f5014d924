"""The example in docs/api.md works as written: a Node tool, with the viewer's own Yjs packages,
writes one annotation in one transaction under its own /api/me id, and the case has it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Server, add_slides, api_token, write_pyramid_tiff

REPO = Path(__file__).resolve().parent.parent


def test_the_yjs_tool_example_writes_an_annotation_in_its_own_name(server: Server, tmp_path: Path) -> None:
    if shutil.which("node") is None or not (REPO / "node_modules" / "yjs").exists():
        pytest.skip("node and the browser packages (scripts/setup) are needed")
    example = re.search(r"```js\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    assert example, "docs/api.md lost its example"
    tool = tmp_path / "tool.mjs"
    tool.write_text(example[1])
    (tmp_path / "node_modules").symlink_to(REPO / "node_modules")  # resolved from the script's folder
    (slide_id,) = add_slides(server.data_dir, write_pyramid_tiff(tmp_path / "s.tiff", 600, 500, tile=256))
    token = api_token(server.data_dir, "north.path")
    me = server.client.get("/api/me").json()["id"]
    case_id = server.client.get("/api/worklist").json()["cases"][0]["id"]
    done = subprocess.run(
        ["node", str(tool), server.url, case_id, token, str(me), slide_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    features = server.client.get(f"/api/cases/{case_id}/annotations.geojson").json()["features"]
    assert len(features) == 1
    stored = features[0]["properties"]["collab"]
    assert stored["label"] == "Suspicious region (model score 0.93)"
    assert (stored["author"], stored["slide"], stored["kind"]) == (str(me), slide_id, "polygon")
    assert features[0]["geometry"]["type"] == "Polygon"
