"""Batch decode of a run of small event frames: the reader's fast path (docs/log-format.md).

Decoding one record at a time costs ~60 Python bytecodes and five C calls per event,
most of it interpreter overhead. This module decodes up to `BATCH` consecutive E
frames at once: one short Python loop finds the frames, and everything else (each
frame's CRC-32 over its own body and sequence number, msgpack decoding by one
Unpacker whose object boundaries are checked against the frame boundaries, every
shape, type and range check, the record building) runs as C-level passes over whole
columns (`map`, `zip`, `min`/`max`, `set`).

It handles only the common case and makes no decision about damage: whenever any
check fails for any frame of the batch, `decode_batch` returns `FALLBACK` having
changed nothing, and the caller decodes those frames one by one with the reference
path (logfile._decode_slow), which finds the first bad frame and names the cause. So
the per-record CRC, the damage offset and cause, and every limit are exactly the
reference path's; tests compare the two on damaged logs.

What the batch path accepts (anything else falls back):

* E frames whose length fits the one-byte varint (< 128 bytes, <= max_record);
* bodies that are exactly one msgpack object each, decoded with the same limits as
  the reference path (container lengths, ext types 1 and 2 only via the same hook);
* records whose src, dst and type are known name indices (a new name falls back:
  it changes the name table, a handful of times per log);
* payloads that cannot nest deeper than MAX_DEPTH: a body of <= 32 bytes cannot
  (an ext payload is checked as in the reference path, by RecordDecoder.ext_payload).

Ext payloads (deflated or map form) go through RecordDecoder.ext_payload in stream
order; if one is damaged, the records before it are kept and the damage is reported
at its frame with the reference path's cause.
"""
from __future__ import annotations

import struct
import zlib
from itertools import accumulate, chain, compress, count, repeat
from operator import add, and_, is_, itemgetter, ne, sub
from typing import Any

import msgpack

from fadumpsim.events.codec import (MAX_CONTAINER, MAX_DEPTH, WIRE_FIELDS, CodecError,
                                    RecordDecoder, _Ext)

__all__ = ["BATCH", "FALLBACK", "INFLATED", "decode_batch"]

#: Most frames decoded per batch (and redone one by one when the batch falls back).
BATCH = 512
#: decode_batch's answer when the frames must be decoded one by one.
FALLBACK = "fallback"
#: decode_batch's answer when the inflated-bytes budget ran out (not damage: the
#: caller yields what was decoded and goes on).
INFLATED = "inflate budget"
#: A batch of frames whose payloads were inflated past this many bytes is returned
#: early (the reader's "inflated bytes per batch" limit, docs/log-format.md).
INFLATE_BUDGET = 1 << 20

_MASK = (1 << 64) - 1
_SIGN = 1 << 63
_CRC_E = zlib.crc32(b"E")
_seq_pack = struct.Struct("<Q").pack
_crc_at = struct.Struct("<I").unpack_from
_COLUMNS = tuple(itemgetter(i) for i in range(6))
_tail = itemgetter(slice(6, None))
_last = itemgetter(-1)
_seventh = itemgetter(6)
#: wire array length of each simulator type's positional record (others: 7)
_WIRE_LEN = {typ: 6 + len(f) for typ, f in WIRE_FIELDS.items()}
_NO_FIELDS = ("",)  # stands in for an unknown type's fields; its payload is fixed up after


def decode_batch(buf: bytes, pos: int, expected: int, max_record: int,
                 dec: RecordDecoder, out: list) -> tuple[int, int, str | None, int]:
    """Decode up to BATCH E frames at buf[pos:] into `out`.

    Returns (pos, expected, cause, frames): `frames` is how many frames were
    walked (0: the frame at `pos` is not a small complete E frame, nothing done).
    `cause` is None (all of them decoded), FALLBACK (nothing decoded or changed:
    decode these `frames` frames one by one), a damage cause (the records before
    the frame at the returned `pos` were decoded) or INFLATED (the inflated-bytes
    budget ran out after the record before `pos`).
    """
    blen = len(buf)
    lim = blen - 6  # a frame header (kind, 1-byte length, CRC) fits
    starts: list[int] = []
    bodies: list[bytes] = []
    put_start = starts.append
    put_body = bodies.append
    for _ in range(BATCH):
        if pos > lim:
            break
        n = buf[pos + 1]
        if n > 127 or buf[pos] != 69:  # 2+-byte length, or not b"E"
            break
        end = pos + 6 + n
        put_start(pos)
        put_body(buf[pos + 6:end])
        pos = end
    if pos > blen:  # the last frame is incomplete: leave it to the caller
        pos = starts.pop()
        bodies.pop()
    k = len(starts)
    if k == 0:
        return pos, expected, None, 0
    if max_record < 127 and max(map(len, bodies)) > max_record:
        return starts[0], expected, FALLBACK, k
    # CRC-32 of kind, seq (u64) and body, per frame, against the stored one.
    seqs = range(expected, expected + k)
    computed = zip(map(zlib.crc32, bodies, map(zlib.crc32, map(_seq_pack, seqs), repeat(_CRC_E))))
    if list(computed) != list(map(_crc_at, repeat(buf), map(add, starts, repeat(2)))):
        return starts[0], expected, FALLBACK, k
    ws = _unpack(bodies, dec)
    if ws is None:
        return starts[0], expected, FALLBACK, k
    exts = len(dec.exts)
    dec.exts.clear()
    built = _build(ws, bodies, exts, dec)
    if built is None:
        return starts[0], expected, FALLBACK, k
    heads, typs, payloads, ext_rows = built
    # Stateful part, in record order: inflate ext payloads (the deflate stream).
    m = k
    cause = None
    for i in ext_rows:
        w = ws[i]
        try:
            if len(w) != 7:
                raise CodecError("misplaced msgpack extension")
            payloads[i] = dec.ext_payload(w[6], typs[i], WIRE_FIELDS.get(typs[i]))
        except CodecError as e:
            m, cause = i, f"malformed record ({e})"
            break
        if dec.inflated > INFLATE_BUDGET:
            dec.inflated = 0
            m, cause = i + 1, INFLATED
            break
    if m:
        _commit(heads, typs, payloads, m, expected, dec, out)
    return (starts[m] if m < k else pos), expected + m, cause, k


