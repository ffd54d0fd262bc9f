"""Bearer tokens of the HTTP API: made here, kept by the store as hashes, checked per request.

A token is ``ct_`` and 43 URL-safe characters (``secrets.token_urlsafe(32)``: 256 random
bits). The prefix lets a secret scanner, or a person, tell one at a glance. The store keeps
only its SHA-256 (:func:`hash_token`), never the text: a leaked database, or a backup, holds
no token anyone can use, and the text is shown once, when it is issued.

Why no bcrypt or scrypt: those slow a guess at a password a person chose, from a small space.
A token is 256 random bits; no one can guess one however fast the hash, so a fast one is
enough, and it lets every request find its token in one indexed lookup by hash instead of
checking a slow hash against each candidate.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from typing import Final

from storage import ApiToken, Store
from storage.rows import Clock

__all__ = ["PREFIX", "hash_token", "issue", "looks_like_token", "new_token", "verify"]

PREFIX: Final = "ct_"
_BYTES = 32  # random bytes per token: 43 characters of URL-safe base64
_SHAPE = re.compile(r"ct_[A-Za-z0-9_-]{43}")
_DAY = 86400.0


def new_token() -> str:
    """A fresh token's text."""
    return PREFIX + secrets.token_urlsafe(_BYTES)


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's shape (so that anything else costs no lookup)."""
    return _SHAPE.fullmatch(text) is not None


def hash_token(text: str) -> str:
    """The SHA-256 hex digest of ``text``: what the store keeps and looks tokens up by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def issue(
    store: Store,
    user: str,
    *,
    days: float | None,
    label: str = "",
    clock: Clock = time.time,
) -> tuple[str, ApiToken]:
    """A new token for ``user``: its text (to show once, never to store or log) and its record.

    ``days`` is how long it lives (None: until revoked); ``clock`` gives now, and should be
    the store's. ``ValueError`` for a blank ``user`` or a ``days`` that is not above 0.
    """
    user = user.strip()
    if not user:
        raise ValueError("A token needs a user: pass --user NAME.")
    expires_at: float | None = None
    if days is not None:
        if not (days > 0 and math.isfinite(days)):
            raise ValueError(f"A token's lifetime is a number of days above 0, not {days}.")
        expires_at = clock() + days * _DAY
    text = new_token()
    token = await store.add_token(
        user, hash_token(text), label=label.strip(), expires_at=expires_at
    )
    return text, token


async def verify(store: Store, text: str) -> ApiToken | None:
    """The live token ``text`` is, or None: malformed (refused without asking the store),
    unknown, revoked or expired. A hit records its use (at most once a minute)."""
    if not looks_like_token(text):
        return None
    return await store.token_by_hash(hash_token(text))
