"""Tests of the event-log file format (events/logfile.py, docs/log-format.md).

The properties that matter for replay: what goes in comes out unchanged, the
same input gives the same bytes, and damage anywhere yields exactly the intact
prefix plus an error naming the offset of the first damaged frame, never a
modified record and never an exception other than LogFormatError.
"""
from __future__ import annotations

import os
import pickle
import random
import struct
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadumpsim.events import codec
from fadumpsim.events import logfile as L
from fadumpsim.events.envelope import RECORD_FIELDS, Event
from fadumpsim.events.logfile import (FORMAT_VERSION, MAGIC, SCHEMA_DIGEST, LogBusyError,
                                      LogFormatError, LogReader, LogWriteError, LogWriter,
                                      encode_frame, iter_frames, read_log, rewrite_records)

# database=None: do not write a .hypothesis/ directory into the source tree.
FAST = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

HEADER = {
    "simulator_version": "0.1.0",
    "scenario": {"name": "fadump-basic", "lpars": [{"name": "lp1", "mem": 2**34}]},
    "seed": 2**64 - 1,
    "strategy": "random",
    "strategy_params": {"p": [1, 2, 3]},
}
#: What the writer puts before the given header keys.
STAMP = {"format_version": FORMAT_VERSION, "event_schema": SCHEMA_DIGEST}


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
    fr = list(iter_frames(path))
    ends = [off for off, _, _ in fr[1:]] + [path.stat().st_size]
    out = [(off, kind, end) for (off, kind, _), end in zip(fr, ends)]
    assert out[0][1] == b"H"
    return out[1:]


def encoder_after(header: dict = HEADER) -> codec.RecordEncoder:
    """The record encoder of a log with `header`, positioned after the header."""
    stream = codec.Deflater()
    L._encode_header(header, stream)
    return codec.RecordEncoder(stream)


def wire(seq: int, body_obj) -> bytes:
    """One E frame (number `seq`, valid checksum) around a hand-made wire body."""
    return encode_frame(b"E", msgpack.packb(body_obj, use_bin_type=True), seq)


RECORDS = [rec(i) for i in range(1, 11)]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("log") / "sample.log"
    return path, write_log(path, RECORDS)


# --------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("backend", ["pure", "c"])
def test_a_log_cut_inside_a_long_frames_length_is_truncated_there(tmp_path: Path, backend: str,
                                                                   monkeypatch) -> None:
    """A 3 MB record has a 4-byte length; cut after 3 of them, the reader reports a
    truncated record at that frame (not a checksum, not a crash)."""
    from fadumpsim.events import logfile as L
    if backend == "c" and L._cdecode is None:
        pytest.skip("C extension not built")
    monkeypatch.setattr(L, "USE_C", backend == "c")
    import random
    big = random.Random(1).randbytes(3 << 20)  # incompressible: stays a long frame
    p = tmp_path / "big.log"
    write_log(p, [rec(1), rec(2, {"blob": big})], HEADER, {"events": 2})
    data = p.read_bytes()
    start = LogReader(p).data_start
    first = start + 1 + 1 + 4 + len(data[start + 6:start + 6 + data[start + 1]])  # record 1
    assert data[first] == ord("E") and data[first + 4] & 0x80 == 0  # 4-byte length
    p.write_bytes(data[:first + 4])  # kind + 3 of the 4 length bytes
    h, got, trailer, err = read_log(p)
    assert got == [rec(1)] and trailer is None
    assert err is not None and err.offset == first and "truncated record" in str(err)


