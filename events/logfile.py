"""The streaming, append-only event-log file format (see docs/log-format.md).

A log is what makes a run replayable, so the format is built around three
promises:

* **No silent corruption.** Every frame carries a CRC-32 and every record is
  shape-checked and sequence-checked; the reader yields only the intact prefix
  of a damaged log and says where (byte offset) and why it stopped.
* **Bounded memory.** Frame lengths are checked against a limit *before* any
  allocation, the reader streams in fixed-size chunks, and msgpack decoding is
  bounded by the frame length, so a hostile file cannot make us allocate
  without bound.
* **Byte-identical output.** The same header, records and trailer always give
  the same bytes (no timestamps; dicts are packed in insertion order).

Layout::

    MAGIC (16 bytes) | format version (u32 LE) | H frame | E frame* | X frame

    frame = kind (u8) | body length (u32 LE) | CRC-32 of kind+body (u32 LE) | body

The body is one msgpack object: the header dict (H), one event record (E) or
``[record_count, trailer]`` (X).
"""
from __future__ import annotations

import gc
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

__all__ = [
    "FORMAT_VERSION", "MAGIC", "LogFormatError", "LogWriter", "LogReader",
    "read_log", "encode_record", "iter_frames", "rewrite_records",
]

#: Version of the framing and record layout. Bump it when either changes.
FORMAT_VERSION: int = 1

#: File magic. "\r\n" and "\x1a\n" catch text-mode newline translation and
#: truncation by DOS-era tools, like PNG's signature.
MAGIC: bytes = b"FADUMPSIMLOG\r\n\x1a\n"

KIND_HEADER = b"H"
KIND_EVENT = b"E"
KIND_END = b"X"

_K_H, _K_E, _K_X = KIND_HEADER[0], KIND_EVENT[0], KIND_END[0]
_KIND_NAMES = {_K_H: "header", _K_E: "record", _K_X: "end of log"}

_VERSION = struct.Struct("<I")
_FRAME = struct.Struct("<BII")  # kind, body length, crc32(kind + body)
FRAME_HEADER_SIZE = _FRAME.size  # 9
PREFIX_SIZE = len(MAGIC) + _VERSION.size  # 20: where the header frame starts

# CRC-32 of each kind byte: crc32(body, _CRC_x) == crc32(kind + body) without
# concatenating, so the hot paths never copy a frame just to checksum it.
_CRC_H = zlib.crc32(KIND_HEADER)
_CRC_E = zlib.crc32(KIND_EVENT)
_CRC_X = zlib.crc32(KIND_END)
_CRC_OF_KIND = {_K_H: _CRC_H, _K_E: _CRC_E, _K_X: _CRC_X}

#: Reader chunk size; the reader's buffer never exceeds CHUNK + max_record + 9.
CHUNK = 1 << 20
#: Writer flushes its in-memory buffer to the OS once it holds this many bytes.
_WRITE_FLUSH = 1 << 20

_N_FIELDS = 8


class LogFormatError(Exception):
    """A log that is damaged, not a log at all, or of an unsupported version.

    `offset` is the byte offset where the damaged frame starts (-1 when the
    problem has no position, e.g. a missing file or a foreign version), so a
    user can see how much of a run survived.
    """

    def __init__(self, path: str, offset: int, cause: str) -> None:
        super().__init__(path, offset, cause)  # keeps the error picklable
        self.path = path
        self.offset = offset
        self.cause = cause

    def __str__(self) -> str:
        if self.offset < 0:
            return f"{self.path}: {self.cause}"
        return f"{self.path}: {self.cause} at byte {self.offset}"


def _reject_ext(code: int, data: bytes) -> Any:
    """ext_hook: event payloads never contain msgpack extension types."""
    raise ValueError(f"unexpected msgpack extension type {code}")


def _unpack(body: bytes) -> Any:
    # unpackb bounds every str/bin/array/map length by len(body), so decoding
    # cannot allocate more than a small multiple of the (already limited) frame.
    return msgpack.unpackb(body, ext_hook=_reject_ext)


def _frame(kind: int, body: bytes) -> bytes:
    return _FRAME.pack(kind, len(body), zlib.crc32(body, _CRC_OF_KIND[kind])) + body


