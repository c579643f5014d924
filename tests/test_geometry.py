"""Deep Zoom geometry against openslide-python's own arithmetic, over many slide shapes."""

from __future__ import annotations

import itertools

import pytest

from collab.slides.geometry import DeepZoomGeometry, best_level_for_downsample, fitted_size

openslide = pytest.importorskip("openslide")
deepzoom = pytest.importorskip("openslide.deepzoom")
Image = pytest.importorskip("PIL.Image")

SHAPES = [(1, 1), (16, 16), (255, 257), (1000, 777), (2220, 2967), (4443, 3567), (46001, 5), (3, 9000)]

GRIDS = [(254, 1), (256, 0), (240, 0), (510, 1)]


@pytest.mark.parametrize(("shape", "grid"), list(itertools.product(SHAPES, GRIDS)))
def test_levels_tiles_and_tile_sizes_match_openslide(shape: tuple[int, int], grid: tuple[int, int]) -> None:
    width, height = shape
    tile_size, overlap = grid
    # Only geometry is compared: the image behind the reference is never read.
    reference = deepzoom.DeepZoomGenerator(
        openslide.ImageSlide(Image.new("L", shape)), tile_size, overlap, limit_bounds=False
    )

    ours = DeepZoomGeometry(((width, height),), (1.0,), tile_size, overlap)
    assert ours.level_count == reference.level_count
    assert ours.z_dimensions == reference.level_dimensions
    assert ours.t_dimensions == reference.level_tiles
    for z_level in range(ours.level_count):
        t_cols, t_rows = ours.t_dimensions[z_level]
        for t_col, t_row in {(0, 0), (t_cols - 1, t_rows - 1), (t_cols // 2, t_rows // 2)}:
            (l0_location, _, l_size) = reference.get_tile_coordinates(z_level, (t_col, t_row))
            region = ours.tile_region(z_level, t_col, t_row)
            assert (region.l_x, region.l_y) == l0_location
            assert (region.l_width, region.l_height) == l_size
            assert (region.z_width, region.z_height) == reference.get_tile_dimensions(z_level, (t_col, t_row))


def test_has_tile_bounds() -> None:
    geometry = DeepZoomGeometry(((1000, 777),), (1.0,), 256, 0)
    top = geometry.level_count - 1
    assert geometry.has_tile(top, 3, 3)
    assert not geometry.has_tile(top, 4, 0)
    assert not geometry.has_tile(top, 0, 4)
    assert not geometry.has_tile(top + 1, 0, 0)
    assert not geometry.has_tile(-1, 0, 0)
    assert not geometry.has_tile(0, -1, 0)


def test_best_level_is_openslides_rule() -> None:
    downsamples = (1.0, 2.0005, 4.001, 16.0)
    # A level qualifies only when its downsample does not exceed the wanted one.
    assert [best_level_for_downsample(downsamples, d) for d in (0.5, 1, 2, 2.0005, 4, 8, 32)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        3,
    ]


@pytest.mark.parametrize(
    ("region", "tile", "expected"),
    [
        ((480, 480), (240, 240), (240, 240)),
        ((300, 87), (150, 44), (150, 44)),
        ((2220, 87), (555, 22), (555, 22)),
        ((87, 61), (44, 30), (43, 30)),  # the aspect ratio wins over the grid: one pixel narrower
        ((37, 240), (19, 120), (19, 120)),
        ((100, 100), (120, 120), (100, 100)),  # never scaled up
    ],
)
def test_fitted_size_is_pillows_thumbnail_rule(
    region: tuple[int, int], tile: tuple[int, int], expected: tuple[int, int]
) -> None:
    image = Image.new("RGB", region)
    image.thumbnail(tile)
    assert fitted_size(*region, *tile) == image.size == expected