@pytest.mark.parametrize("field", ["time", "cause", "chan_seq"])
def test_append_takes_u64_fields_up_to_2_64_minus_1_and_refuses_2_64(tmp_path: Path,
                                                                      field: str) -> None:
    """time, cause and chan_seq are stored modulo 2**64: 2**64 would read back as 0."""
    p = tmp_path / f"{field}.log"
    w = LogWriter(p, HEADER)
    with pytest.raises(ValueError, match="record"):
        w.append(rec(1, **{field: 2**64}))
    with pytest.raises(ValueError, match="record"):
        w.append(rec(1, **{field: -1}))
    w.append(rec(1, **{field: 2**64 - 1}))
    w.close()
    assert read_log(p)[1] == [rec(1, **{field: 2**64 - 1})]


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
    assert h == {**STAMP, **header}
    assert list(h)[:2] == ["format_version", "event_schema"]
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
    assert read_log(tmp_path / "e.log") == (STAMP, [], {}, None)


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
    # the framing is exactly what encode_frame produces around the codec's bodies
    body_start = frames(tmp_path / "a.log")[0][0]
    enc = encoder_after()
    assert a[body_start:].startswith(
        b"".join(encode_frame(b"E", enc.body(r), r[0]) for r in records))


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
    path, off = _forge(tmp_path, b"E" + L._varint(0xFFFFFFFF) + b"\0\0\0\0xyz")
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
    records = [rec(1), rec(2, {"blob": random.Random(2).randbytes(5000)}), rec(3)]
    write_log(tmp_path / "l.log", records)
    r = LogReader(tmp_path / "l.log", max_record=1000)
    assert r.records() == records[:1]
    assert "exceeds limit" in r.error.cause
    assert r.error.offset == frames(tmp_path / "l.log")[1][0]
    with pytest.raises(LogFormatError, match="header length .* exceeds limit at byte 20"):
        LogReader(tmp_path / "l.log", max_record=10)


def test_deflated_payload_cannot_expand_past_the_limit(tmp_path: Path) -> None:
    """A small frame whose deflated payload inflates past max_record is refused
    before the output is allocated (a zip bomb costs nothing)."""
    records = [rec(1), rec(2, {"blob": b"\0" * 200_000}), rec(3)]
    write_log(tmp_path / "z.log", records)
    fr = frames(tmp_path / "z.log")
    assert fr[1][2] - fr[1][0] < 1000  # the 200 kB payload is a small frame
    r = LogReader(tmp_path / "z.log", max_record=100_000)
    assert r.records() == records[:1]
    assert r.error.cause == "malformed record (deflated data expands beyond 100000 bytes)"
    assert r.error.offset == fr[1][0]
    assert LogReader(tmp_path / "z.log").records() == records


def test_hostile_header_length(tmp_path: Path) -> None:
    p = tmp_path / "h.log"
    p.write_bytes(MAGIC + struct.pack("<I", FORMAT_VERSION) + b"H" + L._varint(0xFFFFFFFF)
                  + b"\0" * 4)
    with pytest.raises(LogFormatError, match="header length 4294967295 exceeds limit"):
        LogReader(p)


def _framed(kind: bytes, body: bytes) -> bytes:
    return encode_frame(kind, body)


CMD_RUN = codec.PRESET_NAMES.index("cmd.run")


def _nested(depth: int):
    v: list = []
    for _ in range(depth - 1):
        v = [v]
    return v


