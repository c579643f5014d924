"""The colour maps of heatmap layers: the server draws each as the viewer's legend shows it
(the same stops in collab/analysis/colours.py and static/src/colourmaps.js), and the layer
route draws only a map of the fixed list."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from collab.analysis.colours import COLOUR_MAPS, DEFAULT, layer_png

COLOURMAPS_JS = Path(__file__).parent.parent / "static" / "src" / "colourmaps.js"


def _js_maps() -> dict[str, list[list[int]]]:
    source = COLOURMAPS_JS.read_text()
    found = re.findall(r"^  (\w+): \[\n    \"[^\"]+\",\n    (\[\[.*?\]\]),\n  \],", source, re.M | re.S)
    return {name: json.loads(stops) for name, stops in found}


def test_the_legend_draws_from_the_stops_the_server_colours_with() -> None:
    assert _js_maps() == {name: stops.astype(int).tolist() for name, stops in COLOUR_MAPS.items()}
    assert f'DEFAULT_COLOURS = "{DEFAULT}"' in COLOURMAPS_JS.read_text()


def test_each_map_rises_from_transparent_and_leaves_missing_cells_clear() -> None:
    values = np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)
    for name, stops in COLOUR_MAPS.items():
        with Image.open(io.BytesIO(layer_png(values, name))) as png:
            rgba = np.asarray(png)
        assert rgba[0, 0, 3] == 0 and rgba[0, 3, 3] == 0, name
        assert (rgba[0, 2] == stops[-1].astype(np.uint8)).all(), name
        assert (rgba[0, 1] == stops[2].astype(np.uint8)).all(), name
    # The default is the map layers were always drawn in.
    assert layer_png(values) == layer_png(values, "viridis")
    assert layer_png(values, "magma") != layer_png(values)