def _record_problem(rec: Any) -> str | None:
    """Why `rec` is not a well-formed event record (None if it is)."""
    if type(rec) is not list:
        return f"record is a {type(rec).__name__}, not a list"
    if len(rec) != _N_FIELDS:
        return f"record has {len(rec)} fields, not {_N_FIELDS}"
    for name, value, want in zip(
            ("seq", "time", "src", "dst", "type", "cause", "chan_seq", "payload"),
            rec, (int, int, str, str, str, int, int, dict)):
        if type(value) is not want:
            return f"record field {name} is a {type(value).__name__}, not {want.__name__}"
    return None


def encode_record(record: list) -> bytes:
    """One framed E record, exactly as LogWriter writes it.

    No validation: tools and tests use it to forge logs (bad sequence numbers,
    malformed records) that still carry valid checksums.
    """
    return _frame(_K_E, msgpack.packb(record, use_bin_type=True))


def _encode_header(header: dict) -> bytes:
    if not isinstance(header, dict):
        raise TypeError(f"log header must be a dict, not {type(header).__name__}")
    fv = header.get("format_version", FORMAT_VERSION)
    if fv != FORMAT_VERSION:
        raise ValueError(f"header format_version {fv!r} != FORMAT_VERSION {FORMAT_VERSION}")
    full = {"format_version": FORMAT_VERSION, **header}
    return (MAGIC + _VERSION.pack(FORMAT_VERSION)
            + _frame(_K_H, msgpack.packb(full, use_bin_type=True)))


def _encode_end(count: int, trailer: dict | None) -> bytes:
    return _frame(_K_X, msgpack.packb([count, {} if trailer is None else trailer],
                                      use_bin_type=True))


def _fsync_dir(path: str) -> None:
    """Make a rename durable; best effort (not every filesystem allows it)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LogWriter:
    """Appends event records to ``path + ".partial"``; renames onto `path` at close.

    Readers therefore never see a half-written log at `path`, a crashed run
    leaves its records in the ``.partial`` file, and an existing log at `path`
    is replaced atomically. Records are buffered in memory and framed with
    C-level helpers (struct, zlib.crc32, a reused msgpack.Packer) so the
    simulator's hot loop pays about a microsecond per event.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict) -> None:
        self.path = os.fspath(path)
        self.tmp_path = self.path + ".partial"
        prefix = _encode_header(header)  # before creating any file
        # strict_types: a tuple (or an int/str subclass) would come back from the
        # log as something else and break replay, so refuse it here instead.
        self._pack = msgpack.Packer(use_bin_type=True, strict_types=True).pack
        self._file = open(self.tmp_path, "wb")
        self._buf = bytearray(prefix)
        self._next_seq = 1
        self._closed = False

    @property
    def count(self) -> int:
        """Number of records appended so far."""
        return self._next_seq - 1

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, record: list) -> None:
        """Frame and buffer one delivered event record (RECORD_FIELDS order)."""
        if self._closed:
            raise ValueError(f"{self.path}: log writer is closed")
        if (type(record) is not list or len(record) != _N_FIELDS
                or type(record[0]) is not int or record[0] != self._next_seq
                or type(record[1]) is not int or type(record[2]) is not str
                or type(record[3]) is not str or type(record[4]) is not str
                or type(record[5]) is not int or type(record[6]) is not int
                or type(record[7]) is not dict):
            self._reject(record)
        body = self._pack(record)  # raises before anything is buffered
        buf = self._buf
        buf += _FRAME.pack(_K_E, len(body), zlib.crc32(body, _CRC_E))
        buf += body
        self._next_seq += 1
        if len(buf) >= _WRITE_FLUSH:
            self._file.write(buf)
            buf.clear()

    def _reject(self, record: Any) -> None:
        problem = _record_problem(record)
        if problem is None:
            problem = f"record seq {record[0]} is out of sequence (expected {self._next_seq})"
        raise ValueError(f"{self.path}: {problem}")

    def close(self, trailer: dict | None = None) -> None:
        """Finish a run: END frame, flush, fsync, atomic rename onto `path`."""
        if self._closed:
            raise ValueError(f"{self.path}: log writer is already closed")
        self._finish(_encode_end(self.count, trailer))

    def abort(self, trailer: dict | None = None) -> None:
        """Finish a run that failed; the log stays replayable up to the failure.

        Same as close() (the records and an END frame are written), but never
        fails because of an unserialisable trailer, and does nothing if the
        writer is already closed, so it is safe in error paths.
        """
        if self._closed:
            return
        try:
            end = _encode_end(self.count, trailer)
        except (TypeError, ValueError, OverflowError):
            end = _encode_end(self.count, {"error": repr(trailer)})
        self._finish(end)

    def _finish(self, end: bytes) -> None:
        self._closed = True
        f = self._file
        try:
            self._buf += end
            f.write(self._buf)
            self._buf.clear()
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        os.replace(self.tmp_path, self.path)
        _fsync_dir(self.path)

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort({"error": repr(exc)})


