"""Page content encoding: every simulated page carries a small identity stamp.

A real dump holds real bytes; the simulator only knows *whose* page it is.  We write the
identity at offset 0 of the page and zero-fill the rest, so that (a) any reader (drgn,
crash, hexdump) can show which allocation a page came from, (b) a test can prove that
the page at address A in the file is the page that was at A in the crashed kernel, and
(c) pages compress to ~100 bytes like mostly-empty real pages.

Stamp layout (little endian)::

    0   10  b"FADUMPSIM\\0"
    10   8  u64 page index within its allocation
    18   1  u8 class code (index in PAGE_CLASSES)
    19   2  u16 tag length N
    21   N  utf-8 tag
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import NamedTuple

from .image import PAGE_CLASSES

MAGIC = b"FADUMPSIM\0"
_HDR = struct.Struct("<10sQBH")
STAMP_HEADER_SIZE = _HDR.size  # 21 (image._STAMP_HEADER mirrors it)
CLASS_CODES: dict[str, int] = {name: i for i, name in enumerate(PAGE_CLASSES)}
MAX_TAG_BYTES = 0xFFFF


class PageStamp(NamedTuple):
    tag: str
    index: int
    klass: str


@lru_cache(maxsize=8)
def zero_page(page_size: int) -> bytes:
    """The cached all-zero page (also the zero filler of stamped pages)."""
    return bytes(page_size)


@lru_cache(maxsize=4096)
def _encoded_tag(tag: str) -> bytes:
    raw = tag.encode("utf-8")
    if len(raw) > MAX_TAG_BYTES:
        raise ValueError(f"tag too long ({len(raw)} bytes)")
    return raw


def stamp_bytes(tag: str, index: int, klass: str = "kernel") -> bytes:
    """Just the stamp (no filler); b"" for the all-zero page (tag "")."""
    if not tag:
        return b""
    raw = _encoded_tag(tag)
    return _HDR.pack(MAGIC, index & 0xFFFFFFFFFFFFFFFF, CLASS_CODES[klass], len(raw)) + raw


def page_bytes(tag: str, index: int, page_size: int, klass: str = "kernel") -> bytes:
    """Full page content for identity (tag, index); tag "" gives the zero page."""
    stamp = stamp_bytes(tag, index, klass)
    if not stamp:
        return zero_page(page_size)
    if len(stamp) > page_size:
        raise ValueError(f"stamp of {len(stamp)} bytes does not fit a {page_size}-byte page")
    return stamp + zero_page(page_size)[len(stamp):]


def decode_stamp(data: bytes) -> PageStamp | None:
    """Identity and class of a page (or of its first bytes); None when it has no stamp.

    Only the prefix is inspected, so callers may pass the first ~100 bytes of a page.
    An unstamped page is either all-zero (tag "") or foreign content; use
    :func:`is_zero` on the full page to tell them apart.
    """
    if len(data) < STAMP_HEADER_SIZE or not data.startswith(MAGIC):
        return None
    _, index, code, n = _HDR.unpack_from(data)
    raw = data[STAMP_HEADER_SIZE:STAMP_HEADER_SIZE + n]
    if len(raw) != n or code >= len(PAGE_CLASSES):
        return None
    try:
        tag = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return PageStamp(tag, index, PAGE_CLASSES[code])


def decode_page(data: bytes) -> tuple[str, int] | None:
    """(tag, index) of a stamped page; None for an all-zero (or unstamped) page."""
    st = decode_stamp(data)
    return None if st is None else (st.tag, st.index)


def is_zero(data: bytes) -> bool:
    """True when every byte is zero (makedumpfile's is_zero_page)."""
    return data == zero_page(len(data))