def _unpack(bodies: list[bytes], dec: RecordDecoder) -> list | None:
    """Each body's one msgpack object, with the reference path's limits; None if
    any body is not exactly one valid object."""
    joined = b"".join(bodies)
    unp = msgpack.Unpacker(None, ext_hook=dec.hook, max_array_len=MAX_CONTAINER,
                           max_map_len=MAX_CONTAINER, max_buffer_size=max(len(joined), 1))
    unp.feed(joined)
    try:
        pairs = list(zip(unp, iter(unp.tell, None)))  # (object, offset after it)
    except Exception:
        dec.exts.clear()
        return None
    if len(pairs) != len(bodies):
        dec.exts.clear()
        return None
    ws, ends = zip(*pairs)
    if list(ends) != list(accumulate(map(len, bodies))):  # an object crossed a frame
        dec.exts.clear()
        return None
    return list(ws)


def _build(ws: list, bodies: list[bytes], exts: int, dec: RecordDecoder) -> Any:
    """Check every record of the batch as the reference path would accept it and
    build (heads, type names, payloads, ext rows); None if any record needs the
    reference path."""
    if set(map(type, ws)) != {list}:
        return None
    lens = set(map(len, ws))
    if min(lens) < 6:
        return None
    if len(lens) == 1:  # one record shape (toy, one type): transpose in one C call
        heads = list(zip(*ws))[:6]
    else:
        heads = [list(map(g, ws)) for g in _COLUMNS]
    ds, s, d, t, dc, cs = heads  # columns ds, src, dst, type, dcause, chan_seq
    if set(map(type, chain(ds, s, d, t, dc, cs))) != {int}:  # a new name is a str
        return None
    nn = len(dec.names)
    if (min(s) < 0 or min(d) < 0 or min(t) < 0 or max(s) >= nn or max(d) >= nn
            or max(t) >= nn or min(dc) < 0 or min(cs) < 0 or min(ds) < -_SIGN
            or max(ds) >= _SIGN):
        return None
    typs = list(map(dec.names.__getitem__, t))
    ext_rows: list[int] = []
    if exts:
        ext_rows = list(compress(count(), map(is_, map(type, map(_last, ws)), repeat(_Ext))))
        if len(ext_rows) != exts:  # an ext nested inside a payload
            return None
    fields = list(map(WIRE_FIELDS.get, typs))
    unknown = fields.count(None)
    if unknown < len(fields) or lens != {7}:
        odd = list(compress(count(), map(ne, map(len, ws), map(_WIRE_LEN.get, typs, repeat(7)))))
        if odd and not set(odd) <= set(ext_rows):
            return None  # wrong number of payload fields
    if max(map(len, bodies)) > MAX_DEPTH:
        deep = compress(count(), map(int.__lt__, repeat(MAX_DEPTH), map(len, bodies)))
        if not set(deep) <= set(ext_rows):
            return None  # might nest too deep: the reference path checks it
    if not unknown:
        payloads = list(map(dict, map(zip, fields, map(_tail, ws))))
    elif unknown == len(fields):
        payloads = list(map(_seventh, ws))
    else:
        payloads = list(map(dict, map(zip, [_NO_FIELDS if f is None else f for f in fields],
                                      map(_tail, ws))))
        for i in compress(count(), map(is_, fields, repeat(None))):
            payloads[i] = ws[i][6]
    if ext_rows:
        for i in ext_rows:
            payloads[i] = {}
    if set(map(type, payloads)) != {dict}:
        return None
    return heads, typs, payloads, ext_rows


def _commit(heads: list, typs: list, payloads: list, m: int, expected: int,
            dec: RecordDecoder, out: list) -> None:
    """Append the first m records and advance the decoder's time state past them."""
    ds, s, d, _, dc, cs = heads
    names = dec.names.__getitem__
    steps = list(accumulate(ds[:m], initial=dec.step))
    times = list(accumulate(steps[1:], initial=dec.time))
    del times[0]
    if min(steps) < 0 or times[-1] > _MASK:  # a step or the clock wrapped around 2**64
        times = list(map(and_, times, repeat(_MASK)))
    seqs = range(expected, expected + m)
    causes = map(sub, seqs, dc)
    if max(dc[:m]) > expected:  # a cause before record 0 wraps around 2**64
        causes = map(and_, causes, repeat(_MASK))
    out.extend(map(list, zip(seqs, times, map(names, s), map(names, d), typs, causes, cs,
                             payloads)))
    dec.step = steps[-1] & _MASK
    dec.time = times[-1]
