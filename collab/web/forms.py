"""Posted forms: small and URL-encoded, or refused before their body is read.

No form here carries a file, so a multipart body (which would be spooled to disk) or any
other encoding is refused with 415, and a body past the form's limit with 413: from its
Content-Length before a byte of it is read, or as it streams when no length is given.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from starlette.datastructures import FormData
from starlette.formparsers import FormParser, MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from collab.web.errors import error

URLENCODED = "application/x-www-form-urlencoded"
# Sign-in and join, open to anyone: a username and a password of up to 1,000 characters, or a
# code and a display name, each character up to 9 bytes once percent-encoded.
MAX_PUBLIC_FORM_BYTES = 16 * 1024
# Forms of signed-in people: the longest field (meeting notes, an opinion: 20,000 characters)
# takes up to 240,000 bytes percent-encoded.
MAX_FORM_BYTES = 256 * 1024
# JSON posts of a teaching session (a quiz question, an answer's point, the pen): a question
# of 2,000 characters is some 12 KB even with every character escaped.
MAX_JSON_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


async def read_form(request: Request, max_bytes: int) -> FormData | Response:
    """The posted form, or the 4xx to answer with."""
    headers = request.headers
    length = headers.get("content-length")
    if length == "0" or (length is None and "transfer-encoding" not in headers):
        return FormData()  # no body: an empty form (its CSRF check then refuses it)
    if headers.get("content-type", "").partition(";")[0].strip().lower() != URLENCODED:
        return _refused(415, f"Send this form as {URLENCODED}: files and other encodings are refused.")
    if length is not None and not length.isdigit():
        return _refused(400, "Content-Length must be a number of bytes.")
    if length is not None and int(length) > max_bytes:
        return _refused(413, f"This form is too large: at most {max_bytes // 1024} KiB.")
    try:
        return await FormParser(headers, _bounded(request.stream(), max_bytes)).parse()
    except _TooLarge:
        return _refused(413, f"This form is too large: at most {max_bytes // 1024} KiB.")
    except MultiPartException as exc:  # too many fields
        return _refused(400, str(exc))
    except ClientDisconnect:  # nobody is left to read the answer
        return _refused(400, "The form did not arrive whole.")


async def read_body(request: Request, max_bytes: int) -> bytes | Response:
    """The posted body, or a 413 before more than ``max_bytes`` of it is read."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_bytes):
        return _refused(413, f"This request is too large: at most {max_bytes // 1024} KiB.", api=True)
    chunks = []
    try:
        async for chunk in _bounded(request.stream(), max_bytes):
            chunks.append(chunk)
    except _TooLarge:
        return _refused(413, f"This request is too large: at most {max_bytes // 1024} KiB.", api=True)
    except ClientDisconnect:
        return _refused(400, "The request did not arrive whole.", api=True)
    return b"".join(chunks)


async def _bounded(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise _TooLarge
        yield chunk


def _refused(status: int, message: str, *, api: bool = False) -> Response:
    """The rest of the body is not read, so the connection cannot carry another request."""
    response = error(status, message, api=api)
    response.headers["Connection"] = "close"
    return response