def _check_prefix(path: str, head: bytes) -> None:
    """Magic and format version: refuse a foreign file or another version by name."""
    if not head:
        raise LogFormatError(path, -1, "empty file, not a fadumpsim event log")
    if head[:len(MAGIC)] != MAGIC[:len(head)]:
        raise LogFormatError(path, -1, "not a fadumpsim event log")
    if len(head) < PREFIX_SIZE:
        raise LogFormatError(path, 0, "truncated file header")
    (version,) = _VERSION.unpack_from(head, len(MAGIC))
    if version != FORMAT_VERSION:
        raise LogFormatError(
            path, -1, f"log format version {version} is not supported by this "
                      f"fadumpsim (reads version {FORMAT_VERSION})")


def _read_prefix(path: str, f: Any, max_record: int) -> tuple[dict, bytes]:
    """Validate magic, version and header frame; return (header, their raw bytes)."""
    head = f.read(PREFIX_SIZE + FRAME_HEADER_SIZE)
    _check_prefix(path, head)
    at = PREFIX_SIZE
    if len(head) < PREFIX_SIZE + FRAME_HEADER_SIZE:
        raise LogFormatError(path, at, "truncated header")
    kind, n, crc = _FRAME.unpack_from(head, at)
    if kind != _K_H:
        raise LogFormatError(path, at, "first frame is not a header")
    if n > max_record:
        raise LogFormatError(path, at, f"header length {n} exceeds limit")
    body = f.read(n)
    if len(body) < n:
        raise LogFormatError(path, at, "truncated header")
    if zlib.crc32(body, _CRC_H) != crc:
        raise LogFormatError(path, at, "header checksum mismatch")
    try:
        header = _unpack(body)
    except Exception:
        raise LogFormatError(path, at, "undecodable header") from None
    if type(header) is not dict:
        raise LogFormatError(path, at, "header is not a map")
    if header.get("format_version") != FORMAT_VERSION:
        raise LogFormatError(
            path, at, f"header format_version {header.get('format_version')!r} "
                      f"does not match file format version {FORMAT_VERSION}")
    return header, head + body


def _open(path: str) -> Any:
    try:
        return open(path, "rb")
    except OSError as e:
        raise LogFormatError(path, -1, f"cannot open log ({e.strerror or e})") from None


def _decode_run(buf: bytes, pos: int, expected: int, max_record: int,
                out: list) -> tuple[int, int, str | None]:
    """Decode the run of complete E frames at buf[pos:] into `out` (the hot loop).

    Returns (pos, next expected seq, damage cause or None). With None, `pos` is
    at a frame that is not an event or that is not complete in `buf`.
    """
    blen = len(buf)
    last = blen - FRAME_HEADER_SIZE
    unpack_from = _FRAME.unpack_from
    crc32 = zlib.crc32
    unpackb = msgpack.unpackb
    reject = _reject_ext
    append = out.append
    crc_e = _CRC_E
    while pos <= last:
        kind, n, crc = unpack_from(buf, pos)
        if kind != 69:  # b"E"
            break
        if n > max_record:
            return pos, expected, f"record length {n} exceeds limit"
        start = pos + 9
        end = start + n
        if end > blen:
            break
        body = buf[start:end]
        if crc32(body, crc_e) != crc:
            return pos, expected, "checksum mismatch"
        try:
            rec = unpackb(body, ext_hook=reject)
        except Exception:
            return pos, expected, "undecodable record"
        if type(rec) is not list or len(rec) != 8:
            return pos, expected, f"malformed record ({_record_problem(rec)})"
        seq, time, src, dst, typ, cause, chan_seq, payload = rec
        if not (type(seq) is int and type(time) is int and type(src) is str
                and type(dst) is str and type(typ) is str and type(cause) is int
                and type(chan_seq) is int and type(payload) is dict):
            return pos, expected, f"malformed record ({_record_problem(rec)})"
        if seq != expected:
            return pos, expected, f"record out of sequence (expected seq {expected}, found {seq})"
        append(rec)
        expected += 1
        pos = end
    return pos, expected, None