@pytest.mark.parametrize("tail, cause", [
    (encode_frame(b"E", b"\xc1", 4), "undecodable record"),
    (encode_frame(b"E", msgpack.packb([0, "a", "b", "t", 1, 1, {}]) + b"\x00", 4),
     "undecodable record"),
    (encode_frame(b"E", b"\xa3\xff\xfe\xfd", 4), "undecodable record"),  # bad UTF-8
    (wire(4, [0, "a", "b", "t", 1, 1, msgpack.ExtType(5, b"x")]), "undecodable record"),
    (encode_frame(b"E", msgpack.packb({1: 2}, strict_types=False), 4), "undecodable record"),
    (encode_frame(b"E", b"\x91" * 100_000 + b"\x00", 4), "undecodable record"),  # nesting bomb
    (encode_frame(b"E", b"\xdd\xff\xff\xff\xff", 4), "undecodable record"),  # array of 2**32-1
    (encode_frame(b"E", b"\xdd\x00\x10\x00\x01" + b"\xc0" * (2**20 + 1), 4),
     "undecodable record"),  # over max_array_len
    (wire(4, {"a": 1}), "malformed record (record is not an array of at least 6 elements)"),
    (wire(4, [0, "a", "b", "t", 1]), "malformed record (record is not an array of at least 6 elements)"),
    (wire(4, [0, 9999, "b", "t", 1, 1, {}]),
     "malformed record (record field src is not a name or a known name index (9999))"),
    (wire(4, [0, "a", -1, "t", 1, 1, {}]),
     "malformed record (record field dst is not a name or a known name index (-1))"),
    (wire(4, [0, "a", "b", True, 1, 1, {}]),
     "malformed record (record field type is not a name or a known name index (True))"),
    (wire(4, ["now", "a", "b", "t", 1, 1, {}]),
     "malformed record (record time step, cause or chan_seq is not a 64-bit int)"),
    (wire(4, [0, "a", "b", "t", -1, 1, {}]),
     "malformed record (record time step, cause or chan_seq is not a 64-bit int)"),
    (wire(4, [0, "a", "b", "t", 1, 1, [1]]), "malformed record (payload is a list, not a map)"),
    (wire(4, [0, "a", "b", "t", 1, 1, {}, {}]), "malformed record (record has no single payload map)"),
    (wire(4, [0, "a", "b", CMD_RUN, 1, 1, 7]), "malformed record (cmd.run payload has 1 fields, not 2)"),
    (wire(4, [0, "a", "b", "t", 1, 1, {"d": _nested(40)}]),
     "malformed record (nesting deeper than 32)"),
    (wire(4, [0, "a", "b", "t", 1, 1, msgpack.ExtType(1, b"\xff\xff")]),
     "malformed record (bad deflate data (Error -3 while decompressing data: invalid block type))"),
    (wire(4, [0, "a", "b", "t", 1, 1, [msgpack.ExtType(1, b"")]]),
     "malformed record (misplaced msgpack extension)"),
    (wire(4, [0, "a", "b", "t", 1, 1, msgpack.ExtType(2, msgpack.packb({}))]),
     "malformed record (map-form payload of a type without positional fields)"),
    (wire(4, [0, "a", "b", CMD_RUN, 1, 1,
              msgpack.ExtType(2, msgpack.packb({"index": _nested(40), "command": "x"}))]),
     "malformed record (nesting deeper than 32)"),  # deep inside a map-form payload
    (wire(9, [0, "a", "b", "t", 1, 1, {}]), "checksum mismatch"),  # a frame out of place
    (wire(3, [0, "a", "b", "t", 1, 1, {}]), "checksum mismatch"),
    (b"E\x80\x00" + b"\0" * 8, "malformed frame length"),
    (_framed(b"H", msgpack.packb({"format_version": 2})), "unexpected header frame"),
    (_framed(b"Q", b"x"), "unknown frame kind 0x51"),
    (wire(4, [0, "a", "b", "t", 1, 1, {}])[:-1] + b"\x81", "checksum mismatch"),
    (_framed(b"X", msgpack.packb([2, {}])), "end of log counts 2 records but 3 were read"),
    (_framed(b"X", msgpack.packb({"events": 3})), "malformed end of log"),
    (_framed(b"X", msgpack.packb([3, {"d": _nested(40)}])), "undecodable end of log"),
    (_framed(b"X", b"\xc1"), "undecodable end of log"),
    (b"", "missing end of log (run did not finish)"),
    (b"E\x05", "truncated record"),
    (b"E", "truncated record"),
    (b"X", "truncated end of log"),
])
def test_forged_damage(tmp_path: Path, tail: bytes, cause: str) -> None:
    path, off = _forge(tmp_path, tail)
    header, got, trailer, err = read_log(path)
    assert got == RECORDS[:3]
    assert trailer is None
    assert (err.cause, err.offset, err.path) == (cause, off, str(path))


def test_forged_valid_wire_record_decodes(tmp_path: Path) -> None:
    """The forging helper writes what the reader accepts (so the cases above fail
    for the reason they name, not for a bad forgery)."""
    path, off = _forge(tmp_path, wire(4, [0, "a", "b", "t", 1, 1, {"k": 1}])
                       + _framed(b"X", msgpack.packb([4, {}])))
    header, got, trailer, err = read_log(path)
    assert err is None and got[3] == [4, RECORDS[2][1] + 1000, "a", "b", "t", 3, 1, {"k": 1}]
    path, off = _forge(tmp_path, wire(4, [0, "a", "b", CMD_RUN, 1, 1, 0, "ls"])
                       + _framed(b"X", msgpack.packb([4, {}])))
    assert read_log(path)[1][3][4:] == ["cmd.run", 3, 1, {"index": 0, "command": "ls"}]


def test_data_after_end(sample, tmp_path: Path) -> None:
    path, data = sample
    p = tmp_path / "extra.log"
    for extra in (b"\x00", wire(11, [0, "a", "b", "t", 1, 1, {}]), b"junk" * 1000):
        p.write_bytes(data + extra)
        h, got, trailer, err = read_log(p)
        assert got == RECORDS and trailer is None
        assert (err.cause, err.offset) == ("data after end of log", len(data))


