"""``collab demo``: seed organisations, cases and generated slides into an empty data dir."""

from __future__ import annotations

import asyncio
import sys

from collab.config import Settings
from collab.slides.demo import generate_demo_slide
from collab.store import Database

ORGANISATIONS = (
    ("Northern Teaching Hospitals NHS Trust", "North Pathology Network"),
    ("Southern Coast NHS Trust", "South Pathology Network"),
)
# (accession, owning organisation index, priority, slide files)
CASES = (
    ("DEMO-24-0101", 0, "urgent", ("demo-breast-he.tiff",)),
    ("DEMO-24-0102", 0, "2ww", ("demo-colon-he.tiff", "demo-breast-he.tiff")),
    ("DEMO-24-0103", 0, "routine", ("demo-colon-he.tiff",)),
    ("DEMO-24-0201", 1, "urgent", ("demo-colon-he.tiff",)),
    ("DEMO-24-0202", 1, "routine", ("demo-breast-he.tiff",)),
)
# (file, level-0 width, height, seed): the first is the size of a real resection slide.
SLIDES = (
    ("demo-breast-he.tiff", 46_000, 32_000, 1),
    ("demo-colon-he.tiff", 24_000, 18_000, 2),
)


def _progress(label: str) -> object:
    def report(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{label}: {100 * done // max(total, 1):3d}%", end="", file=sys.stderr, flush=True)

    return report


async def seed_demo(settings: Settings) -> None:
    """Fill an empty data dir with demo data; a data dir that has cases is left alone."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with Database(settings.database_path) as db:
        if await db.cases():
            print(f"Using the existing data in {settings.data_dir}", file=sys.stderr)
            return
        slide_dir = settings.data_dir / "demo-slides"
        slide_dir.mkdir(exist_ok=True)
        for name, width, height, seed in SLIDES:
            path = slide_dir / name
            if not path.exists():
                partial = path.with_suffix(".partial")
                report = _progress(f"Generating {name} ({width:,} x {height:,} px)")
                await asyncio.to_thread(
                    generate_demo_slide,
                    partial,
                    l0_width=width,
                    l0_height=height,
                    seed=seed,
                    progress=report,  # type: ignore[arg-type]
                )
                partial.rename(path)  # a half-written slide is never registered
                if sys.stderr.isatty():
                    print(file=sys.stderr)
        orgs = [await db.add_org(name, network) for name, network in ORGANISATIONS]
        for accession, org_index, priority, files in CASES:
            case = await db.add_case(accession, orgs[org_index].id, priority)
            for name, width, height, _ in SLIDES:
                if name in files:
                    await db.add_slide(
                        case.id,
                        str((slide_dir / name).resolve()),
                        width=width,
                        height=height,
                        vendor="generic-tiff",
                        stain="H&E",
                    )
    print(
        f"Demo data ready in {settings.data_dir}: {len(ORGANISATIONS)} organisations, {len(CASES)} cases.",
        file=sys.stderr,
    )
