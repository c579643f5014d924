"""Finding slides in a PACS: QIDO-RS searches by accession number or patient ID for the VL Whole
Slide Microscopy series (modality SM) of the matching studies, and a small overview picture of
each from its pyramid. Blocking (HTTP): callers run these on a worker thread.

Only references are ever kept by the caller (the study and series UIDs): a series is never
downloaded whole, and the overview is read from its smallest pyramid level.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from collab.integrations import PacsEndpoint
from collab.slides.cache import SizedLRU
from collab.slides.dicom_checks import reason
from collab.slides.dicomweb import DicomWebRef, client, open_dicomweb
from collab.slides.reader import SlideError

MAX_STUDIES = 50  # per search: a query that matches more is too broad to choose from
THUMBNAIL_PX = 256
# A pyramid whose smallest level is larger than this has no overview worth its frames.
MAX_OVERVIEW_LEVEL_PX = 8192
_STUDY_FIELDS = ["AccessionNumber", "PatientID", "PatientName", "StudyDate", "StudyDescription"]
_SERIES_FIELDS = ["SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances"]


@dataclass(frozen=True)
class PacsSeries:
    """A whole-slide series as the search lists it (patient details: identifiable)."""

    study: str
    series: str
    accession: str
    patient_id: str
    patient_name: str
    study_date: str  # YYYY-MM-DD, or ""
    description: str  # the series', else the study's
    instances: int | None


def search_series(endpoint: PacsEndpoint, query: str) -> list[PacsSeries]:
    """Whole-slide series of the studies whose accession number or patient ID is ``query``
    (exactly, as the PACS matches it). SlideError naming the PACS if it cannot answer."""
    query = query.strip()
    if not query or len(query) > 64 or "*" in query or "?" in query or "\\" in query:
        raise ValueError("Give an accession number or a patient ID (no wildcards).")
    with client(endpoint.url, endpoint) as web:
        try:
            studies: dict[str, dict[str, Any]] = {}
            for key in ("AccessionNumber", "PatientID"):
                found = web.search_for_studies(
                    search_filters={key: query}, fields=_STUDY_FIELDS, limit=MAX_STUDIES + 1
                )
                for study in found:
                    studies.setdefault(_text(study, "0020000D"), study)
            if len(studies) > MAX_STUDIES:
                raise ValueError(
                    f"More than {MAX_STUDIES} studies match: search by accession number instead."
                )
            hits = []
            for uid, study in studies.items():
                for series in web.search_for_series(
                    uid, search_filters={"Modality": "SM"}, fields=_SERIES_FIELDS
                ):  # fmt: skip
                    hits.append(_series(study, series))
        except (ValueError, SlideError):
            raise
        except Exception as exc:  # requests and dicomweb-client raise their own kinds
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):  # trying again will not help: its settings must change
                raise SlideError(
                    f"{_named(endpoint)} refused collab's sign-in ({reason(exc)}): an administrator "
                    "must check the credentials in its settings"
                ) from None
            raise SlideError(
                f"{_named(endpoint)} did not answer: {reason(exc)}. Try again in a moment"
            ) from None
    return sorted(hits, key=lambda h: (h.study_date, h.accession, h.description), reverse=True)


def thumbnail_jpeg(endpoint: PacsEndpoint, study: str, series: str) -> bytes:
    """A JPEG overview of the series' tissue, at most THUMBNAIL_PX a side, read from its
    smallest pyramid level (never its label or macro image: those may carry patient details),
    decoded as its tiles are."""
    from PIL import Image

    reader = open_dicomweb(DicomWebRef(endpoint.url, study, series, endpoint), SizedLRU(32 << 20))
    try:
        # The smallest level at least a thumbnail wide (else the largest there is): few frames.
        levels = sorted(enumerate(reader.levels), key=lambda item: item[1].width)
        index, level = next(
            ((i, lv) for i, lv in levels if max(lv.width, lv.height) >= THUMBNAIL_PX), levels[-1]
        )
        if max(level.width, level.height) > MAX_OVERVIEW_LEVEL_PX:
            raise SlideError(f"the series in {endpoint.name} has no level small enough for an overview")
        picture = Image.fromarray(reader.read_region(index, 0, 0, level.width, level.height))
    finally:
        reader.close()
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    out = io.BytesIO()
    picture.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def _named(endpoint: PacsEndpoint) -> str:
    return f"the PACS {endpoint.name} ({endpoint.server})"


def _series(study: dict[str, Any], series: dict[str, Any]) -> PacsSeries:
    date = _text(study, "00080020")
    instances = _text(series, "00201209")
    return PacsSeries(
        study=_text(study, "0020000D"),
        series=_text(series, "0020000E"),
        accession=_text(study, "00080050"),
        patient_id=_text(study, "00100020"),
        patient_name=_person(study, "00100010"),
        study_date=f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else "",
        description=_text(series, "0008103E") or _text(study, "00081030"),
        instances=int(instances) if instances.isdigit() else None,
    )


def _text(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _person(item: dict[str, Any], tag: str) -> str:
    """A DICOM JSON person name ("Family^Given") as people write it: "Given Family"."""
    values = item.get(tag, {}).get("Value") or [{}]
    first = values[0]
    raw = first.get("Alphabetic", "") if isinstance(first, dict) else str(first)
    family, _, given = raw.partition("^")
    return " ".join(part for part in (given.replace("^", " ").strip(), family.strip()) if part)