def test_data_after_end_at_a_read_boundary(tmp_path: Path) -> None:
    """END ending exactly where a 1 MiB read ends: the reader must still look for more."""
    p = tmp_path / "b.log"
    size = L.CHUNK - 1000
    for _ in range(8):  # size one (incompressible) record so END ends at data_start + CHUNK
        recs = [rec(1, {"blob": random.Random(1).randbytes(size)})] + RECORDS[1:3]
        data = write_log(p, recs)
        data_start = frames(p)[0][0]
        if len(data) == data_start + L.CHUNK:
            break
        size += data_start + L.CHUNK - len(data)
    assert len(data) == data_start + L.CHUNK, (len(data), data_start)
    assert read_log(p)[3] is None
    for extra in (b"\x00", b"junk" * 10):
        p.write_bytes(data + extra)
        h, got, trailer, err = read_log(p)
        assert got == recs and trailer is None
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
        assert ei.value.offset == -1  # no position: nothing of it is a log
    p.write_bytes(MAGIC[:5])
    with pytest.raises(LogFormatError, match="truncated file header at byte 0"):
        LogReader(p)

    good = write_log(tmp_path / "g.log", RECORDS[:1])
    for version in (0, 1, 7, 2**32 - 1):
        p.write_bytes(MAGIC + struct.pack("<I", version) + good[L.PREFIX_SIZE:])
        with pytest.raises(LogFormatError) as ei:
            LogReader(p)
        assert str(ei.value) == (f"{p}: log format version {version} is not supported by "
                                 f"this fadumpsim (reads version {FORMAT_VERSION})")
        assert ei.value.offset == -1

    def header(obj) -> bytes:
        return _framed(b"H", codec.Deflater().chunk(msgpack.packb(obj)))

    p.write_bytes(good[:L.PREFIX_SIZE] + header({"format_version": 1}))
    with pytest.raises(LogFormatError, match="header format_version 1 does not match"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + header([1]))
    with pytest.raises(LogFormatError, match="header is not a map at byte 20"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + header({"format_version": 2, "event_schema": "x",
                                                  "simulator_version": "9.9"}))
    with pytest.raises(LogFormatError) as ei:
        LogReader(p)
    assert str(ei.value) == (f"{p}: log event schema 'x' is not this fadumpsim's "
                             f"{SCHEMA_DIGEST!r} (log written by fadumpsim 9.9)")
    p.write_bytes(good[:L.PREFIX_SIZE] + header({"format_version": 2, "d": _nested(40)}))
    with pytest.raises(LogFormatError, match=r"undecodable header \(nesting deeper than 32\) at byte 20"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + wire(1, [0, "a", "b", "t", 1, 1, {}]))
    with pytest.raises(LogFormatError, match="first frame is not a header"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + _framed(b"H", b"\xc1"))
    with pytest.raises(LogFormatError, match="undecodable header"):
        LogReader(p)
    p.write_bytes(good[:L.PREFIX_SIZE] + b"H\x80\x00")
    with pytest.raises(LogFormatError, match="malformed header length at byte 20"):
        LogReader(p)


def test_non_regular_files_are_refused_without_reading(tmp_path: Path) -> None:
    """A FIFO would block forever and /dev/zero would never end: refuse by file type."""
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    with pytest.raises(LogFormatError) as ei:
        LogReader(fifo)  # returns at once (no writer needed)
    assert str(ei.value) == f"{fifo}: cannot open log (is a FIFO, not a regular file)"
    assert ei.value.offset == -1  # no byte of it was read: no position to name
    with pytest.raises(LogFormatError, match="is a character device, not a regular file"):
        read_log("/dev/zero")
    with pytest.raises(LogFormatError, match="is a directory, not a regular file"):
        list(iter_frames(tmp_path))


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


def test_iter_frames_yields_an_empty_frame(tmp_path: Path) -> None:
    """A zero-length frame is well framed (its body is the reader's business, not the
    frame walker's): iter_frames yields it instead of calling its length malformed."""
    path = tmp_path / "empty-frame.log"
    write_log(path, [], HEADER, {"events": 0})
    data = path.read_bytes()
    end = [o for o, k, _ in iter_frames(path) if k == b"X"][0]
    path.write_bytes(data[:end] + encode_frame(b"E", b"", 1) + data[end:])
    frames = list(iter_frames(path))
    assert [(k, b) for _, k, b in frames][1:] == [(b"E", b""), (b"X", frames[-1][2])]
    assert frames[1][0] == end