class LogReader:
    """Streams the records of a log, stopping cleanly at the first damage.

    The constructor validates magic, version and header (and raises
    LogFormatError if any is bad: without them nothing can be replayed).
    Iteration never raises for damage: it yields the intact prefix and then
    sets `error` (or `trailer`, when the log ended properly).
    """

    header: dict
    trailer: dict | None
    error: LogFormatError | None

    def __init__(self, path: str | os.PathLike[str], *,
                 max_record: int = 64 * 1024 * 1024) -> None:
        self.path = os.fspath(path)
        self.max_record = max_record
        self.trailer = None
        self.error = None
        with _open(self.path) as f:
            self.header, self._prefix = _read_prefix(self.path, f, max_record)
        self.data_start = len(self._prefix)

    def records(self) -> list:
        """All intact records (check `error` afterwards).

        The cyclic GC is paused while the list is built: records are acyclic,
        and otherwise every young-generation pass would rescan the growing list
        (that doubles the cost of loading a large log).
        """
        gc_on = gc.isenabled()
        if gc_on:
            gc.disable()
        try:
            return list(self)
        finally:
            if gc_on:
                gc.enable()

    def _damage(self, offset: int, cause: str) -> None:
        self.error = LogFormatError(self.path, offset, cause)

    def __iter__(self) -> Iterator[list]:
        self.trailer = None
        self.error = None
        path = self.path
        max_record = self.max_record
        with open(path, "rb", buffering=0) as f:
            prefix = self._prefix
            if f.read(len(prefix)) != prefix:
                self._damage(0, "log file changed since it was opened")
                return
            base = self.data_start  # file offset of buf[0]
            buf = b""
            pos = 0
            eof = False
            expected = 1
            want = CHUNK
            while True:
                left = len(buf) - pos
                if not eof and left < want:
                    # Keep the unparsed tail and read on: at least a chunk, or
                    # the rest of a big frame (so buf <= CHUNK + max_record + 9).
                    chunk = f.read(max(CHUNK, want - left))
                    if chunk:
                        base += pos
                        buf = buf[pos:] + chunk
                        pos = 0
                    else:
                        eof = True
                out: list = []
                # The decoded records are acyclic, so the cyclic GC has nothing
                # to find in them; pausing it for the batch saves ~40% of the time.
                # It is never left paused across a yield.
                gc_on = gc.isenabled()
                if gc_on:
                    gc.disable()
                try:
                    pos, expected, cause = _decode_run(buf, pos, expected, max_record, out)
                finally:
                    if gc_on:
                        gc.enable()
                yield from out
                del out
                if cause is not None:
                    self._damage(base + pos, cause)
                    return
                blen = len(buf)
                if pos + FRAME_HEADER_SIZE <= blen:
                    kind, n, crc = _FRAME.unpack_from(buf, pos)
                    if kind not in _KIND_NAMES:
                        self._damage(base + pos, f"unknown frame kind 0x{kind:02x}")
                        return
                    if n > max_record:
                        self._damage(base + pos, f"{_KIND_NAMES[kind]} length {n} exceeds limit")
                        return
                    end = pos + FRAME_HEADER_SIZE + n
                    if end <= blen:  # complete non-event frame
                        if kind == _K_H:
                            self._damage(base + pos, "unexpected header frame")
                        else:
                            self._end_frame(f, buf, pos, end, base, crc, expected - 1, eof)
                        return
                    want = FRAME_HEADER_SIZE + n
                else:
                    want = FRAME_HEADER_SIZE
                if eof:  # the frame at pos is incomplete and no more data comes
                    if pos == blen:
                        self._damage(base + pos, "missing end of log (run did not finish)")
                    else:
                        self._damage(base + pos, f"truncated {_KIND_NAMES.get(buf[pos], 'frame')}")
                    return
                if want <= CHUNK:
                    want = CHUNK

    def _end_frame(self, f: Any, buf: bytes, pos: int, end: int, base: int,
                   crc: int, count: int, eof: bool) -> None:
        """Check the END frame at buf[pos:end] and that nothing follows it."""
        body = buf[pos + FRAME_HEADER_SIZE:end]
        if zlib.crc32(body, _CRC_X) != crc:
            return self._damage(base + pos, "checksum mismatch")
        try:
            end_rec = _unpack(body)
        except Exception:
            return self._damage(base + pos, "undecodable end of log")
        if (type(end_rec) is not list or len(end_rec) != 2
                or type(end_rec[0]) is not int or type(end_rec[1]) is not dict):
            return self._damage(base + pos, "malformed end of log")
        if end_rec[0] != count:
            return self._damage(
                base + pos, f"end of log counts {end_rec[0]} records but {count} were read")
        if end < len(buf) or (not eof and f.read(1)):
            return self._damage(base + end, "data after end of log")
        self.trailer = end_rec[1]


