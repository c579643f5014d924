"""Synthetic, H&E-looking pyramidal TIFF for demos and tests (no patient data).

Computing every pixel of a 46k x 32k slide is far too slow, so each level is put
together from two ``_PERIOD``-periodic tissue textures (a tile shows the texture at
``position % period``: seams vanish and each distinct tile is JPEG-encoded once) and
two smooth coarse fields (signed distance to the tissue edge, tissue type). Only
tiles on a tissue or tissue-type boundary are composited and encoded one by one.
Lower levels use box-downsampled textures, so no level is decoded to make the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

_PERIOD = 2048  # level-0 texture period: 512 µm at 0.25 mpp hides the repetition
_CELL = 32  # level-0 px between the nodes of the coarse tissue and type grids
_WIGGLE_PX = 10.0  # amplitude of the fine wiggle on tissue edges (level-0 px)
_EDGE_PX = 1.5  # anti-aliasing width of tissue edges, in px of the level
_TYPE_PX = 16.0  # blend width between the two tissue types (level-0 px)
_BACKGROUND = (243, 243, 245)  # bright-field glass is slightly bluish white
_QUALITY = 80
_MAX_LEVEL_SIDE = 1024
_PROGRESS_EVERY = 256
# Macenko's reference optical-density vectors (R, G, B) of haematoxylin and eosin
_H_OD = (0.5626, 0.7201, 0.4062)
_E_OD = (0.2159, 0.8012, 0.5581)
_Range = tuple[float, float]
_Size = tuple[int, int]
_Interp = tuple[int, int, np.ndarray, np.ndarray]


def _noise(rng: np.random.Generator, shape: _Size, sx: float, sy: float, angle: float = 0) -> np.ndarray:
    """Periodic Gaussian-filtered white noise (zero mean, unit variance, float32)."""
    # float32 throughout: numpy >= 2 runs the FFT in single precision, ~4x faster.
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u, v = sx * (fx * c + fy * s), sy * (fy * c - fx * s)
    gain = np.exp(np.float32(-2 * math.pi**2) * (u * u + v * v))
    # A random complex spectrum is the FFT of white noise, without that FFT's cost.
    spec = np.empty(gain.shape, np.complex64)
    spec.real = rng.standard_normal(gain.shape, dtype=np.float32) * gain
    spec.imag = rng.standard_normal(gain.shape, dtype=np.float32) * gain
    out = np.fft.irfft2(spec, s=shape)
    out -= out.mean()
    return out / (out.std() + np.float32(1e-12))


def _nuclei(rng: np.random.Generator, n: int, radius: _Range, elong: _Range, orient: _Range) -> np.ndarray:
    """Periodic map of ``n`` soft elliptical nuclei; values are haematoxylin weights."""
    pad = int(2 * radius[1] * elong[1]) + 4
    canvas = np.zeros((_PERIOD + pad, _PERIOD + pad), np.float32)
    yy, xx = np.mgrid[0:pad, 0:pad].astype(np.float32) - (pad - 1) / 2
    ys, xs = rng.integers(0, _PERIOD, (2, n)).tolist()
    ellipses = [rng.uniform(*radius, n), rng.uniform(*elong, n), rng.normal(*orient, n)]
    shades = np.stack([*ellipses, rng.uniform(0.9, 1.35, n)]).tolist()
    for y, x, b, el, th, dark in zip(ys, xs, *shades, strict=True):
        u = xx * math.cos(th) + yy * math.sin(th)
        v = yy * math.cos(th) - xx * math.sin(th)
        r = np.sqrt((u / (b * el)) ** 2 + (v / b) ** 2)
        # ~1 px soft edge and a slightly darker rim, like the nuclear membrane.
        stamp = np.clip((1 - r) * b + 0.5, 0, 1) * dark * (0.8 + 0.25 * r * r)
        view = canvas[y : y + pad, x : x + pad]
        np.maximum(view, stamp, out=view)
    # Fold the overhang back onto the opposite side so the map stays periodic.
    np.maximum(canvas[:pad], canvas[_PERIOD:], out=canvas[:pad])
    np.maximum(canvas[:, :pad], canvas[:, _PERIOD:], out=canvas[:, :pad])
    return canvas[:_PERIOD, :_PERIOD]


def _stain(h: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Beer-Lambert mix of haematoxylin and eosin amounts, as RGB uint8."""
    od = h[..., None] * np.array(_H_OD, np.float32) + e[..., None] * np.array(_E_OD, np.float32)
    return (np.exp(-od) * np.array(_BACKGROUND, np.float32) + np.float32(0.5)).astype(np.uint8)


