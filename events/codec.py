"""Compact encoding of event records and headers for log format 2 (docs/log-format.md).

A record goes on disk as one msgpack array::

    [dstep, src, dst, type, dcause, chan_seq, *payload]

* ``dstep`` is the change of the time step: (time - previous time) - (previous
  time - the time before), as a signed 64-bit int (0 when events are evenly
  spaced); ``dcause`` is ``seq - cause`` modulo 2**64 (1 for "caused by the
  previous delivery");
* ``src``, ``dst`` and ``type`` are names: an int is an index into the log's name
  table, a string is a new name appended to it. The table starts with
  `PRESET_NAMES` (every simulator event type, then the simulator's actors);
* a payload of one of the simulator's own event types (events/types.py) is its field
  values in declaration order (no keys); any other payload is one map;
* when the record would be at least `COMPRESS_MIN` bytes, its payload is replaced
  by one msgpack ext 1 holding it deflated in the log's one deflate stream (which
  starts with the header, so a payload may refer back to the scenario or to
  earlier payloads); inside it, lists of >= 8 unsigned ints (registers, address
  lists) are ext 3, their deltas. A known type's payload that does not have
  exactly its declared keys is stored as ext 2 (a packed map).

``seq`` itself is not stored: the frame checksum covers it (see logfile.py). The
digest of everything a decoder relies on (the field orders, the type versions, the
preset names and dictionary) is `SCHEMA_DIGEST`, recorded in every log header.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from itertools import accumulate, chain, compress, repeat
from operator import and_, is_
from typing import Any

import msgpack

from fadumpsim.events import types

__all__ = ["SCHEMA_DIGEST", "WIRE_FIELDS", "PRESET_NAMES", "RecordEncoder", "RecordDecoder",
           "CodecError", "Deflater", "Inflater", "check_depth", "MAX_DEPTH", "MAX_CONTAINER",
           "MAX_NAMES", "COMPRESS_MIN"]

#: type -> payload field order for the types stored positionally.
WIRE_FIELDS: dict[str, tuple[str, ...]] = types.wire_schema()

#: Deepest nesting of arrays/maps a decoded payload, header or trailer may have.
MAX_DEPTH = 32
#: Most elements one msgpack array or map may declare (msgpack max_array_len/max_map_len).
MAX_CONTAINER = 1 << 20
#: Most distinct src/dst/type names one log may define.
MAX_NAMES = 1 << 16
#: Record bodies at least this long have their payload deflated.
COMPRESS_MIN = 32
_MASK = (1 << 64) - 1
_SIGN = 1 << 63
_SYNC = b"\x00\x00\xff\xff"  # what every Z_SYNC_FLUSH ends with; not stored

#: The name table every log starts with: event types, then the simulator's actors.
PRESET_NAMES: tuple[str, ...] = tuple(WIRE_FIELDS) + (
    "sim", "firmware", "kernel", "capture", "hotplug")

_WORDS = (
    # payload keys and strings the simulator's nested payloads use over and over
    "lmb_size lmbs rma_size page_size cpus nodes cmdline fadump=on supported cpu_state_size "
    "hpte_size kernel_dump extents blobs version status sections type request error source "
    "length dumped destination FADMPINF magic elfcorehdr crashing_cpu regs online ranges "
    "generation time kernel:image kernel:workload kernel:paca kernel:memmap0 reserved rtas "
    "user:workload cache:workload fadump:area free user cache kernel cpu msg "
    # log header keys and the scenario format's keys (docs/scenario-format.md)
    "simulator_version scenario seed strategy strategy_params event_schema format_version "
    "fifo random pct name description workload script actor run after expect dump registered "
    "saved none invalid kernel_pages_lost user_pages_lost memtotal_mb log_contains log_lacks "
    "exit_codes violations machine memory max_memory unassigned profile udev_reload "
    "hotplug_lock revert dlpar faults inject kdump kdump-service crash save capture firmware "
    "hotplug sim dump-armed no-crash 600M 1G 2G 256M"
).split() + [
    # commands and kernel messages of the simulated system
    "echo 1 > /sys/kernel/fadump_registered", "echo 0 > /sys/kernel/fadump_registered",
    "cat /sys/kernel/fadump_registered", "cat /sys/kernel/fadump_enabled",
    "echo 1 > /sys/kernel/fadump_release_mem", "cat /sys/kernel/debug/powerpc/fadump_region",
    "echo c > /proc/sysrq-trigger", "makedumpfile -c -d 31 /proc/vmcore /var/crash/vmcore",
    "makedumpfile -d 31 /proc/vmcore /var/crash/vmcore", "cp /proc/vmcore /var/crash/vmcore",
    "free -m", "drmgr -c mem -r -q ", "drmgr -c mem -a -q ", "drmgr -c mem -r -s 0x",
    "Fatal exception", "firmware-assisted kernel dump registration is successful",
    "Firmware-assisted dump is active.", "Dump taken by platform is not valid",
    "Failed to init zone movable area for firmware-assisted dump,",
    "Initialized 0x", " bytes as zone movable area at ",
]
_ZDICT: bytes = (
    b"".join(msgpack.packb(w) for w in _WORDS)
    + msgpack.packb("              total        used        free      shared  buff/cache"
                    "   available\nMem:           ")
    + b"\nSwap:             0           0           0\n"
)
_U64S = 3  # ext code of a packed list of u64 (inside deflated payloads only)
_PACKED_MIN = 8  # int lists at least this long are packed as u64 LE


def _digest() -> str:
    h = hashlib.sha256(b"fadumpsim log codec 2\0")
    for name, fields in WIRE_FIELDS.items():
        h.update(f"{name}:{types.get(name).version}:{','.join(fields)};".encode())
    h.update("\0".join(PRESET_NAMES).encode() + b"\0" + _ZDICT + str(COMPRESS_MIN).encode())
    return h.hexdigest()[:16]


#: What a log header records as ``event_schema``: the codec and schema this build speaks.
SCHEMA_DIGEST: str = _digest()


class CodecError(ValueError):
    """A record body that does not decode to a well-formed record (the reason)."""


class Deflater:
    """The writer's side of a log's deflate stream (header first, then big payloads).

    Each `chunk` is flushed with Z_SYNC_FLUSH so it decodes on its own given the
    chunks before it; the flush's fixed ``00 00 ff ff`` tail is dropped (the
    reader puts it back), as permessage-deflate does (RFC 7692).
    """

    def __init__(self) -> None:
        self._c = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)

    def copy(self) -> "Deflater":
        d = Deflater.__new__(Deflater)
        d._c = self._c.copy()
        return d

    def chunk(self, data: bytes) -> bytes:
        out = self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(_SYNC)
        return out[:-4]


class Inflater:
    """The reader's side: `chunk(data, limit)` refuses output over `limit` bytes
    before allocating it (a small chunk cannot expand without bound)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(-15, _ZDICT)

    def copy(self) -> "Inflater":
        i = Inflater.__new__(Inflater)
        i._d = self._d.copy()
        return i

    def chunk(self, data: bytes, limit: int) -> bytes:
        d = self._d
        try:
            out = d.decompress(bytes(data) + _SYNC, limit)
        except zlib.error as e:
            raise CodecError(f"bad deflate data ({e})") from None
        if d.unconsumed_tail:
            raise CodecError(f"deflated data expands beyond {limit} bytes")
        if d.eof:
            raise CodecError("bad deflate data (stream ended)")
        return out


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise CodecError if arrays/maps nest deeper than `limit` (the value itself is 1)."""
    if (type(value) is list or type(value) is dict) and not _depth_ok(value, limit):
        raise CodecError(f"nesting deeper than {limit}")


def _depth_ok(v: list | dict, left: int) -> bool:
    """Level by level, with C-level passes: no recursion, no Python work per leaf."""
    dicts: list = [v] if type(v) is dict else []
    lists: list = [] if dicts else [v]
    for _ in range(left):
        items = list(chain(chain.from_iterable(map(dict.values, dicts)),
                           chain.from_iterable(lists)))
        kinds = list(map(type, items))
        dicts = list(compress(items, map(is_, kinds, repeat(dict))))
        lists = list(compress(items, map(is_, kinds, repeat(list))))
        if not dicts and not lists:
            return True
    return False


class RecordEncoder:
    """Turns records (RECORD_FIELDS order) into wire bodies; one per log, in order."""

    def __init__(self, stream: Deflater) -> None:
        # strict_types: a tuple (or an int/str subclass) would come back from the
        # log as something else and break replay, so refuse it here instead.
        self._pack = msgpack.Packer(use_bin_type=True, strict_types=True).pack
        self._names: dict[str, int] = {n: i for i, n in enumerate(PRESET_NAMES)}
        self._stream = stream
        self._time = 0
        self._step = 0

    def body(self, rec: list) -> bytes:
        """Wire body of `rec`. Validates nothing that packing does not refuse, so tools
        can forge records; a record that fails to pack leaves the encoder unchanged."""
        seq, time, src, dst, typ, cause, chan_seq, payload = rec
        names = self._names
        si, di, ti = names.get(src), names.get(dst), names.get(typ)
        step = (time - self._time) & _MASK
        ds = step - self._step
        if not -_SIGN <= ds < _SIGN:
            ds = ((ds + _SIGN) & _MASK) - _SIGN
        fields = WIRE_FIELDS.get(typ)
        out = None
        if si is not None and di is not None and ti is not None:
            if fields is None:
                out = self._pack([ds, si, di, ti, (seq - cause) & _MASK, chan_seq, payload])
            elif type(payload) is dict and len(payload) == len(fields):
                try:
                    out = self._pack([ds, si, di, ti, (seq - cause) & _MASK, chan_seq,
                                      *[payload[f] for f in fields]])
                except KeyError:
                    pass
            if out is not None and len(out) >= COMPRESS_MIN:
                out = None
        if out is None:
            out = self._general(ds, src, dst, typ, (seq - cause) & _MASK, chan_seq, payload, fields)
        self._time = time
        self._step = step
        return out

    def _general(self, ds: int, src: str, dst: str, typ: str, dc: int, chan_seq: int,
                 payload: Any, fields: tuple[str, ...] | None) -> bytes:
        """New names, map-form payloads of known types and deflated payloads."""
        names = self._names
        new: list[str] = []
        wire_names: list[str | int] = []
        for s in (src, dst, typ):
            i = names.get(s)
            if i is None:
                wire_names.append(s)
                if len(names) < MAX_NAMES:
                    names[s] = len(names)
                    new.append(s)
            else:
                wire_names.append(i)
        head = [ds, *wire_names, dc, chan_seq]
        pack = self._pack
        try:
            check_depth(payload)  # what the reader would refuse is never written
            if fields is not None and type(payload) is dict and len(payload) == len(fields) \
                    and all(f in payload for f in fields):
                value: Any = [payload[f] for f in fields]
                tail = value
            elif fields is not None:
                value = None
                tail = [msgpack.ExtType(2, pack(payload))]
            else:
                value = payload
                tail = [payload]
            out = pack(head + tail)
            if value is not None and len(out) >= COMPRESS_MIN:
                inner = pack(_pack_u64_lists(value))
                out = pack(head + [msgpack.ExtType(1, self._stream.chunk(inner))])
        except BaseException:
            for s in new:
                del names[s]
            raise
        return out


def _pack_u64_lists(v: Any) -> Any:
    """Copy of container v with every list of >= _PACKED_MIN u64 ints as ext 3 (their
    deltas): registers and address lists deflate far better that way."""
    if type(v) is dict:
        return {k: (_pack_u64_lists(x) if type(x) is list or type(x) is dict else x)
                for k, x in v.items()}
    if len(v) >= _PACKED_MIN and all(type(x) is int and 0 <= x < 1 << 64 for x in v):
        deltas = [(b - a) & _MASK for a, b in zip(v, v[1:])]
        return msgpack.ExtType(_U64S, msgpack.packb(
            [v[0]] + [d - (1 << 64) if d >= _SIGN else d for d in deltas]))
    return [(_pack_u64_lists(x) if type(x) is list or type(x) is dict else x) for x in v]


def _inner_hook(code: int, data: bytes) -> Any:
    if code != _U64S:
        raise ValueError(f"unexpected msgpack extension type {code}")
    d = msgpack.unpackb(data, max_array_len=MAX_CONTAINER, max_map_len=0)
    if type(d) is not list or len(d) < _PACKED_MIN or set(map(type, d)) != {int}:
        raise ValueError("bad u64 list")
    vals = list(accumulate(d))  # C-speed; exact unless a step wrapped around 2**64
    if min(vals) < 0 or max(vals) > _MASK:
        vals = list(map(and_, vals, repeat(_MASK)))
    return vals


#: bytes that can start a msgpack array or map; fewer than MAX_DEPTH of them in a
#: body bound its nesting without walking it
_CONTAINER_BYTES = bytes(range(0x80, 0xA0)) + b"\xdc\xdd\xde\xdf"


def _may_be_deep(raw: bytes) -> bool:
    return len(raw) - len(raw.translate(None, _CONTAINER_BYTES)) >= MAX_DEPTH


class _Ext:
    """A code-1/2 msgpack ext seen while decoding one body (anything else is refused)."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes) -> None:
        self.code = code
        self.data = data


