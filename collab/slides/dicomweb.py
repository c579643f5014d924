"""Slides that stay in a PACS: a DICOM WSI series read over DICOMweb (QIDO-RS for its
instances, WADO-RS for their metadata and their frames, a block of neighbours a request:
collab.slides.dicom) through wsidicom's DICOMweb client. Nothing is copied: a slide is
registered by its reference, and each tile asks for the frames it needs; the tile and pixel
caches serve it as they serve a file.

A reference is stored where a file slide keeps its path, as text:
``dicomweb+http://pacs.example:8042/dicom-web?study=1.2.3&series=1.2.3.4``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from collab.integrations import Integrations, PacsEndpoint
from collab.slides.cache import SizedLRU
from collab.slides.dicom_checks import reason
from collab.slides.reader import SlideError, SlideReader

if TYPE_CHECKING:  # annotations only: a command-line call need not load numpy
    import numpy as np

PREFIX = "dicomweb+"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 20.0
UID_CHARS = set("0123456789.")


@dataclass(frozen=True)
class DicomWebRef:
    """A series of a study on a DICOMweb server (``url`` is its service root)."""

    url: str
    study: str
    series: str
    # How to reach it (credentials), from the site's settings; never stored with the reference.
    endpoint: PacsEndpoint | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SlideError(f"not a DICOMweb address: {self.url!r} (http or https)")
        for name, uid in (("study", self.study), ("series", self.series)):
            if not uid or len(uid) > 64 or set(uid) - UID_CHARS:
                raise SlideError(f"{name} must be a DICOM UID (digits and dots), not {uid!r}")

    @property
    def server(self) -> str:
        """The PACS as people name it in a message: its host and port."""
        return urlsplit(self.url).netloc

    def text(self) -> str:
        return f"{PREFIX}{self.url.rstrip('/')}?{urlencode({'study': self.study, 'series': self.series})}"


def parse_source(text: str, integrations: Integrations | None = None) -> Path | DicomWebRef:
    """A stored slide source: a file's path, or a DICOMweb reference (with the credentials of
    the configured PACS it points at, if any)."""
    if not text.startswith(PREFIX):
        return Path(text)
    parts = urlsplit(text[len(PREFIX) :])
    query = parse_qs(parts.query)
    url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    endpoint = integrations.pacs_for_url(url) if integrations else None
    return DicomWebRef(url, query.get("study", [""])[0], query.get("series", [""])[0], endpoint)


def open_dicomweb(ref: DicomWebRef, chunk_cache: SizedLRU[np.ndarray]) -> SlideReader:
    """The series as a slide reader; SlideError naming the PACS if it cannot be reached or read.
    The reader closes the client's connections when it is closed (wsidicom's own close does not)."""
    import wsidicom

    from collab.slides.dicom import DicomReader

    web, session = _new_client(ref.url, ref.endpoint)
    try:
        try:
            wsi = wsidicom.WsiDicom.open_web(wsidicom.WsiDicomWebClient(web), ref.study, ref.series)
        except Exception as exc:  # requests, dicomweb-client and wsidicom raise their own kinds
            raise SlideError(f"the PACS at {ref.server} did not give the slide: {reason(exc)}") from None
        source = f"the PACS at {ref.server}"
        return DicomReader(
            Path(ref.series), chunk_cache, wsi=wsi, source=source, on_close=lambda: _close(session)
        )
    except BaseException:
        _close(session)
        raise


@contextlib.contextmanager
def client(url: str, endpoint: PacsEndpoint | None) -> Iterator[Any]:
    """A DICOMweb client for the service at ``url``, signed in as its settings say; its
    connections are closed when the block ends."""
    web, session = _new_client(url, endpoint)
    try:
        yield web
    finally:
        _close(session)


def _new_client(url: str, endpoint: PacsEndpoint | None) -> tuple[Any, Any]:
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    session.hooks["response"].append(_release_refused)
    if endpoint is not None and endpoint.auth == "basic":
        session.auth = (endpoint.username, endpoint.password)
    headers = endpoint.headers() if endpoint is not None else {}
    # A PACS that is down or slow must fail a request within seconds, not after the
    # client's exponential retries: the person is waiting, and the 503 says why.
    web = DICOMwebClient(url, session=session, headers=headers, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    web.set_http_retry_params(retry=False)
    return web, session


def _close(session: Any) -> None:
    """Close every connection of the session now: requests' own close only forgets its pools,
    which close their connections when collected, while a kept error may still hold one."""
    for adapter in session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():  # noqa: SIM118 (a copy, taken under the lock; iterating raises)
            pool = pools.get(key)
            if pool is not None:
                pool.close()
    session.close()


def _release_refused(response: Any, *args: Any, **kwargs: Any) -> None:
    """Read a refusal's body now. Frames are asked for as a stream, and the client raises on
    a refusal without reading it: the error, kept by whoever reports it, would hold the
    connection out of the pool until the garbage collector found it."""
    if response.status_code >= 400:
        _ = response.content


def store_instance(ref: DicomWebRef, data: bytes) -> str:
    """Store a DICOM instance (Part 10 bytes) in the slide's PACS with STOW-RS; its SOP
    Instance UID. SlideError naming the PACS if it refuses or cannot be reached."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(data))
    try:
        with client(ref.url, ref.endpoint) as web:
            web.store_instances(datasets=[dataset])
    except Exception as exc:
        raise SlideError(f"the PACS at {ref.server} did not store it: {reason(exc)}") from None
    return str(dataset.SOPInstanceUID)