def test_record_problem_checks_known_types_payloads_only() -> None:
    """The replayer's record check: a known type must carry its declared keys; a type
    the simulator does not know is taken with any map (tools forge such logs)."""
    from fadumpsim.events import records, types
    assert types.known("cmd.run") and not types.known("toy.ping")
    good = [1, 0, "sim", "kernel", "cmd.run", 0, 0, {"index": 0, "command": "free -m"}]
    assert records.record_problem(good) is None
    assert records.record_problem(good[:7] + [{"index": 0}]) == (
        "event #1: cmd.run: payload fields ['index'] != declared ['command', 'index']")
    assert records.record_problem(good[:4] + ["toy.ping"] + good[5:7] + [{"any": 1}]) is None


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
    assert not Path(str(dst) + ".partial").exists()

    # identity rewrite is byte-identical
    rewrite_records(path, tmp_path / "same.log", lambda r: r)
    assert (tmp_path / "same.log").read_bytes() == data

    # a frame's checksum covers its position: swapping two intact frames is damage
    fr = frames(path)
    (a0, _, a1), (b0, _, b1) = fr[5], fr[6]
    swapped = data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]
    (tmp_path / "swap.log").write_bytes(swapped)
    h, got, trailer, err = read_log(tmp_path / "swap.log")
    assert got == RECORDS[:5] and (err.cause, err.offset) == ("checksum mismatch", a0)

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
    rnd = random.Random(3)
    records = [rec(i, {"blob": rnd.randbytes(100)}) for i in range(1, 20001)]  # ~2 MB
    w = LogWriter(p, HEADER)
    for r in records:  # more than the write buffer: what the OS has if the process dies now
        w.append(r)
    assert not p.exists()
    r = LogReader(str(p) + ".partial")
    got = r.records()
    assert 0 < len(got) < 20000 and got == records[:len(got)]
    assert r.error.cause in ("missing end of log (run did not finish)", "truncated record")
    w.close()
    assert read_log(p)[1] == records


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
    assert list(read_log(p)[0]) == ["format_version", "event_schema", *HEADER]
    with pytest.raises(ValueError, match="event_schema"):
        LogWriter(tmp_path / "s.log", dict(HEADER, event_schema={"cmd.run": 1}))
    with pytest.raises(ValueError, match="nesting deeper than 32"):
        with LogWriter(tmp_path / "d.log", HEADER) as w:
            w.append(rec(1, {"d": _nested(40)}))
    assert read_log(tmp_path / "d.log")[1:] == ([], {"error": "CodecError('nesting deeper than 32')"}, None)


# --------------------------------------------------------------------------- safe writing

def test_second_writer_of_a_name_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    p = tmp_path / "run.log"
    w = LogWriter(p, HEADER)
    w.append(rec(1))
    with pytest.raises(LogBusyError) as ei:
        LogWriter(p, HEADER)
    assert ei.value.filename == str(p) and "being written by another run" in str(ei.value)
    assert isinstance(ei.value, OSError)
    w.append(rec(2))
    w.close()
    assert read_log(p)[1] == RECORDS[:2]  # the refused writer did not touch it
    assert not Path(str(p) + ".lock").exists()
    with LogWriter(p, HEADER) as w2:  # free again
        w2.append(rec(1))


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys
    p = tmp_path / "run.log"
    w = LogWriter(p, HEADER)
    code = ("import sys\nfrom fadumpsim.events.logfile import LogWriter, LogBusyError\n"
            "try:\n    LogWriter(sys.argv[1], {})\nexcept LogBusyError as e:\n"
            "    print(e); sys.exit(2)\n")
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and "being written by another run" in r.stdout, r
    w.close()
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_partial_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    p = tmp_path / "run.log"
    Path(str(p) + ".partial").symlink_to(victim)
    write_log(p, RECORDS[:2])
    assert victim.read_text() == "precious"
    assert read_log(p)[1] == RECORDS[:2] and not Path(str(p) + ".partial").exists()
    Path(str(p) + ".lock").symlink_to(victim)  # nor the lock file
    with pytest.raises(LogWriteError):
        LogWriter(p, HEADER)
    assert victim.read_text() == "precious"


def test_stale_partial_of_a_crashed_run_is_replaced(tmp_path: Path) -> None:
    p = tmp_path / "run.log"
    Path(str(p) + ".partial").write_bytes(b"half a log")
    write_log(p, RECORDS[:3])
    assert read_log(p)[1:] == (RECORDS[:3], {"events": 3, "outcome": "pass"}, None)