class RecordDecoder:
    """Inverse of RecordEncoder for one log read front to back."""

    def __init__(self, stream: Inflater, max_record: int) -> None:
        self.names: list[str] = list(PRESET_NAMES)
        self.time = 0
        self.step = 0
        self.stream = stream
        self.max_record = max_record
        self.inflated = 0  # bytes inflated since the reader last reset it
        self.exts: list[_Ext] = []
        exts = self.exts

        def hook(code: int, data: bytes) -> Any:
            if code not in (1, 2):
                raise ValueError(f"unexpected msgpack extension type {code}")
            x = _Ext(code, data)
            exts.append(x)
            return x

        self.hook = hook

    def unpack(self, body: Any) -> Any:
        """msgpack decode with the format's limits (ext 1/2 only, bounded lengths)."""
        return msgpack.unpackb(body, ext_hook=self.hook, max_array_len=MAX_CONTAINER,
                               max_map_len=MAX_CONTAINER)

    def _name(self, v: Any, what: str) -> str:
        names = self.names
        if type(v) is int and 0 <= v < len(names):
            return names[v]
        if type(v) is str:
            if len(names) < MAX_NAMES:
                names.append(v)
            return v
        raise CodecError(f"record field {what} is not a name or a known name index ({v!r})")

    def ext_payload(self, x: "_Ext", typ: str, fields: tuple[str, ...] | None) -> dict:
        """The payload held by the record's one ext 1 (deflated) or ext 2 (map) element,
        inflated in stream order and checked (map, field count, depth)."""
        if x.code == 2 and fields is None:
            raise CodecError("map-form payload of a type without positional fields")
        raw = self.stream.chunk(x.data, self.max_record) if x.code == 1 else x.data
        self.inflated += len(raw)
        return self.payload_from_raw(raw, typ, fields, x.code)

    def payload_from_raw(self, raw: bytes, typ: str, fields: tuple[str, ...] | None,
                         code: int = 1) -> dict:
        """The second half of `ext_payload`: the payload in `raw` (the inflated bytes of
        an ext 1, or an ext 2's data), checked. The C fast path (events/_cdecode.c)
        inflates by itself and calls this for any payload it is not sure of."""
        exts = self.exts
        try:
            if code == 1:
                inner = msgpack.unpackb(raw, ext_hook=_inner_hook, max_array_len=MAX_CONTAINER,
                                        max_map_len=MAX_CONTAINER)
            else:
                inner = self.unpack(raw)
        except Exception as e:
            exts.clear()
            raise CodecError(f"undecodable payload ({type(e).__name__})") from None
        if exts:
            exts.clear()
            raise CodecError("misplaced msgpack extension")
        if fields is None or code == 2:
            payload = inner
        elif type(inner) is list and len(inner) == len(fields):
            payload = dict(zip(fields, inner))
        else:
            raise CodecError(f"{typ} payload does not have {len(fields)} fields")
        if type(payload) is not dict:
            raise CodecError(f"payload is a {type(payload).__name__}, not a map")
        if len(raw) > MAX_DEPTH and _may_be_deep(raw):
            check_depth(payload, MAX_DEPTH)
        return payload

    def finish(self, w: Any, seq: int, size: int) -> list:
        """Check and expand one unpacked wire array into record number `seq`."""
        exts = self.exts
        if type(w) is not list or len(w) < 6:
            raise CodecError("record is not an array of at least 6 elements")
        ds, s, d, t, dc, cs = w[0], w[1], w[2], w[3], w[4], w[5]
        if type(ds) is not int or type(dc) is not int or type(cs) is not int \
                or not -_SIGN <= ds < _SIGN or dc < 0 or cs < 0:
            raise CodecError("record time step, cause or chan_seq is not a 64-bit int")
        names = self.names
        src = names[s] if type(s) is int and 0 <= s < len(names) else self._name(s, "src")
        dst = names[d] if type(d) is int and 0 <= d < len(names) else self._name(d, "dst")
        typ = names[t] if type(t) is int and 0 <= t < len(names) else self._name(t, "type")
        fields = WIRE_FIELDS.get(typ)
        exts_seen = bool(exts)
        if exts_seen:
            if len(exts) != 1 or len(w) != 7 or w[6] is not exts[0]:
                raise CodecError("misplaced msgpack extension")
            x = exts[0]
            exts.clear()
            payload = self.ext_payload(x, typ, fields)
        elif fields is None:
            if len(w) != 7:
                raise CodecError("record has no single payload map")
            payload = w[6]
        elif len(w) - 6 == len(fields):
            payload = dict(zip(fields, w[6:])) if fields else {}
        else:
            raise CodecError(f"{typ} payload has {len(w) - 6} fields, not {len(fields)}")
        if not exts_seen:
            if type(payload) is not dict:
                raise CodecError(f"payload is a {type(payload).__name__}, not a map")
            if size > MAX_DEPTH:  # a body of <= 32 bytes cannot nest 33 deep
                check_depth(payload, MAX_DEPTH)
        step = (self.step + ds) & _MASK
        time = (self.time + step) & _MASK
        self.step = step
        self.time = time
        return [seq, time, src, dst, typ, (seq - dc) & _MASK, cs, payload]
