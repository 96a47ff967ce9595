"""The streaming, append-only event-log file format, version 2 (see docs/log-format.md).

A log is what makes a run replayable, so the format is built around four
promises:

* **No silent corruption.** Every frame carries a CRC-32 (an event frame's also
  covers its sequence number, so a lost, repeated or reordered frame is caught
  where it happens); the reader yields only the intact prefix of a damaged log
  and says where (byte offset) and why it stopped.
* **Bounded memory and time.** Frame lengths are checked against a limit before
  any allocation, the reader streams in fixed-size chunks from regular files
  only, and decoding is bounded (msgpack container lengths, nesting depth,
  deflated sizes), so a hostile file cannot make us allocate without bound.
* **Byte-identical output.** The same header, records and trailer always give
  the same bytes (no timestamps; dicts are packed in insertion order).
* **Small.** Records are stored compactly (events/codec.py): about 20 bytes
  plus the payload's values.

Layout::

    MAGIC (16 bytes) | format version (u32 LE) | H frame | E frame* | X frame

    frame = kind (u8) | body length (LEB128 varint) | CRC-32 (u32 LE) | body

Bodies: the header map msgpack-packed then raw-deflated (H), one compact record
(E, events/codec.py) or ``[record_count, trailer]`` (X).
"""
from __future__ import annotations

import errno
import fcntl
import gc
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from fadumpsim.events import batch as _batch
from fadumpsim.events.batch import BATCH, FALLBACK, INFLATED, decode_batch
from fadumpsim.events.codec import (MAX_CONTAINER, MAX_DEPTH, SCHEMA_DIGEST, WIRE_FIELDS,
                                    CodecError, Deflater, Inflater, RecordDecoder,
                                    RecordEncoder, check_depth)

__all__ = [
    "FORMAT_VERSION", "MAGIC", "LogFormatError", "LogBusyError", "LogWriter", "LogReader",
    "read_log", "encode_frame", "iter_frames", "rewrite_records", "SCHEMA_DIGEST",
]

#: Version of the framing and record layout. Bump it when either changes.
FORMAT_VERSION: int = 2

#: File magic. "\r\n" and "\x1a\n" catch text-mode newline translation and
#: truncation by DOS-era tools, like PNG's signature.
MAGIC: bytes = b"FADUMPSIMLOG\r\n\x1a\n"

KIND_HEADER = b"H"
KIND_EVENT = b"E"
KIND_END = b"X"

_K_H, _K_E, _K_X = KIND_HEADER[0], KIND_EVENT[0], KIND_END[0]
_KIND_NAMES = {_K_H: "header", _K_E: "record", _K_X: "end of log"}

_VERSION = struct.Struct("<I")
_CRC = struct.Struct("<I")
_SEQ = struct.Struct("<Q")
_SMALL_FRAME = struct.Struct("<BBI")  # kind, one-byte length, CRC
PREFIX_SIZE = len(MAGIC) + _VERSION.size  # 20: where the header frame starts
MAX_FRAME_HEADER = 10  # kind + 5-byte varint + CRC

# CRC-32 of each kind byte: crc32(body, _CRC_x) == crc32(kind + body) without
# concatenating, so the hot paths never copy a frame just to checksum it.
_CRC_H = zlib.crc32(KIND_HEADER)
_CRC_E = zlib.crc32(KIND_EVENT)
_CRC_X = zlib.crc32(KIND_END)
_CRC_OF_KIND = {_K_H: _CRC_H, _K_E: _CRC_E, _K_X: _CRC_X}

#: Reader chunk size; the reader's buffer never exceeds CHUNK + max_record + 10.
CHUNK = 1 << 20
#: Default limit on one frame's body (and on a deflated payload or header once inflated).
MAX_RECORD = 16 * 1024 * 1024
#: Writer flushes its in-memory buffer to the OS once it holds this many bytes.
_WRITE_FLUSH = 1 << 20

try:  # the optional C fast path (events/_cdecode.c, built by setup.py when gcc is there)
    from fadumpsim.events import _cdecode
except ImportError:
    _cdecode = None
else:
    _cdecode.configure(WIRE_FIELDS, CodecError, INFLATED)

