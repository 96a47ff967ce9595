"""Tests of the event-log file format (events/logfile.py, docs/log-format.md).

The properties that matter for replay: what goes in comes out unchanged, the
same input gives the same bytes, and damage anywhere yields exactly the intact
prefix plus an error naming the offset of the first damaged frame, never a
modified record and never an exception other than LogFormatError.
"""
from __future__ import annotations

import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadumpsim.events import logfile as L
from fadumpsim.events.envelope import RECORD_FIELDS, Event
from fadumpsim.events.logfile import (FORMAT_VERSION, MAGIC, LogFormatError, LogReader, LogWriter,
                            encode_record, iter_frames, read_log, rewrite_records)

# database=None: do not write a .hypothesis/ directory into the source tree.
FAST = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

HEADER = {
    "simulator_version": "0.1.0",
    "scenario": {"name": "fadump-basic", "lpars": [{"name": "lp1", "mem": 2**34}]},
    "seed": 2**64 - 1,
    "strategy": "random",
    "strategy_params": {"p": [1, 2, 3]},
    "event_schema": {"cmd_run": 1, "cmd_result": 2},
}


def rec(n: int, payload: dict | None = None, **kw) -> list:
    """Record number n (fields overridable by name, e.g. seq=True to forge one)."""
    fields = {"seq": n, "time": n * 1000, "src": "kernel", "dst": "script",
              "type": "cmd_result", "cause": n - 1, "chan_seq": n, "payload": payload}
    fields.update(kw)
    if fields["payload"] is None:
        fields["payload"] = {"cmd": "echo 1 > /sys/kernel/fadump_registered", "rc": 0,
                             "addr": 805306368 + n}
    return [fields[f] for f in RECORD_FIELDS]


def write_log(path: Path, records: list, header: dict = HEADER,
              trailer: dict | None = None) -> bytes:
    with LogWriter(path, header) as w:
        for r in records:
            w.append(r)
        w.close(trailer if trailer is not None else {"events": len(records), "outcome": "pass"})
    return path.read_bytes()


def frames(path: Path) -> list[tuple[int, bytes, int]]:
    """(start, kind, end) of every frame after the header frame."""
    out = [(off, kind, off + L.FRAME_HEADER_SIZE + len(body))
           for off, kind, body in iter_frames(path)]
    assert out[0][1] == b"H"
    return out[1:]


RECORDS = [rec(i) for i in range(1, 11)]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("log") / "sample.log"
    return path, write_log(path, RECORDS)


# --------------------------------------------------------------------------- round trip

def test_round_trip_exotic_values(tmp_path: Path) -> None:
    payload = {
        "big": 2**63, "max": 2**64 - 1, "min": -2**63, "zero": 0, "neg": -1,
        "bytes": b"\x00\xff" * 40, "empty": b"", "none": None, "t": True, "f": False,
        "nested": {"a": [1, [2, [3, {"b": b"x"}]]], "ü": "日本語 ✓"},
        "list": [], "dict": {}, "long": "x" * 70000,
    }
    records = [rec(1, payload, time=2**64 - 1), rec(2, {}, src="", dst="ü", type="t" * 300),
               rec(3, cause=2**63, chan_seq=2**64 - 1)]
    header = dict(HEADER, note="ünïcödé", blob=b"\x00\x01")
    write_log(tmp_path / "a.log", records, header, {"events": 3, "outcome": "pass", "x": [b"y"]})
    h, got, trailer, err = read_log(tmp_path / "a.log")
    assert err is None
    assert got == records
    assert h == {"format_version": FORMAT_VERSION, **header}
    assert list(h)[0] == "format_version"
    assert trailer == {"events": 3, "outcome": "pass", "x": [b"y"]}
    assert [Event.from_record(r).record() for r in got] == records


msgpack_leaf = (st.integers(-2**63, 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20)
                | st.booleans() | st.none())
msgpack_value = st.recursive(
    msgpack_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12)