def read_log(path: str | os.PathLike[str]
             ) -> tuple[dict, list, dict | None, LogFormatError | None]:
    """(header, intact records, trailer, error) of a log.

    Raises LogFormatError only when the header itself is unusable (missing
    file, foreign file, other format version, damaged header).
    """
    reader = LogReader(path)
    records = reader.records()
    return reader.header, records, reader.trailer, reader.error


def iter_frames(path: str | os.PathLike[str], *, max_record: int = 64 * 1024 * 1024
                ) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, kind, body) of every frame, header frame included.

    Checks magic, version, lengths and checksums (raising LogFormatError at the
    first damage) but does not decode bodies: for tools that inspect or forge
    logs at the byte level. Streaming; stops at end of file.
    """
    path = os.fspath(path)
    with _open(path) as f:
        _check_prefix(path, f.read(PREFIX_SIZE))
        offset = PREFIX_SIZE
        while True:
            fh = f.read(FRAME_HEADER_SIZE)
            if not fh:
                return
            if len(fh) < FRAME_HEADER_SIZE:
                raise LogFormatError(path, offset, "truncated frame")
            kind, n, crc = _FRAME.unpack_from(fh)
            if kind not in _CRC_OF_KIND:
                raise LogFormatError(path, offset, f"unknown frame kind 0x{kind:02x}")
            if n > max_record:
                raise LogFormatError(path, offset, f"{_KIND_NAMES[kind]} length {n} exceeds limit")
            body = f.read(n)
            if len(body) < n:
                raise LogFormatError(path, offset, f"truncated {_KIND_NAMES[kind]}")
            if zlib.crc32(body, _CRC_OF_KIND[kind]) != crc:
                raise LogFormatError(path, offset, "checksum mismatch")
            yield offset, bytes((kind,)), body
            offset += FRAME_HEADER_SIZE + n


def rewrite_records(src_path: str | os.PathLike[str], dst_path: str | os.PathLike[str],
                    transform: Callable[[list], list]) -> None:
    """Copy a complete, intact log applying transform(record) -> record, re-checksummed.

    The header and trailer are copied as they are and records are framed with
    encode_record without validation, so tests can produce logs whose
    checksums are all valid but whose contents were altered (e.g. a payload or
    a seq number) and check that replay or the reader notices.
    """
    reader = LogReader(src_path)
    dst = os.fspath(dst_path)
    tmp = dst + ".partial"
    count = 0
    with open(tmp, "wb") as out:
        out.write(reader._prefix)
        for rec in reader:
            out.write(encode_record(transform(rec)))
            count += 1
        if reader.error is not None:
            out.close()
            os.unlink(tmp)
            raise reader.error
        out.write(_encode_end(count, reader.trailer))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dst)