#: Decode with the C fast path when it is built, unless the environment variable
#: FADUMPSIM_PURE_DECODE is set (to anything but "" or "0") when this module is
#: imported. Tests and benchmarks flip it to run the pure-Python path.
USE_C: bool = _cdecode is not None and os.environ.get("FADUMPSIM_PURE_DECODE", "") in ("", "0")

_N_FIELDS = 8
_U64 = 1 << 64
_SIGN = 1 << 63


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: Any, i: int, end: int) -> tuple[int, int]:
    """(value, index after it) of the varint at buf[i:]; value -1 if incomplete,
    -2 if longer than 5 bytes or not in its shortest form."""
    n = shift = 0
    for k in range(5):
        if i + k >= end:
            return -1, i
        b = buf[i + k]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and k > 0:
                return -2, i
            return n, i + k + 1
        shift += 7
    return -2, i


def _event_crc(body: Any, seq: int) -> int:
    return zlib.crc32(body, zlib.crc32(_SEQ.pack(seq & (_U64 - 1)), _CRC_E))


def encode_frame(kind: bytes, body: bytes, seq: int = 0) -> bytes:
    """One frame around `body`, without validation (tools and tests forge logs with it).

    `seq` is the sequence number an E frame's checksum covers.
    """
    k = kind[0]
    crc = _event_crc(body, seq) if k == _K_E else zlib.crc32(body, _CRC_OF_KIND.get(k, zlib.crc32(kind)))
    return kind[:1] + _varint(len(body)) + _CRC.pack(crc) + body


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


class LogBusyError(OSError):
    """Another run holds the lock on this log name (two writers would corrupt it)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EBUSY, f"log is being written by another run "
                                      f"(lock {path}.lock is held)", path)


class LogWriteError(OSError):
    """The host refused a write, fsync or rename of the log (disk full, permissions...)."""


def _refuse_non_regular(path: str) -> None:
    """Only a regular file (or nothing) may be replaced by a log: renaming onto
    /dev/null or a FIFO would replace the device node itself (as root, for everyone)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise LogWriteError(e.errno, e.strerror, path) from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):  # a link itself is replaced
        raise LogWriteError(errno.EEXIST, "not a regular file: refusing to replace it with "
                            "the log", path)


def _unpack(body: Any) -> Any:
    """Decode a header or trailer: no extension types, bounded lengths and depth."""
    obj = msgpack.unpackb(body, ext_hook=_reject_ext, max_array_len=MAX_CONTAINER,
                          max_map_len=MAX_CONTAINER)
    check_depth(obj, MAX_DEPTH)
    return obj


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"unexpected msgpack extension type {code}")


def _record_problem(rec: Any, next_seq: int) -> str | None:
    """Why `rec` cannot be appended as record `next_seq` (None if it can)."""
    if type(rec) is not list:
        return f"record is a {type(rec).__name__}, not a list"
    if len(rec) != _N_FIELDS:
        return f"record has {len(rec)} fields, not {_N_FIELDS}"
    for name, value, want in zip(
            ("seq", "time", "src", "dst", "type", "cause", "chan_seq", "payload"),
            rec, (int, int, str, str, str, int, int, dict)):
        if type(value) is not want:
            return f"record field {name} is a {type(value).__name__}, not {want.__name__}"
    for name, value in (("time", rec[1]), ("cause", rec[5]), ("chan_seq", rec[6])):
        if not 0 <= value < _U64:
            return f"record field {name} {value} is not an unsigned 64-bit int"
    if rec[0] != next_seq:
        return f"record seq {rec[0]} is out of sequence (expected {next_seq})"
    return None


def _encode_header(header: dict, stream: Deflater) -> bytes:
    if not isinstance(header, dict):
        raise TypeError(f"log header must be a dict, not {type(header).__name__}")
    fv = header.get("format_version", FORMAT_VERSION)
    if fv != FORMAT_VERSION:
        raise ValueError(f"header format_version {fv!r} != FORMAT_VERSION {FORMAT_VERSION}")
    es = header.get("event_schema", SCHEMA_DIGEST)
    if es != SCHEMA_DIGEST:
        raise ValueError(f"header event_schema {es!r} != this build's {SCHEMA_DIGEST!r}")
    full = {"format_version": FORMAT_VERSION, "event_schema": SCHEMA_DIGEST, **header}
    body = stream.chunk(msgpack.packb(full, use_bin_type=True, strict_types=True))
    return MAGIC + _VERSION.pack(FORMAT_VERSION) + encode_frame(KIND_HEADER, body)