def _textures(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Stroma texture, cellular texture and edge wiggle, all ``_PERIOD``-periodic."""
    shape = (_PERIOD, _PERIOD)
    angle = float(rng.uniform(0, math.pi))
    mottle, grain = _noise(rng, shape, 30, 30), _noise(rng, shape, 1.2, 1.2)
    # Zero crossings of stretched noise are long wavy lines: pale clefts between collagen bundles.
    clefts = np.exp(-((_noise(rng, shape, 40, 5, angle) * 3) ** 2))
    wiggle = np.clip(_noise(rng, shape, 5, 5) / 2.5, -1, 1)
    # Stroma: sparse spindle-shaped fibroblast nuclei, roughly along the fibres.
    nuc = _nuclei(rng, 500, (4.0, 6.0), (2.2, 3.5), (angle, 0.3))
    e = (0.5 + 0.07 * mottle) * (1 - 0.55 * clefts) * (1 - 0.6 * np.minimum(nuc, 1))
    stroma = _stain(0.03 + nuc * (0.85 + 0.15 * grain), e)
    # Cellular: crowded round-to-oval nuclei in paler, purplish cytoplasm. Rolled copies of the
    # shared noise keep the two textures from lining up.
    mottle, grain = np.roll(mottle, _PERIOD // 2, 0), np.roll(grain, _PERIOD // 2, 1)
    nuc = _nuclei(rng, 3200, (9.0, 13.0), (1.0, 1.5), (0.0, math.pi))
    e = (0.34 + 0.06 * mottle + 0.03 * grain) * (1 - 0.7 * np.minimum(nuc, 1))
    cellular = _stain(0.12 + 0.04 * mottle + nuc * (0.8 + 0.2 * grain), e)
    return stroma, cellular, wiggle


def _halve(a: np.ndarray) -> np.ndarray:
    """2x2 box mean of a periodic array (a 1-px period stays as it is)."""
    if a.shape[0] < 2:
        return a
    f = a.astype(np.float32)
    f = (f[::2, ::2] + f[1::2, ::2] + f[::2, 1::2] + f[1::2, 1::2]) * np.float32(0.25)
    return (f + np.float32(0.5)).astype(np.uint8) if a.dtype == np.uint8 else f


def _fields(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Coarse grids: tissue signed distance (px, > 0 inside) and type (> 0 cellular)."""
    gh, gw = height // _CELL + 2, width // _CELL + 2
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32) * _CELL
    count = int(rng.integers(2, 5))
    slot = width / count  # pieces side by side, like serial sections on a slide
    dist = np.full((gh, gw), -1e9, np.float32)
    for i in range(count):
        radius = min(slot, height) * 0.36 * rng.uniform(0.8, 1.0)
        dx = xx - slot * (i + 0.5 + rng.uniform(-0.05, 0.05))
        dy = yy - height * (0.5 + rng.uniform(-0.06, 0.06))
        rot, aspect = rng.uniform(0, math.pi), rng.uniform(0.65, 1.0)
        u = dx * math.cos(rot) + dy * math.sin(rot)
        v = (dy * math.cos(rot) - dx * math.sin(rot)) / aspect
        theta = np.arctan2(v, u)
        wobble = sum(
            rng.uniform(0, 0.25) / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in range(2, 6)
        )
        dist = np.maximum(dist, radius * (1 + wobble) - np.hypot(u, v))
    # Ragged edges on two scales; the deepest dips of the first punch a few holes.
    dist += _noise(rng, (gh, gw), 6, 6) * (0.03 * slot)
    dist += _noise(rng, (gh, gw), 1.5, 1.5) * 40
    kind = (_noise(rng, (gh, gw), 28, 28) - 0.5) * (28 * _CELL)
    return np.stack([dist, kind]).astype(np.float32)


