"""The reader's optional C fast path (events/_cdecode.c) against the pure-Python path.

The C path decodes frame by frame and must stop, having changed nothing, at every frame
it is not sure of; the reference path (logfile._decode_slow) then decides that frame.
Each forged frame below is put in the middle of a plain log and read by both backends:
same records (same types, same key order), same damage offset and cause. The direct
calls check that C stopped exactly there, with the decoder state (names, time, step,
inflated bytes, deflate stream) as the reference leaves it after the records before.
tests/test_log_decode.py runs its generated-log tests against both backends too.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fadumpsim.events import batch, codec
from fadumpsim.events import logfile as L
from fadumpsim.events.logfile import LogReader
from tests.test_log_decode import (FAST, HEADER, M64, deep, forged_log, records, tagged, toy,
                                   write)

built = pytest.mark.skipif(L._cdecode is None, reason="the C fast path is not built")


def test_the_extension_is_built_wherever_a_compiler_is() -> None:
    """A broken C build must not hide behind the optional build: where gcc/cc and the
    Python headers exist (developers' machines, CI), the extension must have been built
    and imported."""
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not (shutil.which("gcc") or shutil.which("cc")) or not os.path.exists(headers):
        pytest.skip("no C compiler or Python headers here: the pure-Python path is the reader")
    assert L._cdecode is not None, "events/_cdecode.c did not build: pip install -e . and look"
    assert L.USE_C == (os.environ.get("FADUMPSIM_PURE_DECODE", "") in ("", "0"))


@built
def test_environment_variable_selects_the_pure_path() -> None:
    code = "from fadumpsim.events import logfile as L; print(L.USE_C)"
    for value, want in (("1", "False"), ("0", "True"), (None, "True")):
        env = {k: v for k, v in os.environ.items() if k != "FADUMPSIM_PURE_DECODE"}
        if value is not None:
            env["FADUMPSIM_PURE_DECODE"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == want


@built
@FAST
@given(data=st.binary(max_size=300), seed=st.integers(0, M64 >> 32))
def test_crc32_is_zlibs(data: bytes, seed: int) -> None:
    assert L._cdecode.crc32(data, seed) == zlib.crc32(data, seed)


# --- both backends on one forged frame --------------------------------------------------------

def read_with(path: Path, monkeypatch, use_c: bool, max_record: int = L.MAX_RECORD) -> tuple:
    with monkeypatch.context() as m:
        m.setattr(L, "USE_C", use_c)
        r = LogReader(path, max_record=max_record)
        recs = r.records()
    return recs, (r.error.offset if r.error else None), (r.error.cause if r.error else None)


def encoder() -> codec.RecordEncoder:
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)  # the stream starts with the header
    return enc


AT = 40  # the forged frame's index: the toy records before it define every name


def forged(tmp_path: Path, body: bytes | None = None, *, recs: int = 60,
           make=None) -> tuple[Path, list, list[int]]:
    """A log of toy records with frame AT replaced by `body` (or make(encoder))."""
    enc = encoder()
    rs = toy(recs)
    bodies = [enc.body(r) for r in rs[:AT]]
    bodies.append(make(enc) if make else body)
    bodies += [enc.body(r) for r in rs[AT + 1:]]
    path = tmp_path / "f.fadlog"
    return path, rs, forged_log(path, bodies)


def same_both_ways(path: Path, monkeypatch, max_record: int = L.MAX_RECORD) -> tuple:
    c = read_with(path, monkeypatch, True, max_record)
    py = read_with(path, monkeypatch, False, max_record)
    assert tagged(c[0]) == tagged(py[0])
    assert c[1:] == py[1:]
    return c


def c_stops_at(path: Path, offs: list[int], k: int, max_record: int = L.MAX_RECORD) -> None:
    """Direct call: after the reference decoded records 1..AT-5, C (started there) stops
    at frame k, with the state the reference has after records 1..k, and without
    touching the deflate stream."""
    r = LogReader(path, max_record=max_record)
    buf = path.read_bytes()[r.data_start:]
    ref = codec.RecordDecoder(r._stream.copy(), max_record)
    want: list = []
    pos, exp, cause = L._decode_slow(buf, 0, 1, max_record, ref, want, k)
    assert cause is None and exp == k + 1
    dec = codec.RecordDecoder(r._stream.copy(), max_record)
    got: list = []
    p, e, _ = L._decode_slow(buf, 0, 1, max_record, dec, got, AT - 5)

    class NoInflate:
        def chunk(self, *a):
            raise AssertionError("C inflated a payload of a frame it did not take")

    dec.stream = NoInflate()
    res = L._cdecode.decode(buf, p, e, max_record, dec, got, batch.INFLATE_BUDGET)
    assert res == (pos, exp, None)
    assert tagged(got) == tagged(want)
    assert (dec.names, dec.step, dec.time, dec.inflated) == (ref.names, ref.step, ref.time,
                                                             ref.inflated)


def raw_map(*pairs: bytes) -> bytes:
    return bytes([0x80 | len(pairs) // 2]) + b"".join(pairs)


HEAD = msgpack.packb([0, 40, 41, 42, 1, 1])[1:]  # the six head ints, without the array byte
STOPS = {  # body of a frame C must leave to the reference; None: the reference refuses it
    "new name": (msgpack.packb([0, "fresh", 41, 42, 1, 1, {"n": 1}]), True),
    "ext 2 (map-form payload)": (msgpack.packb([0, 40, 41, 3, 1, 1, msgpack.ExtType(
        2, msgpack.packb({"command": "ls", "index": 0}))]), True),
    "ext 2 of an unknown type": (msgpack.packb([0, 40, 41, 42, 1, 1, msgpack.ExtType(
        2, msgpack.packb({"a": 1}))]), False),
    "ext 1 nested in the payload": (msgpack.packb(
        [0, 40, 41, 42, 1, 1, {"n": msgpack.ExtType(1, b"\x00")}]), False),
    "ext 1 as element 7 of 8": (msgpack.packb(
        [0, 40, 41, 4, 1, 1, 5, msgpack.ExtType(1, b"\x00")]), False),
    "ext 1 then trailing bytes": (msgpack.packb(
        [0, 40, 41, 42, 1, 1, msgpack.ExtType(1, b"\x00")]) + b"\x00", False),
    "timestamp ext in a payload": (msgpack.packb(
        [0, 40, 41, 42, 1, 1, {"t": msgpack.Timestamp(5)}]), True),
    "unknown ext code": (msgpack.packb([0, 40, 41, 42, 1, 1, msgpack.ExtType(7, b"")]), False),
    "int map key": (msgpack.packb([0, 40, 41, 42, 1, 1, {1: 2}], strict_types=False), False),
    "bytes map key": (msgpack.packb([0, 40, 41, 42, 1, 1, {b"k": 2}]), True),
    "nested int map key": (msgpack.packb([0, 40, 41, 42, 1, 1, {"a": {3: 4}}]), False),
    "invalid UTF-8": (b"\x97" + HEAD + raw_map(b"\xa1n", b"\xa2\xff\xfe"), False),
    "surrogate in UTF-8": (b"\x97" + HEAD + raw_map(b"\xa1n", b"\xa3\xed\xa0\x80"), False),
    "24 deep (C's bound)": (msgpack.packb([0, 40, 41, 42, 1, 1, {"a": deep(23)}]), True),
    "31 deep": (msgpack.packb([0, 40, 41, 42, 1, 1, {"a": deep(31)}]), True),
    "33 deep": (msgpack.packb([0, 40, 41, 42, 1, 1, {"a": deep(32)}]), False),
    "too few payload fields": (msgpack.packb([0, 40, 41, 3, 1, 1, 7]), False),
    "too many payload fields": (msgpack.packb([0, 40, 41, 3, 1, 1, 7, "ls", 1]), False),
    "payload a list": (msgpack.packb([0, 40, 41, 42, 1, 1, [1]]), False),
    "two payload maps": (msgpack.packb([0, 40, 41, 42, 1, 1, {}, {}]), False),
    "six elements": (msgpack.packb([0, 40, 41, 42, 1, 1]), False),
    "five elements": (msgpack.packb([0, 40, 41, 42, 1]), False),
    "not an array": (msgpack.packb({"a": 1}), False),
    "dstep 2**63": (msgpack.packb([1 << 63, 40, 41, 42, 1, 1, {}]), False),
    "dcause -1": (msgpack.packb([0, 40, 41, 42, -1, 1, {}]), False),
    "chan_seq -1": (msgpack.packb([0, 40, 41, 42, 1, -1, {}]), False),
    "src -1": (msgpack.packb([0, -1, 41, 42, 1, 1, {}]), False),
    "bool src": (msgpack.packb([0, True, 41, 42, 1, 1, {}]), False),
    "float dstep": (msgpack.packb([0.0, 40, 41, 42, 1, 1, {}]), False),
    "type one past the names": (msgpack.packb([0, 40, 41, len(codec.PRESET_NAMES) + 7, 1, 1,
                                               {}]), False),
    "trailing bytes": (msgpack.packb([0, 40, 41, 42, 1, 1, {}]) + b"\xc0", False),
    "truncated body": (msgpack.packb([0, 40, 41, 42, 1, 1, {"a": "xyz"}])[:-1], False),
    "0xc1": (b"\xc1", False),
    "empty body": (b"", False),
    "array of 2**20 + 1": (b"\xdd\x00\x10\x00\x01" + b"\xc0" * 12, False),
    "map declaring more than the body": (b"\x97" + HEAD + b"\xdf\x00\x00\x10\x00", False),
}


@built
@pytest.mark.parametrize("name", sorted(STOPS))
def test_c_stops_at_what_it_is_not_sure_of(tmp_path: Path, monkeypatch, name: str) -> None:
    body, accepted = STOPS[name]
    path, _, offs = forged(tmp_path, body)
    recs, off, cause = same_both_ways(path, monkeypatch)
    if accepted:  # the reference takes it: so must the reader, through the reference
        assert cause is None and len(recs) == 60, cause
    else:
        assert off == offs[AT] and len(recs) == AT, cause
    c_stops_at(path, offs, AT)


@built
@pytest.mark.parametrize("wire", [[-(1 << 63), 40, 41, 42, 1, 1, {}],
                                  [(1 << 63) - 1, 40, 41, 42, 0, M64, {}],
                                  [0, 40, 41, len(codec.PRESET_NAMES) + 6, 1, 1, {}]])
def test_c_takes_the_edges_of_the_ranges(tmp_path: Path, monkeypatch, wire) -> None:
    """dstep -2**63 and 2**63-1, dcause 0, chan_seq 2**64-1, the last name index."""
    path, _, offs = forged(tmp_path, msgpack.packb(wire))
    recs, off, cause = same_both_ways(path, monkeypatch)
    assert cause is None and len(recs) == 60
    r = LogReader(path)
    buf = path.read_bytes()[r.data_start:]
    dec = codec.RecordDecoder(r._stream.copy(), L.MAX_RECORD)
    got: list = []
    p, e, _ = L._decode_slow(buf, 0, 1, L.MAX_RECORD, dec, got, AT - 5)
    pos, exp, cause = L._cdecode.decode(buf, p, e, L.MAX_RECORD, dec, got, 1 << 20)
    assert exp == 61 and tagged(got) == tagged(recs)


@built
def test_c_stops_at_framing_it_is_not_sure_of(tmp_path: Path, monkeypatch) -> None:
    """Checksum, lengths (limit, non-shortest varint), truncation, a non-E frame."""
    path, rs, offs = forged(tmp_path, make=lambda enc: enc.body(toy(AT + 1)[AT]))
    data = path.read_bytes()
    o = offs[AT]
    cases = {
        "checksum": (data[:o + 7] + bytes([data[o + 7] ^ 0x10]) + data[o + 8:], "checksum mismatch"),
        "non-shortest length": (data[:o + 1] + bytes([data[o + 1] | 0x80, 0]) + data[o + 2:],
                                "malformed frame length"),
        "truncated": (data[:o + 5], "truncated record"),
        "X frame": (data[:o] + L._encode_end(AT, {}), None),
        "unknown kind": (data[:o] + b"Q" + data[o + 1:], "unknown frame kind 0x51"),
    }
    for name, (bad, cause) in cases.items():
        path.write_bytes(bad)
        recs, off, got = same_both_ways(path, monkeypatch)
        assert (len(recs), got) == (AT, cause), name
        assert off == (o if cause else None), name
        if name not in ("truncated", "X frame", "unknown kind"):
            c_stops_at(path, offs, AT)
    # a length over max_record, for a frame that the default limit takes
    big = msgpack.packb([0, 40, 41, 42, 1, 1, {"s": "x" * 200}])
    p2, _, offs2 = forged(tmp_path, big)
    recs, off, cause = same_both_ways(p2, monkeypatch, max_record=len(big) - 1)
    assert (len(recs), off, cause) == (AT, offs2[AT], f"record length {len(big)} exceeds limit")
    c_stops_at(p2, offs2, AT, max_record=len(big) - 1)


@built
@settings(FAST, max_examples=80)
@given(recs=records(), which=st.floats(0, 1),
       edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=3))
def test_c_equals_pure_on_mutated_bodies_with_valid_checksums(tmp_path: Path, monkeypatch, recs,
                                                              which, edits) -> None:
    """Generated records (deflated payloads, ext 3 lists, every msgpack type) with bytes
    of one body overwritten and the frame's checksum made valid again: the msgpack
    decoder in C meets near-valid input, and must agree with the pure path."""
    enc = encoder()
    bodies = [enc.body(r) for r in recs]
    i = int(which * (len(bodies) - 1))
    b = bytearray(bodies[i])
    for at, v in edits:
        b[int(at * (len(b) - 1))] = v
    bodies[i] = bytes(b)
    path = tmp_path / "m.fadlog"
    forged_log(path, bodies)
    same_both_ways(path, monkeypatch)


# --- everything C decodes itself: same values, same types -------------------------------------

TAKEN = {
    "nil bool float bin": {"a": None, "b": True, "c": False, "d": 1.5, "e": b"\x00\xff"},
    "ints of every width": {"i": [0, 127, 128, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32,
                                  M64, -1, -32, -33, -128, -129, -32768, -32769,
                                  -(1 << 31) - 1, -(1 << 63)]},
    "long str and bin": {"s": "é" * 40 + "x" * 300, "b": b"y" * 70000},
    "long array and map": {"l": list(range(20)), "m": {f"k{i}": i for i in range(17)}},
    "nested": {"a": [{"b": [[], {}]}, {"c": deep(20)}]},
    "unicode keys": {"ключ": "значение", "🙂": ""},
}


@built
@pytest.mark.parametrize("name", sorted(TAKEN))
def test_c_decodes_values_as_msgpack_does(tmp_path: Path, monkeypatch, name: str) -> None:
    payload = TAKEN[name]
    rec = toy(AT + 1)[AT]
    rec[7] = payload
    path, _, offs = forged(tmp_path, make=lambda enc: enc.body(rec), recs=AT + 1)
    recs, off, cause = same_both_ways(path, monkeypatch)
    assert cause is None and tagged(recs[AT]) == tagged(rec)


@built
def test_float32_duplicate_keys_and_wide_headers(tmp_path: Path, monkeypatch) -> None:
    """Encodings the writer never makes but msgpack reads: float 32, a repeated key
    (the last value wins, at the first key's place), array 16 / map 16 / str 8 headers
    for short contents."""
    bodies = [
        b"\x97" + HEAD + raw_map(b"\xa1f", b"\xca\x3f\xc0\x00\x00", b"\xa1g", b"\xc0"),
        b"\x97" + HEAD + raw_map(b"\xa1a", b"\x01", b"\xa1b", b"\x02", b"\xa1a", b"\x03"),
        b"\xdc\x00\x07" + HEAD + b"\xde\x00\x01\xd9\x01a\xdc\x00\x01\x05",
        b"\x97" + b"\xd3" + (5).to_bytes(8, "big") + HEAD[1:] + b"\x80",
    ]
    for body in bodies:
        path, _, offs = forged(tmp_path, body, recs=AT + 3)
        recs, off, cause = same_both_ways(path, monkeypatch)
        assert cause is None and len(recs) == AT + 3
    assert recs[AT][1] - recs[AT - 1][1] == (recs[AT - 1][1] - recs[AT - 2][1]) + 5


@built
def test_time_and_cause_wrap_around_2_64(tmp_path: Path, monkeypatch) -> None:
    recs = [[1, M64 - 5, "kernel", "sim", "x.y", 0, 0, {}],
            [2, 3, "kernel", "sim", "x.y", 1, M64, {}],
            [3, M64, "kernel", "sim", "x.y", M64, 7, {}],
            [4, M64, "kernel", "sim", "x.y", 2, 0, {}],
            [5, 0, "kernel", "sim", "x.y", 5, 0, {}]] + [
        [i, (i * (1 << 62)) & M64, "kernel", "sim", "x.y", (i + 3) & M64, i, {"i": i}]
        for i in range(6, 40)]
    path = tmp_path / "w.fadlog"
    write(path, recs)
    got, off, cause = same_both_ways(path, monkeypatch)
    assert cause is None and tagged(got) == tagged(recs)


# --- deflated payloads: inflated by C, damage named as the reference names it ----------------

def deflated(enc: codec.RecordEncoder, typ: int, inner: bytes) -> bytes:
    """A record of type index `typ` whose payload is ext 1 of `inner` in the log's stream."""
    return msgpack.packb([0, 40, 41, typ, 1, 1, msgpack.ExtType(1, enc._stream.chunk(inner))])


CMD_RUN = codec.PRESET_NAMES.index("cmd.run")
X_Y = 42  # a preset actor name, used as a type here: not a simulator type (payload: a map)
DEFLATED = {  # name: (make body, cause or None)
    "bad deflate data": (lambda enc: msgpack.packb(
        [0, 40, 41, X_Y, 1, 1, msgpack.ExtType(1, b"\xff\xff\xff")]),
        "malformed record (bad deflate data"),
    "inflated bytes not msgpack": (lambda enc: deflated(enc, X_Y, b"\xc1"),
                                   "malformed record (undecodable payload (FormatError))"),
    "inflated trailing bytes": (lambda enc: deflated(enc, X_Y, msgpack.packb({}) + b"\x00"),
                                "malformed record (undecodable payload (ExtraData))"),
    "wrong field count": (lambda enc: deflated(enc, CMD_RUN, msgpack.packb([1])),
                          "malformed record (cmd.run payload does not have 2 fields)"),
    "list for an unknown type": (lambda enc: deflated(enc, X_Y, msgpack.packb([1])),
                                 "malformed record (payload is a list, not a map)"),
    "33 deep": (lambda enc: deflated(enc, X_Y, msgpack.packb({"a": deep(32)})),
                "malformed record (nesting deeper than 32)"),
    "30 deep (the reference takes it)": (
        lambda enc: deflated(enc, X_Y, msgpack.packb({"a": deep(29)})), None),
    "ext 3 too short": (lambda enc: deflated(enc, X_Y, msgpack.packb(
        {"r": msgpack.ExtType(3, msgpack.packb([1, 2]))})),
        "malformed record (undecodable payload (ValueError))"),
    "ext 3 of a non-int": (lambda enc: deflated(enc, X_Y, msgpack.packb(
        {"r": msgpack.ExtType(3, msgpack.packb([1] * 7 + [True]))})),
        "malformed record (undecodable payload (ValueError))"),
    "ext 3 wrapping around": (lambda enc: deflated(enc, X_Y, msgpack.packb(
        {"r": msgpack.ExtType(3, msgpack.packb([M64, 1, -1, -1, 5, -(1 << 63), 0, 7]))})), None),
    "ext 3 as the whole payload": (lambda enc: deflated(
        enc, X_Y, msgpack.packb(msgpack.ExtType(3, msgpack.packb([1] * 8)))),
        "malformed record (payload is a list, not a map)"),
    "ext 9 inside": (lambda enc: deflated(enc, X_Y, msgpack.packb(
        {"r": msgpack.ExtType(9, b"")})),
        "malformed record (undecodable payload (ValueError))"),
    "timestamp inside": (lambda enc: deflated(enc, X_Y, msgpack.packb(
        {"t": msgpack.Timestamp(1)})), None),
    "int key inside": (lambda enc: deflated(enc, X_Y, msgpack.packb({1: 1}, strict_types=False)),
                       "malformed record (undecodable payload (ValueError))"),
    "positional payload": (lambda enc: deflated(enc, CMD_RUN, msgpack.packb([0, "ls" * 30])),
                           None),
}


@built
@pytest.mark.parametrize("name", sorted(DEFLATED))
def test_deflated_payload_damage_is_named_as_the_reference_names_it(tmp_path: Path, monkeypatch,
                                                                    name: str) -> None:
    make, cause = DEFLATED[name]
    path, _, offs = forged(tmp_path, make=make)
    recs, off, got = same_both_ways(path, monkeypatch)
    if cause is None:
        assert got is None and len(recs) == 60
    else:
        assert off == offs[AT] and len(recs) == AT and got.startswith(cause), got


@built
def test_deflated_data_over_the_limit_is_named_as_the_reference_names_it(tmp_path: Path,
                                                                         monkeypatch) -> None:
    make = lambda enc: deflated(enc, X_Y, msgpack.packb({"s": "a" * 5000}))  # noqa: E731
    path, _, offs = forged(tmp_path, make=make)
    recs, off, cause = same_both_ways(path, monkeypatch, max_record=1000)
    assert (len(recs), off, cause) == (AT, offs[AT], "malformed record (deflated data expands "
                                                     "beyond 1000 bytes)")


def _count_slow_frames(monkeypatch) -> list[int]:
    """Turn the C path on and count the frames each reference-path call decodes."""
    slow: list[int] = []
    real = L._decode_slow

    def counting(buf, pos, exp, *a):
        res = real(buf, pos, exp, *a)
        slow.append(res[1] - exp)
        return res

    monkeypatch.setattr(L, "_decode_slow", counting)
    monkeypatch.setattr(L, "USE_C", True)
    return slow


@built
def test_deflated_payloads_go_through_c_and_the_budget_ends_batches(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """Payloads of 40 KB that deflate to a few bytes: C decodes them (the reference only
    sees the frame with the new name), and a batch ends once 1 MiB is inflated."""
    recs = [[i, i, "kernel", "sim", "blob", i - 1, 0, {"s": "a" * 40_000 + str(i)}]
            for i in range(1, 200)]
    path = tmp_path / "i.fadlog"
    write(path, recs)
    slow = _count_slow_frames(monkeypatch)
    r = LogReader(path)
    sizes = [len(b) for b in r._batches()]
    assert r.error is None and sum(sizes) == len(recs)
    assert sum(slow) == 1  # the first frame (new name "blob")
    # the batches the budget makes: each ends at the record that takes it over 1 MiB
    want, used, k = [], 0, 0
    for rec in recs:
        used += len(msgpack.packb(rec[7]))
        k += 1
        if used > batch.INFLATE_BUDGET:
            want.append(k)
            used = k = 0
    assert sizes[:len(want)] == want and sum(sizes[len(want):]) == k
    assert LogReader(path).records() == recs


@built
def test_a_plain_log_goes_through_c(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t.fadlog"
    recs = toy(20_000)
    write(path, recs)
    slow = _count_slow_frames(monkeypatch)
    assert tagged(LogReader(path).records()) == tagged(recs)
    assert sum(slow) <= 7  # the frames that bring the 7 new names


@built
def test_exceptions_inside_c_propagate(tmp_path: Path, monkeypatch) -> None:
    """Anything but a CodecError raised by the Python code C calls is not damage."""
    path, _, _ = forged(tmp_path, make=lambda enc: deflated(enc, X_Y, msgpack.packb({"a": 1})))

    def boom(self, data, limit):
        raise MemoryError("inflate")

    monkeypatch.setattr(L, "USE_C", True)
    r = LogReader(path)  # the header is inflated here, before the patch
    monkeypatch.setattr(codec.Inflater, "chunk", boom)
    with pytest.raises(MemoryError, match="inflate"):
        r.records()


@built
def test_no_reference_leaks_on_any_path(tmp_path: Path) -> None:
    """Decoding the same logs again and again (deflated payloads taken, damaged, handed
    to the reference; frames C stops at) does not grow Python's heap: every object C
    makes is released on every path."""
    import gc
    import tracemalloc
    paths = []
    for i, name in enumerate(["bad deflate data", "ext 3 wrapping around", "30 deep (the "
                              "reference takes it)", "wrong field count", "positional payload"]):
        (tmp_path / str(i)).mkdir()
        paths.append(forged(tmp_path / str(i), make=DEFLATED[name][0])[0])
    for i, name in enumerate(["new name", "invalid UTF-8", "int map key", "33 deep"]):
        (tmp_path / f"s{i}").mkdir()
        paths.append(forged(tmp_path / f"s{i}", STOPS[name][0])[0])
    big = tmp_path / "big.fadlog"
    write(big, [[i, i, "kernel", "sim", "blob", i - 1, 0, {"s": "a" * 400 + str(i),
                                                          "r": list(range(i, i + 9))}]
                for i in range(1, 300)])
    paths.append(big)

    def once() -> None:
        for p in paths:
            LogReader(p).records()

    once()
    gc.collect()
    tracemalloc.start()
    try:
        once()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            once()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, grown


@built
def test_shared_map_keys_are_the_right_keys(tmp_path: Path, monkeypatch) -> None:
    """C shares short ASCII map keys through a small cache: thousands of keys that
    collide in it, differ only in their last character, or are 32 / 33 bytes long
    (the cache's bound) or not ASCII, in maps deflated or not, come back exactly."""
    import string
    chars = string.ascii_letters + string.digits
    keys = ["".join(p) for p in itertools.product(chars, repeat=2)]  # 3,844 keys
    keys += ["k" * 31 + c for c in "ab"] + ["k" * 32 + c for c in "ab"] + ["ké", "kè", "日本"]
    recs = []
    for i in range(0, len(keys), 25):
        part = keys[i:i + 25]
        for p in (part, part[::-1], part[1:] + part[:1]):
            recs.append({k: j for j, k in enumerate(p)})
            recs.append({k: j for j, k in enumerate(p[:3])})  # small: not deflated
    # keys sharing a cache slot where one is a prefix of the other (the slot function
    # copied from events/_cdecode.c, key_str): looked up one after the other
    pairs = [(k, k + c) for k in keys[:3844] for c in chars
             if _key_slot(k.encode()) == _key_slot((k + c).encode())]
    assert len(pairs) > 20
    for a, b in pairs:
        recs += [{b: 1}, {a: 2}, {b: 3}]
    recs = [[i, i, "kernel", "sim", "x.y", i - 1, 0, p] for i, p in enumerate(recs, 1)]
    path = tmp_path / "k.fadlog"
    write(path, recs)
    got, off, cause = same_both_ways(path, monkeypatch)
    assert cause is None and tagged(got) == tagged(recs)


def _key_slot(b: bytes) -> int:
    h = len(b)
    for x in b:
        h = (h * 31 + x) & 0xFFFFFFFF
    return (h ^ (h >> 9)) % 512


@built
def test_a_shared_non_ascii_key_does_not_stand_for_invalid_utf8(tmp_path: Path,
                                                               monkeypatch) -> None:
    """After a key such as "anÐ" (UTF-8 61 6e c3 90), a key of the bytes 61 6e d0 (the
    same in Latin-1: invalid UTF-8) that falls in the same cache slot is still
    undecodable."""
    import string
    key = next(k for k in ("".join(p) + chr(c) for p in
                           itertools.product(string.ascii_letters, repeat=2)
                           for c in range(0xC0, 0x100))
               if _key_slot(k.encode()) == _key_slot(k.encode("latin-1")))
    body = b"\x97" + HEAD + raw_map(b"\xa3" + key.encode("latin-1"), b"\x01")
    enc = encoder()
    rs = toy(AT)
    rs[AT - 1][7] = {key: 1}
    bodies = [enc.body(r) for r in rs] + [body]
    path = tmp_path / "u.fadlog"
    offs = forged_log(path, bodies)
    recs, off, cause = same_both_ways(path, monkeypatch)
    assert (len(recs), off, cause) == (AT, offs[AT], "undecodable record")
