"""The generated demo slide: layout, metadata, content, reader agreement, determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import tiffslide

from collab.slides.demo import generate_demo_slide

WIDTH, HEIGHT, TILE, MPP, SEED = 3000, 2000, 256, 0.5, 7
# Halve (rounding up) until the long side is <= 1024.
LEVELS = ((3000, 2000), (1500, 1000), (750, 500))
TOTAL_TILES = sum(-(-w // TILE) * -(-h // TILE) for w, h in LEVELS)


def _generate(path: Path, seed: int = SEED, progress: Callable[[int, int], None] | None = None) -> Path:
    generate_demo_slide(
        path,
        l0_width=WIDTH,
        l0_height=HEIGHT,
        tile_size=TILE,
        mpp=MPP,
        seed=seed,
        progress=progress,
    )
    return path


@pytest.fixture(scope="module")
def progress_calls() -> list[tuple[int, int]]:
    return []


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory, progress_calls: list[tuple[int, int]]) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.tiff"
    return _generate(path, progress=lambda done, total: progress_calls.append((done, total)))


def _rgb(image: object) -> np.ndarray:
    """PIL image (RGB or RGBA) -> int array of RGB, so differences don't wrap around."""
    return np.asarray(image.convert("RGB"), dtype=np.int16)  # type: ignore[attr-defined]


def _tissue_mask(rgb: np.ndarray) -> np.ndarray:
    # Haematoxylin and eosin both absorb green most, so stained pixels have R and B well above
    # G; the glass background is neutral (R ~ G ~ B).
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - g > 20) & (b - g > 10)


def test_tiffslide_sees_every_level_and_the_mpp(slide_path: Path) -> None:
    with tiffslide.TiffSlide(slide_path) as slide:
        assert slide.level_dimensions == LEVELS
        assert slide.properties["tiffslide.mpp-x"] == pytest.approx(MPP)
        assert slide.properties["tiffslide.mpp-y"] == pytest.approx(MPP)
        assert slide.properties["tiffslide.level[0].tile-width"] == TILE


def test_layout_is_a_generic_tiled_tiff(slide_path: Path) -> None:
    with tifffile.TiffFile(slide_path) as tif:
        pages = list(tif.pages)
        assert [(p.imagewidth, p.imagelength) for p in pages] == list(LEVELS)  # type: ignore[union-attr]
        for page in pages:
            assert isinstance(page, tifffile.TiffPage)
            assert page.subifds is None  # levels are main IFDs, not SubIFDs
            assert (page.tilewidth, page.tilelength) == (TILE, TILE)
            assert page.compression == tifffile.COMPRESSION.JPEG
            assert page.samplesperpixel == 3 and page.bitspersample == 8
            assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        assert "demo" in pages[0].description and "no patient data" in pages[0].description  # type: ignore[union-attr]


def test_progress_is_reported_up_to_the_total(
    slide_path: Path, progress_calls: list[tuple[int, int]]
) -> None:
    assert progress_calls[-1] == (TOTAL_TILES, TOTAL_TILES)
    assert all(total == TOTAL_TILES for _, total in progress_calls)
    assert [done for done, _ in progress_calls] == sorted(done for done, _ in progress_calls)


def test_it_looks_like_stained_tissue_on_glass(slide_path: Path) -> None:
    with tiffslide.TiffSlide(slide_path) as slide:
        overview = _rgb(slide.read_region((0, 0), 2, LEVELS[2]))
        full = _rgb(slide.read_region((0, 0), 0, LEVELS[0]))
    tissue = _tissue_mask(overview)
    assert 0.05 < tissue.mean() < 0.8, "expected some tissue and some glass"
    glass = overview[~tissue & (np.abs(overview - overview.mean(axis=-1, keepdims=True)).max(axis=-1) < 4)]
    assert glass.mean() >= 238  # very light background
    # Nuclei: dark purple (blue above red, clearly darker than the pink eosin) at full resolution.
    r, g, b = full[..., 0], full[..., 1], full[..., 2]
    assert ((b > r) & (g < 140)).mean() > 0.001
    # Texture, not flat colour: stained pixels vary.
    assert full[_tissue_mask(full)].std(axis=0).min() > 5


def test_openslide_reads_the_same_pixels(slide_path: Path) -> None:
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(slide_path) as osr, tiffslide.TiffSlide(slide_path) as slide:
        assert osr.properties["openslide.vendor"] == "generic-tiff"
        assert osr.level_dimensions == LEVELS
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(MPP)
        assert float(osr.properties["openslide.mpp-y"]) == pytest.approx(MPP)
        # A level-0 window centred on a tissue pixel picked from the overview.
        ys, xs = np.nonzero(_tissue_mask(_rgb(slide.read_region((0, 0), 2, LEVELS[2]))))
        pick = len(ys) // 2
        x = int(np.clip(xs[pick] * 4 - 256, 0, WIDTH - 512))
        y = int(np.clip(ys[pick] * 4 - 256, 0, HEIGHT - 512))
        ours = _rgb(slide.read_region((x, y), 0, (512, 512)))
        theirs = _rgb(osr.read_region((x, y), 0, (512, 512)))
        assert _tissue_mask(ours).mean() > 0.2
        assert np.abs(ours - theirs).mean() < 1
        for level, size in enumerate(LEVELS):
            whole = np.abs(
                _rgb(slide.read_region((0, 0), level, size)) - _rgb(osr.read_region((0, 0), level, size))
            )
            assert whole.mean() < 1, f"level {level}"


def test_same_seed_gives_identical_bytes(slide_path: Path, tmp_path: Path) -> None:
    again = _generate(tmp_path / "again.tiff")
    assert again.read_bytes() == slide_path.read_bytes()
    other = _generate(tmp_path / "other.tiff", seed=SEED + 1)
    assert other.read_bytes() != slide_path.read_bytes()


@pytest.mark.parametrize("tile_size", [0, 100, 4096])
def test_rejects_tile_sizes_jpeg_cannot_tile(tmp_path: Path, tile_size: int) -> None:
    with pytest.raises(ValueError, match="tile_size"):
        generate_demo_slide(tmp_path / "bad.tiff", l0_width=512, l0_height=512, tile_size=tile_size)