def _interp(start: int, t: int, scale: int, nodes: int) -> _Interp:
    """Node range [lo, hi), per-pixel node index (from lo) and weight of a tile side."""
    pos = ((start + np.arange(t) + 0.5) * scale - 0.5) / _CELL  # pixel centres, nodes
    idx = np.clip(np.floor(pos).astype(np.intp), 0, nodes - 2)
    w = np.clip(pos - idx, 0, 1).astype(np.float32)
    return int(idx[0]), int(idx[-1]) + 2, idx - idx[0], w


def _encode(tile: np.ndarray) -> bytes:
    # The call tifffile itself makes for compression="jpeg" on RGB, so the tags it
    # writes (Photometric YCbCr, YCbCrSubSampling 2x2, ReferenceBlackWhite) fit.
    data = imagecodecs.jpeg8_encode(
        tile, _QUALITY, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
    )
    return bytes(data)  # no copy: it is bytes already, the stubs say bytes | bytearray


def _level_tiles(
    fields: np.ndarray, textures: tuple[np.ndarray, ...], k: int, size: _Size, t: int
) -> Iterator[bytes]:
    """Yield the encoded tiles of level ``k`` (``size`` px) in row-major order."""
    scale, period = 1 << k, textures[0].shape[0]
    # Wrap-pad by a tile so that every tile-sized window is a plain slice.
    stroma, cellular, wiggle = (
        np.pad(a, [(0, t), (0, t)] + [(0, 0)] * (a.ndim - 2), mode="wrap") for a in textures
    )
    background = np.full((t, t, 3), _BACKGROUND, np.uint8)
    bg = background.astype(np.float32)
    margin = _WIGGLE_PX + _EDGE_PX * scale  # the edge cannot reach beyond this
    cols = [_interp(tx * t, t, scale, fields.shape[2]) for tx in range(-(-size[0] // t))]
    cache: dict[tuple[int, int, int], bytes] = {}
    for ty in range(-(-size[1] // t)):
        i0, i1, iy, wy = _interp(ty * t, t, scale, fields.shape[1])
        wy = wy[:, None]
        strip = fields[:, i0:i1]
        lo_row, hi_row = strip.min(axis=1), strip.max(axis=1)
        oy = (ty * t) % period
        for tx, (j0, j1, ix, wx) in enumerate(cols):
            ox = (tx * t) % period
            window = np.s_[oy : oy + t, ox : ox + t]
            # Bilinear samples stay within their nodes' range, so this is exact.
            lo, hi = lo_row[:, j0:j1].min(axis=1), hi_row[:, j0:j1].max(axis=1)
            one_type = hi[1] < -_TYPE_PX or lo[1] > _TYPE_PX
            if hi[0] < -margin or (lo[0] > margin and one_type):
                kind = 0 if hi[0] < -margin else 1 if hi[1] < 0 else 2
                key = (kind, oy, ox) if kind else (0, 0, 0)
                if key not in cache:
                    cache[key] = _encode((background, stroma[window], cellular[window])[kind])
                yield cache[key]
                continue
            # Mixed tile, doing only the blends it needs. Fields are upsampled by gathers:
            # a matmul would be neater, but multi-threaded OpenBLAS spin-waits (3x CPU time).
            block = strip[:, :, j0:j1]
            block = block[:, iy] * (1 - wy) + block[:, iy + 1] * wy
            dist, type_field = block[:, :, ix] * (1 - wx) + block[:, :, ix + 1] * wx
            if one_type:
                tissue = (stroma if hi[1] < 0 else cellular)[window]
            else:
                beta = np.clip(type_field / np.float32(_TYPE_PX) + 0.5, 0, 1)
                a = stroma[window].astype(np.float32)
                tissue = a + (cellular[window] - a) * beta[..., None]
            if lo[0] <= margin:
                dist += wiggle[window] * np.float32(_WIGGLE_PX)
                alpha = np.clip(dist / np.float32(_EDGE_PX * scale) + 0.5, 0, 1)
                tissue = bg + (tissue - bg) * alpha[..., None]
            if tissue.dtype != np.uint8:
                tissue = (tissue + np.float32(0.5)).astype(np.uint8)
            yield _encode(tissue)


def generate_demo_slide(
    path: Path,
    *,
    l0_width: int = 46_000,
    l0_height: int = 32_000,
    tile_size: int = 256,
    mpp: float = 0.25,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write a synthetic H&E-like whole-slide image as a tiled pyramidal JPEG TIFF.

    The layout is OpenSlide's "generic tiled TIFF": one main IFD per level (level 0
    first, each next level half the size, down to a long side <= 1024 px), all tiled
    ``tile_size`` x ``tile_size`` and JPEG (YCbCr 4:2:0, quality 80) compressed, with
    resolution tags that make OpenSlide and tiffslide report ``mpp`` µm/px. Equal
    arguments give byte-identical files.

    Args:
        path: Output file; overwritten if it exists.
        l0_width: Level-0 width in pixels.
        l0_height: Level-0 height in pixels.
        tile_size: Tile edge in pixels; a multiple of 16 (whole JPEG 4:2:0 blocks).
        mpp: Microns per pixel at level 0.
        seed: Seed of the random generator that shapes the tissue and its texture.
        progress: Called as ``progress(done_tiles, total_tiles)`` every few hundred
            tiles and once at the end.
    """
    if tile_size <= 0 or tile_size % 16 or tile_size > _PERIOD:
        msg = f"tile_size must be a positive multiple of 16, at most {_PERIOD}"
        raise ValueError(msg)
    if l0_width <= 0 or l0_height <= 0 or mpp <= 0:
        msg = "l0_width, l0_height and mpp must be positive"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    textures = [_textures(rng)]
    fields = _fields(rng, l0_width, l0_height)
    sizes = [(l0_width, l0_height)]
    while max(sizes[-1]) > _MAX_LEVEL_SIDE:
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
        textures.append(tuple(_halve(a) for a in textures[-1]))
    total = sum(-(-w // tile_size) * -(-h // tile_size) for w, h in sizes)
    done = 0

    def counted(tiles: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal done
        for data in tiles:
            yield data
            done += 1
            if progress is not None and done % _PROGRESS_EVERY == 0:
                progress(done, total)

    res = 10_000.0 / mpp  # pixels per centimetre
    description = (
        f"Generated demo slide: synthetic H&E-like image, no patient data (collab.slides.demo, seed={seed})"
    )
    # Classic TIFF ends at 4 GiB; at well under 1 byte/px that takes > 3 Gpx.
    with tifffile.TiffWriter(path, bigtiff=l0_width * l0_height > 3e9) as tif:
        for k, (w, h) in enumerate(sizes):
            tif.write(
                counted(_level_tiles(fields, textures[k], k, (w, h), tile_size)),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(tile_size, tile_size),
                photometric="rgb",
                compression="jpeg",
                subsampling=(2, 2),
                resolution=(res, res),
                resolutionunit="CENTIMETER",
                subfiletype=1 if k else 0,  # reduced-resolution image, as boxes.tiff
                description=description if k == 0 else None,
                metadata=None,  # no tifffile JSON in ImageDescription
            )
    if progress is not None:
        progress(total, total)