def test_failed_write_leaves_no_file_and_releases_the_lock(tmp_path: Path, monkeypatch) -> None:
    import errno
    p = tmp_path / "full.log"
    w = LogWriter(p, HEADER)
    w.append(rec(1))

    def enospc(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(L.os, "write", enospc)
    with pytest.raises(LogWriteError) as ei:
        w.close()
    monkeypatch.undo()
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(p) + ".partial"
    assert sorted(x.name for x in tmp_path.iterdir()) == []  # no final, partial or lock
    write_log(p, RECORDS[:1])  # the name is free again


@pytest.mark.parametrize("durable, fsyncs", [(True, 2), (False, 0)])
def test_fsync_once_at_close_only_when_durable(tmp_path: Path, monkeypatch, durable, fsyncs) -> None:
    """A log the user named is fsynced once (file, then its directory for the rename);
    internal re-recordings (durable=False) never wait for the disk."""
    calls = []
    real = os.fsync
    monkeypatch.setattr(L.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    monkeypatch.setattr(L, "_WRITE_FLUSH", 1000)
    w = LogWriter(tmp_path / "f.log", HEADER, durable=durable)
    for i in range(1, 3001):  # many buffer flushes: none of them fsyncs
        w.append(rec(i, {}))
    assert calls == [] and os.path.getsize(str(tmp_path / "f.log") + ".partial") > 30000
    w.close()
    assert len(calls) == fsyncs
    assert len(read_log(tmp_path / "f.log")[1]) == 3000


@pytest.mark.parametrize("bad, why", [
    ({"seq": 1}, "record is a dict, not a list"),
    (7, "record is a int, not a list"),
    ((1, 0, "a", "b", "t", 0, 1, {}), "record is a tuple, not a list"),
])
def test_append_names_a_record_that_is_not_a_list(tmp_path: Path, bad, why) -> None:
    w = LogWriter(str(tmp_path / "x.fadlog"), {"seed": 0})
    with pytest.raises(ValueError) as e:
        w.append(bad)
    assert str(e.value).endswith(why)
    w.abort({})


def test_reading_a_log_prints_no_warning(sample, recwarn) -> None:
    import warnings
    path, _data = sample
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        header, got, trailer, err = read_log(path)
    assert err is None and got == RECORDS


@pytest.mark.parametrize("bad, why", [
    ([1, 0, "a", "b", "t", 0, 1], "record has 7 fields, not 8"),
    ([2, 1, "a", "b", "t", 0, 1, {}], "record seq 2 is out of sequence (expected 1)"),
    ([1, -1, "a", "b", "t", 0, 1, {}], "record field time -1 is not an unsigned 64-bit int"),
])
def test_append_names_what_is_wrong_with_a_record(tmp_path: Path, bad, why) -> None:
    w = LogWriter(str(tmp_path / "x.fadlog"), {"seed": 0})
    with pytest.raises(ValueError) as e:
        w.append(bad)
    assert str(e.value) == f"{tmp_path / 'x.fadlog'}: {why}"
    w.append([1, 0, "a", "b", "t", 0, 1, {}])  # the right record still goes in
    w.close({})


def test_a_directory_that_cannot_be_opened_skips_its_fsync(tmp_path: Path, monkeypatch) -> None:
    from fadumpsim.events import logfile as L
    real_open = os.open

    def no_dirs(p, flags, *a):
        if os.path.isdir(p):
            raise PermissionError(13, "Permission denied", p)
        return real_open(p, flags, *a)

    monkeypatch.setattr(L.os, "open", no_dirs)
    calls = []
    monkeypatch.setattr(L.os, "fsync", lambda fd: calls.append(fd))
    L._fsync_dir(str(tmp_path / "x.fadlog"))  # best effort: no error, nothing fsynced
    assert calls == []


def test_a_readers_error_describes_its_last_read(sample) -> None:
    path, _data = sample
    r = LogReader(path)
    r.error = LogFormatError(str(path), 7, "left over from an earlier read")
    assert list(r) == RECORDS
    assert r.error is None


def test_a_frame_length_of_more_than_five_varint_bytes_is_malformed(tmp_path: Path) -> None:
    path, off = _forge(tmp_path, b"E" + b"\x80" * 5)
    with pytest.raises(LogFormatError) as e:
        list(iter_frames(path))
    assert (e.value.cause, e.value.offset) == ("malformed frame length", off)