@FAST
@given(payloads=st.lists(st.dictionaries(st.text(max_size=8), msgpack_value, max_size=5),
                         max_size=6),
       names=st.lists(st.text(max_size=10), min_size=3, max_size=3),
       times=st.integers(0, 2**64 - 1))
def test_round_trip_property(tmp_path_factory, payloads, names, times) -> None:
    path = tmp_path_factory.mktemp("rt") / "p.log"
    src, dst, typ = names
    records = [[i + 1, times, src, dst, typ, i, i + 1, p] for i, p in enumerate(payloads)]
    write_log(path, records)
    h, got, trailer, err = read_log(path)
    assert (got, err) == (records, None)
    assert trailer == {"events": len(records), "outcome": "pass"}


def test_empty_log_and_default_trailer(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "e.log", {})
    w.close()
    assert read_log(tmp_path / "e.log") == ({"format_version": FORMAT_VERSION}, [], {}, None)


def test_reader_streams_across_chunks_and_big_records(tmp_path: Path) -> None:
    big = rec(3, {"blob": b"\xab" * (L.CHUNK * 2 + 17)})
    records = [rec(1), rec(2), big] + [rec(i) for i in range(4, 20000)]
    write_log(tmp_path / "big.log", records)
    r = LogReader(tmp_path / "big.log")
    assert r.records() == records
    assert r.error is None and r.trailer["outcome"] == "pass"
    assert list(r) == records  # a reader can be iterated again