def _encode_end(count: int, trailer: dict | None) -> bytes:
    return encode_frame(KIND_END, msgpack.packb([count, {} if trailer is None else trailer],
                                                use_bin_type=True, strict_types=True))


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


def _lock(path: str) -> int:
    """Exclusive flock on ``path.lock``; LogBusyError if another writer holds it.

    The lock file is removed at unlock, so after locking we check that the file we
    hold is still the one at that name (a racing unlocker may have removed it).
    """
    lock_path = path + ".lock"
    for _ in range(100):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise LogWriteError(e.errno, f"cannot create log lock ({e.strerror})", lock_path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogBusyError(path) from None
        held = os.fstat(fd)
        try:
            now = os.stat(lock_path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)
    raise LogBusyError(path)


def _unlock(path: str, fd: int) -> None:
    try:
        os.unlink(path + ".lock")
    except OSError:
        pass
    os.close(fd)


def _create_partial(tmp_path: str) -> int:
    """O_EXCL|O_NOFOLLOW create of the .partial file (called with the lock held).

    A `.partial` already there is a crashed run's leftover (nobody holds the lock):
    it is unlinked, never followed or truncated through a symlink.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp_path, flags, 0o644)
    except FileExistsError:
        pass
    except OSError as e:
        raise LogWriteError(e.errno, f"cannot create log ({e.strerror})", tmp_path) from None
    try:
        if stat.S_ISDIR(os.lstat(tmp_path).st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        os.unlink(tmp_path)
        return os.open(tmp_path, flags, 0o644)
    except OSError as e:
        raise LogWriteError(e.errno, f"cannot create log ({e.strerror})", tmp_path) from None


class LogWriter:
    """Appends event records to ``path + ".partial"``; renames onto `path` at close.

    Readers therefore never see a half-written log at `path`, a crashed run
    leaves its records in the ``.partial`` file, and an existing log at `path`
    is replaced atomically. While open, the writer holds an exclusive lock on
    ``path + ".lock"`` (a second writer of the same name gets LogBusyError).
    `durable` logs are fsynced once, at close (with their directory); internal
    re-recordings pass ``durable=False``. Records are buffered in memory, encoded
    by events/codec.py and framed with C-level helpers.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict, *,
                 durable: bool = True) -> None:
        self.path = os.fspath(path)
        self.tmp_path = self.path + ".partial"
        self.durable = durable
        stream = Deflater()
        prefix = _encode_header(header, stream)  # before creating any file
        self._enc = RecordEncoder(stream)
        self._body = self._enc.body
        _refuse_non_regular(self.path)
        self._lock_fd = _lock(self.path)
        try:
            self._fd = _create_partial(self.tmp_path)
        except BaseException:
            _unlock(self.path, self._lock_fd)
            raise
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
        """Encode, frame and buffer one delivered event record (RECORD_FIELDS order)."""
        if self._closed:
            raise ValueError(f"{self.path}: log writer is closed")
        seq = self._next_seq
        if (type(record) is not list or len(record) != _N_FIELDS
                or type(record[0]) is not int or record[0] != seq
                or type(record[1]) is not int or type(record[2]) is not str
                or type(record[3]) is not str or type(record[4]) is not str
                or type(record[5]) is not int or type(record[6]) is not int
                or type(record[7]) is not dict
                or not 0 <= record[1] < _U64 or not 0 <= record[5] < _U64
                or not 0 <= record[6] < _U64):
            raise ValueError(f"{self.path}: {_record_problem(record, seq)}")
        body = self._body(record)  # raises before anything is buffered
        n = len(body)
        crc = zlib.crc32(body, zlib.crc32(_SEQ.pack(seq), _CRC_E))
        buf = self._buf
        if n < 0x80:
            buf += _SMALL_FRAME.pack(69, n, crc)
        else:
            buf += b"E" + _varint(n) + _CRC.pack(crc)
        buf += body
        self._next_seq = seq + 1
        if len(buf) >= _WRITE_FLUSH:
            self._flush()

    def _flush(self) -> None:
        """Hand the buffer to the OS (what survives if the process dies now)."""
        view = memoryview(self._buf)
        try:
            while view:
                k = os.write(self._fd, view)
                view = view[k:]
        except OSError as e:
            raise LogWriteError(e.errno, f"cannot write log ({e.strerror})", self.tmp_path) from None
        finally:
            view.release()
        self._buf.clear()

    def close(self, trailer: dict | None = None) -> None:
        """Finish a run: END frame, flush, fsync if durable, atomic rename onto `path`."""
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
        """Write, (fsync), rename. On a host error the partial file is removed: no
        final file is ever left half-written, and a full disk gets its space back."""
        self._closed = True
        fd = self._fd
        try:
            self._buf += end
            self._flush()
            if self.durable:
                try:
                    os.fsync(fd)
                except OSError as e:
                    raise LogWriteError(e.errno, f"cannot fsync log ({e.strerror})",
                                        self.tmp_path) from None
            os.close(fd)
            fd = -1
            _refuse_non_regular(self.path)  # again: it may have appeared while we ran
            try:
                os.replace(self.tmp_path, self.path)
            except OSError as e:
                raise LogWriteError(e.errno, f"cannot rename log into place ({e.strerror})",
                                    self.path) from None
            if self.durable:
                _fsync_dir(self.path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(self.tmp_path)
            except OSError:
                pass
            raise
        finally:
            _unlock(self.path, self._lock_fd)

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


def _read_prefix(path: str, f: Any, max_record: int) -> tuple[dict, bytes, Inflater]:
    """Validate magic, version and header frame; return (header, their raw bytes,
    the deflate stream positioned after the header)."""
    head = f.read(PREFIX_SIZE + MAX_FRAME_HEADER)
    _check_prefix(path, head)
    at = PREFIX_SIZE
    if len(head) < PREFIX_SIZE + 1:
        raise LogFormatError(path, at, "truncated header")
    if head[at] != _K_H:
        raise LogFormatError(path, at, "first frame is not a header")
    n, h = _read_varint(head, at + 1, len(head))
    if n == -2:
        raise LogFormatError(path, at, "malformed header length")
    if n == -1 or h + 4 > len(head) and n <= max_record:
        raise LogFormatError(path, at, "truncated header")
    if n > max_record:
        raise LogFormatError(path, at, f"header length {n} exceeds limit")
    (crc,) = _CRC.unpack_from(head, h)
    body = head[h + 4:]
    if len(body) < n:
        body += f.read(n - len(body))
    if len(body) < n:
        raise LogFormatError(path, at, "truncated header")
    prefix = head[:h + 4] + body[:n]
    body = body[:n]
    if zlib.crc32(body, _CRC_H) != crc:
        raise LogFormatError(path, at, "header checksum mismatch")
    try:
        stream = Inflater()
        header = _unpack(stream.chunk(body, max_record))
    except Exception as e:
        why = f" ({e})" if isinstance(e, CodecError) else ""
        raise LogFormatError(path, at, f"undecodable header{why}") from None
    if type(header) is not dict:
        raise LogFormatError(path, at, "header is not a map")
    if header.get("format_version") != FORMAT_VERSION:
        raise LogFormatError(
            path, at, f"header format_version {header.get('format_version')!r} "
                      f"does not match file format version {FORMAT_VERSION}")
    es = header.get("event_schema")
    if es != SCHEMA_DIGEST:
        by = header.get("simulator_version")
        raise LogFormatError(
            path, -1, f"log event schema {es!r} is not this fadumpsim's {SCHEMA_DIGEST!r}"
                      + (f" (log written by fadumpsim {by})" if isinstance(by, str) else ""))
    return header, prefix, stream


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _open(path: str) -> Any:
    """Open a regular file for reading; never block on a FIFO or stream a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise LogFormatError(path, -1, f"cannot open log ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise LogFormatError(path, -1, f"cannot open log (is {what}, not a regular file)")
    return os.fdopen(fd, "rb", buffering=0)


def _decode_run(buf: bytes, pos: int, expected: int, max_record: int,
                dec: RecordDecoder, out: list) -> tuple[int, int, str | None]:
    """Decode the run of complete E frames at buf[pos:] into `out`.

    Returns (pos, next expected seq, damage cause or None). With None, `pos` is
    at a frame that is not an event or that is not complete in `buf`. Batches of
    small frames go through events/batch.py; a batch it cannot take as a whole
    (damage, a new name, a long frame...) is decoded frame by frame by
    `_decode_slow`, the reference path, which finds and names the first damage.
    """
    if USE_C:
        return _decode_run_c(buf, pos, expected, max_record, dec, out)
    while True:
        pos, expected, cause, frames = decode_batch(buf, pos, expected, max_record, dec, out)
        if cause is None and frames == BATCH:
            continue
        if cause is FALLBACK or frames == 0:
            start = pos
            pos, expected, cause = _decode_slow(buf, pos, expected, max_record, dec, out,
                                                frames or 1)
            if cause is None and pos != start:
                continue
            return pos, expected, cause
        if cause is INFLATED:
            return pos, expected, _BATCH_FULL
        if cause is not None:
            return pos, expected, cause
        # the batch stopped early at a frame it does not take: one slow step
        start = pos
        pos, expected, cause = _decode_slow(buf, pos, expected, max_record, dec, out, 1)
        if cause is not None or pos == start:
            return pos, expected, cause


def _decode_run_c(buf: bytes, pos: int, expected: int, max_record: int,
                  dec: RecordDecoder, out: list) -> tuple[int, int, str | None]:
    """`_decode_run` with the C fast path: it decodes frame after frame and stops,
    having changed nothing, at the first frame it is not sure of; that one frame goes
    to `_decode_slow` (the reference), then C goes on. A damaged deflated payload is
    the one case C reports itself, with the reference's cause (events/_cdecode.c)."""
    decode = _cdecode.decode
    while True:
        pos, expected, cause = decode(buf, pos, expected, max_record, dec, out,
                                      _batch.INFLATE_BUDGET)
        if cause is not None:
            return pos, expected, (_BATCH_FULL if cause is INFLATED else cause)
        start = pos
        pos, expected, cause = _decode_slow(buf, pos, expected, max_record, dec, out, 1)
        if cause is not None or pos == start:
            return pos, expected, cause


def _decode_slow(buf: bytes, pos: int, expected: int, max_record: int,
                 dec: RecordDecoder, out: list, limit: int) -> tuple[int, int, str | None]:
    """Decode up to `limit` complete E frames at buf[pos:] one by one (the reference).

    Returns (pos, next expected seq, damage cause or None). With None, `pos` is
    at a frame that is not an event or that is not complete in `buf`, or after
    `limit` frames. The common record shape is expanded inline; anything else
    goes through RecordDecoder.finish, which has the same result and names what
    is wrong.
    """
    blen = len(buf)
    mv = memoryview(buf)
    crc_at = _CRC.unpack_from
    seq_pack = _SEQ.pack
    crc32 = zlib.crc32
    unpack = dec.unpack
    finish = dec.finish
    append = out.append
    exts = dec.exts
    names = dec.names
    wire_get = WIRE_FIELDS.get
    crc_e = _CRC_E
    mask = _U64 - 1
    step, time = dec.step, dec.time
    stop = expected + limit
    try:
        while pos + 1 < blen and expected < stop:
            if buf[pos] != 69:  # b"E"
                break
            n = buf[pos + 1]
            if n < 0x80:
                h = pos + 2
            else:
                n, h = _read_varint(buf, pos + 1, blen)
                if n == -1:
                    break
                if n == -2:
                    return pos, expected, "malformed frame length"
            if n > max_record:
                return pos, expected, f"record length {n} exceeds limit"
            end = h + 4 + n
            if end > blen:
                break
            body = mv[h + 4:end]
            if crc32(body, crc32(seq_pack(expected), crc_e)) != crc_at(buf, h)[0]:
                return pos, expected, "checksum mismatch"
            try:
                w = unpack(body)
            except Exception:
                exts.clear()
                return pos, expected, "undecodable record"
            rec = None
            if not exts and type(w) is list and len(w) >= 6:
                ds, s, d, t, dc, cs = w[:6]
                nn = len(names)
                if (type(s) is int and type(d) is int and type(t) is int and type(ds) is int
                        and type(dc) is int and type(cs) is int and 0 <= s < nn and 0 <= d < nn
                        and 0 <= t < nn and dc >= 0 and cs >= 0 and -_SIGN <= ds < _SIGN):
                    typ = names[t]
                    fields = wire_get(typ)
                    payload = None
                    if fields is not None:
                        if len(w) - 6 == len(fields):
                            payload = dict(zip(fields, w[6:]))
                    elif len(w) == 7 and type(w[6]) is dict:
                        payload = w[6]
                    if payload is not None and (n <= MAX_DEPTH or _flat(payload)):
                        step = (step + ds) & mask
                        time = (time + step) & mask
                        rec = [expected, time, names[s], names[d], typ, (expected - dc) & mask,
                               cs, payload]
            if rec is None:
                dec.step, dec.time = step, time
                try:
                    rec = finish(w, expected, n)
                except CodecError as e:
                    exts.clear()
                    return pos, expected, f"malformed record ({e})"
                step, time = dec.step, dec.time
                if dec.inflated > CHUNK:  # bound what one batch holds once inflated
                    dec.inflated = 0
                    append(rec)
                    return end, expected + 1, _BATCH_FULL
            append(rec)
            expected += 1
            pos = end
    finally:
        dec.step, dec.time = step, time
        mv.release()
    return pos, expected, None


_BATCH_FULL = "batch full"  # not damage: yield what was decoded, then go on


def _flat(payload: dict) -> bool:
    """True when no value of `payload` is a container (so its depth is 1)."""
    for v in payload.values():
        if type(v) is list or type(v) is dict:
            return False
    return True


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

    def __init__(self, path: str | os.PathLike[str], *, max_record: int = MAX_RECORD) -> None:
        self.path = os.fspath(path)
        self.max_record = max_record
        self.trailer = None
        self.error = None
        with _open(self.path) as f:
            self.header, self._prefix, self._stream = _read_prefix(self.path, f, max_record)
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
            out: list = []
            for batch in self._batches():  # whole batches: no generator step per record
                out += batch
            return out
        finally:
            if gc_on:
                gc.enable()

    def _damage(self, offset: int, cause: str) -> None:
        self.error = LogFormatError(self.path, offset, cause)

    def __iter__(self) -> Iterator[list]:
        for batch in self._batches():
            yield from batch

    def _batches(self) -> Iterator[list]:
        """The records in decoded batches (lists); sets `trailer` or `error` at the end."""
        self.trailer = None
        self.error = None
        path = self.path
        max_record = self.max_record
        dec = RecordDecoder(self._stream.copy(), max_record)
        try:
            f = _open(path)
        except LogFormatError as e:
            self.error = e
            return
        with f:
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
                    # the rest of a big frame (so buf <= CHUNK + max_record + 10).
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
                    pos, expected, cause = _decode_run(buf, pos, expected, max_record, dec, out)
                finally:
                    if gc_on:
                        gc.enable()
                if out:
                    yield out
                del out
                if cause is _BATCH_FULL:
                    want = 0
                    continue
                if cause is not None:
                    self._damage(base + pos, cause)
                    return
                blen = len(buf)
                want = MAX_FRAME_HEADER
                if pos < blen:
                    kind = buf[pos]
                    if kind not in _KIND_NAMES:
                        self._damage(base + pos, f"unknown frame kind 0x{kind:02x}")
                        return
                    n, h = _read_varint(buf, pos + 1, blen)
                    if n == -2:
                        self._damage(base + pos, "malformed frame length")
                        return
                    if n > max_record:
                        self._damage(base + pos, f"{_KIND_NAMES[kind]} length {n} exceeds limit")
                        return
                    if n >= 0:
                        end = h + 4 + n
                        if end <= blen:  # complete non-event frame
                            if kind == _K_H:
                                self._damage(base + pos, "unexpected header frame")
                            else:
                                self._end_frame(f, buf, pos, h, end, base, expected - 1, eof)
                            return
                        want = end - pos
                if eof:  # the frame at pos is incomplete and no more data comes
                    if pos == blen:
                        self._damage(base + pos, "missing end of log (run did not finish)")
                    else:
                        self._damage(base + pos, f"truncated {_KIND_NAMES.get(buf[pos], 'frame')}")
                    return
                if want <= CHUNK:
                    want = CHUNK

    def _end_frame(self, f: Any, buf: bytes, pos: int, h: int, end: int, base: int,
                   count: int, eof: bool) -> None:
        """Check the END frame at buf[pos:end] and that nothing follows it."""
        body = buf[h + 4:end]
        if zlib.crc32(body, _CRC_X) != _CRC.unpack_from(buf, h)[0]:
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
    file, foreign file, other format version or event schema, damaged header).
    """
    reader = LogReader(path)
    records = reader.records()
    return reader.header, records, reader.trailer, reader.error


def iter_frames(path: str | os.PathLike[str], *, max_record: int = MAX_RECORD
                ) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, kind, body) of every frame, header frame included.

    Checks magic, version, lengths and checksums (raising LogFormatError at the
    first damage; E frames are numbered from 1 for their checksums) but does
    not decode bodies: for tools that inspect or forge logs at the byte level.
    Streaming; stops at end of file.
    """
    path = os.fspath(path)
    with _open(path) as f:
        _check_prefix(path, f.read(PREFIX_SIZE))
        offset = PREFIX_SIZE
        seq = 0
        while True:
            kb = f.read(1)
            if not kb:
                return
            kind = kb[0]
            if kind not in _CRC_OF_KIND:
                raise LogFormatError(path, offset, f"unknown frame kind 0x{kind:02x}")
            name = _KIND_NAMES[kind]
            vb = b""
            while len(vb) < 5 and (not vb or vb[-1] & 0x80):
                c = f.read(1)
                if not c:
                    raise LogFormatError(path, offset, f"truncated {name}")
                vb += c
            n, _ = _read_varint(vb, 0, len(vb))
            if n < 0:
                raise LogFormatError(path, offset, "malformed frame length")
            if n > max_record:
                raise LogFormatError(path, offset, f"{name} length {n} exceeds limit")
            crc_b = f.read(4)
            body = f.read(n)
            if len(crc_b) < 4 or len(body) < n:
                raise LogFormatError(path, offset, f"truncated {name}")
            if kind == _K_E:
                seq += 1
                ok = _event_crc(body, seq) == _CRC.unpack(crc_b)[0]
            else:
                ok = zlib.crc32(body, _CRC_OF_KIND[kind]) == _CRC.unpack(crc_b)[0]
            if not ok:
                raise LogFormatError(path, offset, "checksum mismatch")
            yield offset, kb, body
            offset += 1 + len(vb) + 4 + n


def rewrite_records(src_path: str | os.PathLike[str], dst_path: str | os.PathLike[str],
                    transform: Callable[[list], list]) -> None:
    """Copy a complete, intact log applying transform(record) -> record, re-encoded.

    The header and trailer are copied as they are and records are encoded and
    framed without validation (their frame number is their position), so tests
    can produce logs whose checksums are all valid but whose contents were
    altered (e.g. a payload) and check that replay notices.
    """
    reader = LogReader(src_path)
    dst = os.fspath(dst_path)
    tmp = dst + ".partial"
    stream = Deflater()
    _encode_header(reader.header, stream)  # the same stream state as the copied header
    enc = RecordEncoder(stream)
    count = 0
    with open(tmp, "wb") as out:
        out.write(reader._prefix)
        for rec in reader:
            count += 1
            out.write(encode_frame(KIND_EVENT, enc.body(transform(rec)), count))
        if reader.error is not None:
            out.close()
            os.unlink(tmp)
            raise reader.error
        out.write(_encode_end(count, reader.trailer))
    os.replace(tmp, dst)
