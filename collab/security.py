"""Passwords, tokens and signed cookie values: the cryptography, nothing else."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with the library's defaults (RFC 9106 low-memory profile).
_HASHER = PasswordHasher()

# ASVS 2.1.1: at least 12 characters (a passphrase, not a pattern); no other composition rules.
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    """An argon2id hash of a password (slow on purpose: run it off the event loop)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash still costs one verification."""
    try:
        return _HASHER.verify(password_hash or dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> str:
    """Verifying against this keeps the time of a login for an unknown user the same as for a
    known one. Made on first use, not at import (a command-line call would pay for it): the
    server makes it as it starts, so that no sign-in pays for it either."""
    return _HASHER.hash("collab: no such user")


def new_token() -> str:
    """A random secret for an API token or a session (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_secret(path: Path) -> bytes:
    """The server's signing key, made on first use and readable by its owner only."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key


def sign(secret: bytes, value: str) -> str:
    """``value`` with an HMAC-SHA256 signature appended."""
    mac = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return f"{value}.{mac}"


def unsign(secret: bytes, signed: str) -> str | None:
    """The value if its signature is right, else None."""
    value, _, mac = signed.rpartition(".")
    expected = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return value if value and hmac.compare_digest(mac, expected) else None