def test_reader_memory_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    records = [rec(i, {"blob": bytes([i % 256]) * 100_000}) for i in range(1, 201)]  # ~20 MB
    write_log(path, records)
    del records
    tracemalloc.start()
    try:
        n = sum(1 for _ in LogReader(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 200
    assert peak < 8 * L.CHUNK, peak


# --------------------------------------------------------------------------- determinism

def test_identical_input_gives_identical_bytes(tmp_path: Path) -> None:
    records = [rec(i, {"z": i, "a": [b"q", None], "m": {"y": 1, "b": 2}}) for i in range(1, 200)]
    a = write_log(tmp_path / "a.log", records)
    b = write_log(tmp_path / "b.log", [list(r) for r in records], dict(HEADER))
    assert a == b
    assert a.startswith(MAGIC + struct.pack("<I", FORMAT_VERSION))
    # the framing is exactly what encode_record produces
    body_start = frames(tmp_path / "a.log")[0][0]
    assert a[body_start:].startswith(b"".join(encode_record(r) for r in records))


# --------------------------------------------------------------------------- damage

def test_truncation_at_every_offset(sample, tmp_path: Path) -> None:
    path, data = sample
    fr = frames(path)
    data_start = fr[0][0]
    cut_path = tmp_path / "cut.log"
    # inside the magic, version and header frame: the constructor refuses
    for cut in range(0, data_start):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(LogFormatError) as ei:
            LogReader(cut_path)
        assert ei.value.path == str(cut_path)
        assert "\n" not in str(ei.value)
    # from the header's end through the last 3 records and the END frame
    cuts = [data_start] + list(range(fr[-4][0], len(data) + 1))
    for cut in cuts:
        cut_path.write_bytes(data[:cut])
        r = LogReader(cut_path)
        got = list(r)
        intact = sum(1 for start, kind, end in fr if kind == b"E" and end <= cut)
        assert got == RECORDS[:intact], cut
        if cut == len(data):
            assert r.error is None and r.trailer is not None
            continue
        assert r.trailer is None
        first_bad = next(start for start, kind, end in fr if end > cut)
        assert r.error is not None and r.error.offset == first_bad, (cut, r.error)
        if cut == first_bad:
            assert r.error.cause == "missing end of log (run did not finish)"
        elif first_bad == fr[-1][0]:
            assert r.error.cause == "truncated end of log"
        else:
            assert r.error.cause == "truncated record"
        assert str(r.error) == f"{cut_path}: {r.error.cause} at byte {first_bad}"


def _first_damaged_frame(fr: list, pos: int) -> tuple[int, int]:
    """(number of intact records before, start offset) of the frame holding pos."""
    for i, (start, kind, end) in enumerate(fr):
        if start <= pos < end:
            return i, start
    raise AssertionError(pos)


@FAST
@given(st.data())
def test_random_byte_flips(sample, tmp_path_factory, data) -> None:
    path, original = sample
    fr = frames(path)
    data_start = fr[0][0]
    flips = data.draw(st.lists(st.tuples(st.integers(data_start, len(original) - 1),
                                         st.integers(1, 255)),
                               min_size=1, max_size=3, unique_by=lambda t: t[0]))
    damaged = bytearray(original)
    for pos, mask in flips:
        damaged[pos] ^= mask
    out = tmp_path_factory.mktemp("flip") / "f.log"
    out.write_bytes(damaged)
    r = LogReader(out)
    got = r.records()
    n, start = _first_damaged_frame(fr, min(p for p, _ in flips))
    assert got == RECORDS[:n]
    assert r.error is not None and r.error.offset == start, r.error
    assert r.trailer is None


@FAST
@given(st.data())
def test_byte_flips_in_header_are_refused(sample, tmp_path_factory, data) -> None:
    path, original = sample
    data_start = frames(path)[0][0]
    pos = data.draw(st.integers(0, data_start - 1))
    damaged = bytearray(original)
    damaged[pos] ^= data.draw(st.integers(1, 255))
    out = tmp_path_factory.mktemp("hflip") / "f.log"
    out.write_bytes(damaged)
    with pytest.raises(LogFormatError):
        LogReader(out)


def _forge(tmp_path: Path, tail: bytes, records: list = RECORDS[:3]) -> tuple[Path, int]:
    """A log of `records` followed by raw `tail` bytes; returns (path, tail offset)."""
    path = tmp_path / "forged.log"
    write_log(path, records)
    prefix = path.read_bytes()[:frames(path)[-1][0]]  # drop the END frame
    path.write_bytes(prefix + tail)
    return path, len(prefix)


def test_hostile_length_is_rejected_without_allocating(tmp_path: Path) -> None:
    path, off = _forge(tmp_path, struct.pack("<BII", ord("E"), 0xFFFFFFFF, 0) + b"xyz")
    tracemalloc.start()
    try:
        r = LogReader(path)
        got = r.records()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == RECORDS[:3]
    assert r.error.offset == off
    assert r.error.cause == "record length 4294967295 exceeds limit"
    assert peak < 4 * L.CHUNK


def test_max_record_limit(tmp_path: Path) -> None:
    records = [rec(1), rec(2, {"blob": b"x" * 5000}), rec(3)]
    write_log(tmp_path / "l.log", records)
    r = LogReader(tmp_path / "l.log", max_record=1000)
    assert r.records() == records[:1]
    assert "exceeds limit" in r.error.cause
    assert r.error.offset == frames(tmp_path / "l.log")[1][0]
    with pytest.raises(LogFormatError, match="header length .* exceeds limit at byte 20"):
        LogReader(tmp_path / "l.log", max_record=10)


def test_hostile_header_length(tmp_path: Path) -> None:
    p = tmp_path / "h.log"
    p.write_bytes(MAGIC + struct.pack("<I", FORMAT_VERSION)
                  + struct.pack("<BII", ord("H"), 0xFFFFFFFF, 0))
    with pytest.raises(LogFormatError, match="header length 4294967295 exceeds limit"):
        LogReader(p)


def _framed(kind: bytes, body: bytes) -> bytes:
    return struct.pack("<BII", kind[0], len(body), zlib.crc32(kind + body)) + body


@pytest.mark.parametrize("tail, cause", [
    (_framed(b"E", b"\xc1"), "undecodable record"),
    (_framed(b"E", msgpack.packb(rec(4)) + b"\x00"), "undecodable record"),
    (_framed(b"E", b"\xa3\xff\xfe\xfd"), "undecodable record"),  # bad UTF-8
    (_framed(b"E", msgpack.packb([4, 0, "a", "b", "t", 0, 0, msgpack.ExtType(3, b"x")])),
     "undecodable record"),
    (_framed(b"E", msgpack.packb({1: 2}, strict_types=False)), "undecodable record"),
    (_framed(b"E", b"\x91" * 100_000 + b"\x00"), "undecodable record"),  # nesting bomb
    (_framed(b"E", b"\xdd\xff\xff\xff\xff"), "undecodable record"),  # array of 2**32-1
    (_framed(b"E", msgpack.packb({"a": 1})), "malformed record (record is a dict, not a list)"),
    (_framed(b"E", msgpack.packb(rec(4)[:7])), "malformed record (record has 7 fields, not 8)"),
    (encode_record(rec(4, time="now")), "malformed record (record field time is a str, not int)"),
    (encode_record(rec(4, seq=True)), "malformed record (record field seq is a bool, not int)"),
    (encode_record(rec(4, payload=[1])), "malformed record (record field payload is a list, not dict)"),
    (encode_record(rec(9)), "record out of sequence (expected seq 4, found 9)"),
    (encode_record(rec(3)), "record out of sequence (expected seq 4, found 3)"),
    (_framed(b"H", msgpack.packb({"format_version": 1})), "unexpected header frame"),
    (_framed(b"Q", b"x"), "unknown frame kind 0x51"),
    (_framed(b"E", msgpack.packb(rec(4)))[:-1] + b"\x00", "checksum mismatch"),
    (_framed(b"X", msgpack.packb([2, {}])), "end of log counts 2 records but 3 were read"),
    (_framed(b"X", msgpack.packb({"events": 3})), "malformed end of log"),
    (_framed(b"X", b"\xc1"), "undecodable end of log"),
    (b"", "missing end of log (run did not finish)"),
    (b"E\x05", "truncated record"),
    (b"X", "truncated end of log"),
])
def test_forged_damage(tmp_path: Path, tail: bytes, cause: str) -> None:
    path, off = _forge(tmp_path, tail)
    header, got, trailer, err = read_log(path)
    assert got == RECORDS[:3]
    assert trailer is None
    assert (err.cause, err.offset, err.path) == (cause, off, str(path))


def test_data_after_end(sample, tmp_path: Path) -> None:
    path, data = sample
    p = tmp_path / "extra.log"
    for extra in (b"\x00", encode_record(rec(11)), b"junk" * 1000):
        p.write_bytes(data + extra)
        h, got, trailer, err = read_log(p)
        assert got == RECORDS and trailer is None
        assert (err.cause, err.offset) == ("data after end of log", len(data))


def test_header_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.log"
    with pytest.raises(LogFormatError) as ei:
        LogReader(p)
    assert ei.value.offset == -1 and "cannot open log" in str(ei.value)
    assert str(ei.value).startswith(f"{p}: ") and " at byte" not in str(ei.value)
    with pytest.raises(LogFormatError, match="cannot open log"):
        LogReader(tmp_path)  # a directory

    p.write_bytes(b"")
    with pytest.raises(LogFormatError, match="empty file"):
        read_log(p)
    for junk in (b"\x00", b"hello world, this is not a log at all",
                 b"PK\x03\x04" + b"\x00" * 100, MAGIC[:-1] + b"X" + b"\x00" * 40):
        p.write_bytes(junk)
        with pytest.raises(LogFormatError) as ei:
            LogReader(p)
        assert str(ei.value) == f"{p}: not a fadumpsim event log"
    p.write_bytes(MAGIC[:5])
    with pytest.raises(LogFormatError, match="truncated file header at byte 0"):
        LogReader(p)

    good = write_log(tmp_path / "g.log", RECORDS[:1])
    for version in (0, 2, 7, 2**32 - 1):
        p.write_bytes(MAGIC + struct.pack("<I", version) + good[L.PREFIX_SIZE:])
        with pytest.raises(LogFormatError) as ei:
            LogReader(p)
        assert str(ei.value) == (f"{p}: log format version {version} is not supported by "
                                 f"this fadumpsim (reads version {FORMAT_VERSION})")
        assert ei.value.offset == -1

    p.write_bytes(good[:L.PREFIX_SIZE] + _framed(b"H", msgpack.packb({"format_version": 2})))
    with pytest.raises(LogFormatError, match="header format_version 2 does not match"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + _framed(b"H", msgpack.packb([1])))
    with pytest.raises(LogFormatError, match="header is not a map at byte 20"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + encode_record(rec(1)))
    with pytest.raises(LogFormatError, match="first frame is not a header"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + _framed(b"H", b"\xc1"))
    with pytest.raises(LogFormatError, match="undecodable header"):
        LogReader(p)


def test_error_type_is_one_line_and_picklable() -> None:
    e = LogFormatError("/x/run.log", 42, "checksum mismatch")
    assert str(e) == "/x/run.log: checksum mismatch at byte 42"
    assert str(LogFormatError("p", -1, "c")) == "p: c"
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.offset, e2.cause, str(e2)) == (e.path, e.offset, e.cause, str(e))


def test_file_replaced_after_open(tmp_path: Path) -> None:
    p = tmp_path / "r.log"
    write_log(p, RECORDS[:2])
    r = LogReader(p)
    write_log(p, RECORDS[:2], dict(HEADER, seed=5))
    assert r.records() == []
    assert r.error.cause == "log file changed since it was opened"


# --------------------------------------------------------------------------- helpers

def test_iter_frames(sample, tmp_path: Path) -> None:
    path, data = sample
    kinds = [k for _, k, _ in iter_frames(path)]
    assert kinds == [b"H"] + [b"E"] * len(RECORDS) + [b"X"]
    offs = [o for o, _, _ in iter_frames(path)]
    assert offs[0] == L.PREFIX_SIZE
    bad = tmp_path / "bad.log"
    bad.write_bytes(data[:-3])
    with pytest.raises(LogFormatError, match="truncated end of log"):
        list(iter_frames(bad))
    flipped = bytearray(data)
    flipped[offs[3] + 12] ^= 1
    bad.write_bytes(flipped)
    with pytest.raises(LogFormatError, match=f"checksum mismatch at byte {offs[3]}"):
        list(iter_frames(bad))


def test_rewrite_records_altered_payload(sample, tmp_path: Path) -> None:
    path, data = sample
    dst = tmp_path / "altered.log"

    def alter(r: list) -> list:
        if r[0] == 5:
            r = r[:7] + [dict(r[7], rc=1)]
        return r

    rewrite_records(path, dst, alter)
    h, got, trailer, err = read_log(dst)
    assert err is None and h == LogReader(path).header and trailer == read_log(path)[2]
    assert got[4][7]["rc"] == 1
    assert got[:4] == RECORDS[:4] and got[5:] == RECORDS[5:]
    assert len(dst.read_bytes()) == len(data)
    assert not Path(str(dst) + ".partial").exists()

    # identity rewrite is byte-identical
    rewrite_records(path, tmp_path / "same.log", lambda r: r)
    assert (tmp_path / "same.log").read_bytes() == data

    # altering seq gives a log with valid checksums that the reader still refuses
    rewrite_records(path, dst, lambda r: rec(r[0] + 1) if r[0] >= 6 else r)
    h, got, trailer, err = read_log(dst)
    assert got == RECORDS[:5]
    assert err.cause == "record out of sequence (expected seq 6, found 7)"

    # a damaged source is refused
    bad = tmp_path / "bad.log"
    bad.write_bytes(data[:-1])
    with pytest.raises(LogFormatError):
        rewrite_records(bad, tmp_path / "never.log", lambda r: r)
    assert not (tmp_path / "never.log").exists()
    assert not (tmp_path / "never.log.partial").exists()


# --------------------------------------------------------------------------- writer

def test_writer_is_atomic(tmp_path: Path) -> None:
    p = tmp_path / "run.log"
    partial = Path(str(p) + ".partial")
    old = write_log(p, RECORDS[:2])
    w = LogWriter(p, HEADER)
    for r in RECORDS:
        w.append(r)
    assert partial.exists()
    assert p.read_bytes() == old  # the old log stays until close
    w.close({"events": 10, "outcome": "pass"})
    assert not partial.exists()
    assert read_log(p)[1:] == (RECORDS, {"events": 10, "outcome": "pass"}, None)
    with pytest.raises(ValueError, match="closed"):
        w.append(rec(11))
    with pytest.raises(ValueError, match="closed"):
        w.close()
    w.abort()  # no-op


def test_writer_abort_keeps_records(tmp_path: Path) -> None:
    p = tmp_path / "fail.log"
    w = LogWriter(p, HEADER)
    for r in RECORDS[:4]:
        w.append(r)
    w.abort({"error": "RuntimeError('boom')", "events": 4})
    assert not Path(str(p) + ".partial").exists()
    h, got, trailer, err = read_log(p)
    assert (got, trailer, err) == (RECORDS[:4], {"error": "RuntimeError('boom')", "events": 4}, None)
    # an unserialisable trailer does not lose the log
    w = LogWriter(p, HEADER)
    w.append(RECORDS[0])
    w.abort({"error": object()})
    h, got, trailer, err = read_log(p)
    assert got == RECORDS[:1] and err is None and "error" in trailer


def test_writer_context_manager(tmp_path: Path) -> None:
    p = tmp_path / "cm.log"
    with pytest.raises(RuntimeError, match="boom"):
        with LogWriter(p, HEADER) as w:
            w.append(RECORDS[0])
            w.append(RECORDS[1])
            raise RuntimeError("boom")
    h, got, trailer, err = read_log(p)
    assert got == RECORDS[:2] and err is None
    assert trailer == {"error": "RuntimeError('boom')"}
    with LogWriter(p, HEADER) as w:
        w.append(RECORDS[0])
    assert read_log(p)[1:] == (RECORDS[:1], {}, None)


def test_crashed_writer_leaves_readable_partial(tmp_path: Path) -> None:
    p = tmp_path / "crash.log"
    w = LogWriter(p, HEADER)
    for i in range(1, 20001):  # more than the write buffer
        w.append(rec(i))
    w._file.flush()  # what the OS has when the process dies here
    assert not p.exists()
    r = LogReader(str(p) + ".partial")
    got = r.records()
    assert 0 < len(got) < 20000 and got == [rec(i) for i in range(1, len(got) + 1)]
    assert r.error.cause in ("missing end of log (run did not finish)", "truncated record")
    w.close()


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "bad.log"
    with pytest.raises(ValueError, match="format_version"):
        LogWriter(p, {"format_version": 99})
    with pytest.raises(TypeError):
        LogWriter(p, [1, 2])
    assert not Path(str(p) + ".partial").exists()
    w = LogWriter(p, dict(HEADER, format_version=FORMAT_VERSION))
    for bad in (rec(2), rec(0), rec(1, seq=True), rec(1)[:7], tuple(rec(1)),
                rec(1, time=1.5), rec(1, src=None), rec(1, payload=[])):
        with pytest.raises(ValueError):
            w.append(bad)
    for bad in (rec(1, {"t": (1, 2)}), rec(1, {"big": 2**64}), rec(1, {"f": {1, 2}})):
        with pytest.raises((TypeError, OverflowError, ValueError)):
            w.append(bad)
    w.append(rec(1))
    w.close()
    assert read_log(p)[1] == [rec(1)]
    assert list(read_log(p)[0]) == ["format_version", *HEADER]
