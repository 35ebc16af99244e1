"""The identifier rules of StockSense, each defined once: what a site, device, sensor, record or
user name may be made of.

Each rule comes in three forms: ``*_PATTERN`` for pydantic ``pattern=`` constraints, FastAPI
parameters and JSON Schema; ``*_RE``, compiled for Python's ``re``; and an annotated ``str``
type for models. The two texts differ only in their end anchor. pydantic checks ``pattern=``
with Rust's regex engine and JSON Schema readers use ECMA 262: in both, ``$`` is the end of
the text. In Python's ``re``, ``$`` also matches before a trailing newline, so ``"dev\\n"``
would pass and, once the tag escape strips it, share a series with ``"dev"``; the Python forms
end in ``\\Z`` instead.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field


def _rule(body: str) -> tuple[str, re.Pattern[str]]:
    """``body`` anchored for pydantic and JSON Schema (``^...$``) and for Python (``^...\\Z``)."""
    return f"^{body}$", re.compile(f"^{body}\\Z")


# One level of a canonical topic (site and device in stocksense/v1/{site}/{kind}/{device}/...,
# docs/wire-contract.md), and names kept to the same letters: the edge agent's names, which
# become topic levels, and notification channel names.
SEGMENT_PATTERN, SEGMENT_RE = _rule(r"[A-Za-z0-9_.\-]{1,64}")
# A name that never stands alone as a topic level: sensors and load cells inside payloads,
# vendor device ids (often MAC addresses, hence ':'), and the ids of a seed file and of a
# user's site scope.
NAME_PATTERN, NAME_RE = _rule(r"[A-Za-z0-9_.:\-]{1,64}")
# A record id of the relational stores (SKUs, shelves, RFID zones, lots): a name that may also
# hold '/'.
IDENT_PATTERN, IDENT_RE = _rule(r"[A-Za-z0-9_.:/\-]{1,64}")
# An ident that can travel as one URL path segment: no '/' (it splits the segment) and no
# leading '.' ('.' and '..' alone are resolved away by clients).
PATH_SEGMENT_PATTERN, PATH_SEGMENT_RE = _rule(r"[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]{0,63}")
# A sign-in name: '@' for e-mail-like names, and no ':'.
USER_NAME_PATTERN, USER_NAME_RE = _rule(r"[A-Za-z0-9_.@\-]{1,64}")
# An RFID EPC: 8 to 128 hex digits.
EPC_HEX_PATTERN, EPC_HEX_RE = _rule(r"[0-9A-Fa-f]{8,128}")

Segment = Annotated[str, Field(pattern=SEGMENT_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
UserName = Annotated[str, Field(pattern=USER_NAME_PATTERN)]
EpcHex = Annotated[str, Field(pattern=EPC_HEX_PATTERN)]

# Free text may hold any character but NUL, which PostgreSQL text cannot store: refused on both
# engines alike, so a model answers the same (a validation error, not a database error)
# whichever engine holds the data.
NO_NUL = r"^[^\x00]*$"
