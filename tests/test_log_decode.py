"""The log reader's batch fast path (events/batch.py) against references.

1. An independent reference decoder written here (frame by frame: struct, zlib.crc32,
   msgpack.unpackb, the format of docs/log-format.md) over many generated logs, intact
   and damaged (cut anywhere, a byte flipped anywhere): the reader yields the same
   records, stops at the same byte offset, returns the same trailer.
2. The reader with the batch path against the reader forced onto its one-by-one path
   (logfile._decode_slow) over CRC-valid forged frames (wrong shapes, bools, floats,
   new names, nested exts, deep payloads, two objects in one body...): the same records
   and the same error, cause included.
3. What pins the fast path: it decodes almost every frame of a plain log, one msgpack
   Unpacker per batch, and block (1 MiB read) and batch boundaries do not move a damage
   offset or skip a checksum.

Tests 1 and 2 and the damage tests run against both backends (`backend`: the pure-Python
batch path, and the C fast path events/_cdecode.c when it is built); the tests of the
batch path's own mechanics force the pure path (`pure`). tests/test_cdecode.py has the
C path's own tests.
"""
from __future__ import annotations

import struct
import zlib
from itertools import accumulate
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadumpsim.events import batch, codec
from fadumpsim.events import logfile as L
from fadumpsim.events.logfile import LogFormatError, LogReader, LogWriter, encode_frame

FAST = settings(deadline=None, database=None, derandomize=True, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HEADER = {"simulator_version": "t", "scenario": {"name": "t"}, "seed": 1, "strategy": "fifo",
          "strategy_params": {}}
M64 = (1 << 64) - 1
SYNC = b"\x00\x00\xff\xff"


# --- the reference decoder ------------------------------------------------------------------

def _varint(data: bytes, i: int) -> tuple[int, int] | None:
    n = shift = 0
    for k in range(5):
        if i + k >= len(data):
            return None
        b = data[i + k]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n, i + k + 1) if not (b == 0 and k) else None
        shift += 7
    return None


def _u64s(code: int, data: bytes) -> list:
    assert code == 3
    d = msgpack.unpackb(data)
    return [v & M64 for v in accumulate(d)]


def reference(path: Path) -> tuple[list, int | None, dict | None]:
    """(records, offset of the first damaged frame or None, trailer) of a log whose
    header is intact: frame by frame, everything spelled out."""
    data = path.read_bytes()
    assert data[:16] == L.MAGIC and struct.unpack_from("<I", data, 16)[0] == 2
    n, h = _varint(data, 21)
    body = data[h + 4:h + 4 + n]
    assert data[20] == ord("H") and zlib.crc32(b"H" + body) == struct.unpack_from("<I", data, h)[0]
    z = zlib.decompressobj(-15, codec._ZDICT)
    msgpack.unpackb(z.decompress(body + SYNC))
    pos, k, names, time, step, out = h + 4 + n, 1, list(codec.PRESET_NAMES), 0, 0, []
    while True:
        if pos == len(data):
            return out, pos, None
        kind = data[pos]
        vi = _varint(data, pos + 1)
        if kind not in b"EX" or vi is None:
            return out, pos, None
        n, h = vi
        if h + 4 + n > len(data):
            return out, pos, None
        (crc,) = struct.unpack_from("<I", data, h)
        body = data[h + 4:h + 4 + n]
        if kind == ord("X"):
            if zlib.crc32(b"X" + body) != crc:
                return out, pos, None
            count, trailer = msgpack.unpackb(body)
            if count != k - 1:
                return out, pos, None
            if h + 4 + n != len(data):
                return out, h + 4 + n, None
            return out, None, trailer
        if zlib.crc32(b"E" + struct.pack("<Q", k) + body) != crc:
            return out, pos, None
        try:
            w = msgpack.unpackb(body)
            ds, s, d, t, dc, cs = w[:6]
            ends = []
            for v in (s, d, t):
                if isinstance(v, str):
                    names.append(v)
                    ends.append(v)
                else:
                    ends.append(names[v])
            fields = codec.WIRE_FIELDS.get(ends[2])
            last = w[-1]
            if isinstance(last, msgpack.ExtType) and last.code == 1:
                inner = msgpack.unpackb(z.decompress(last.data + SYNC), ext_hook=_u64s)
                payload = dict(zip(fields, inner)) if fields is not None else inner
            elif isinstance(last, msgpack.ExtType):
                payload = msgpack.unpackb(last.data)
            else:
                payload = dict(zip(fields, w[6:])) if fields is not None else w[6]
        except Exception:
            return out, pos, None
        step = (step + ds) & M64
        time = (time + step) & M64
        out.append([k, time, *ends, (k - dc) & M64, cs, payload])
        k += 1
        pos = h + 4 + n


def tagged(v):
    """`v` with every value's exact type beside it (and dict keys in order), so that
    `tagged(a) == tagged(b)` fails for 1 vs True vs 1.0 or reordered keys."""
    t = type(v)
    if t is list:
        return ("list", [tagged(x) for x in v])
    if t is dict:
        return ("dict", [(tagged(k), tagged(x)) for k, x in v.items()])
    if t is float:
        return ("float", v.hex())
    return (t.__name__, v)


def read(path: Path) -> tuple[list, int | None, dict | None, LogFormatError | None]:
    r = LogReader(path)
    recs = r.records()
    return recs, (r.error.offset if r.error else None), r.trailer, r.error


# --- generated logs ---------------------------------------------------------------------------

SIM_TYPES = sorted(codec.WIRE_FIELDS)
ACTORS = ["sim", "firmware", "kernel", "w0", "w1", "hub", "udev"]
values = st.recursive(
    st.one_of(st.integers(0, M64), st.integers(-(1 << 63), -1), st.text(max_size=12),
              st.booleans(), st.none(), st.binary(max_size=6),
              st.lists(st.integers(0, M64), min_size=8, max_size=12)),
    lambda c: st.one_of(st.lists(c, max_size=4),
                        st.dictionaries(st.text(max_size=4), c, max_size=3)),
    max_leaves=8)


@st.composite
def records(draw: st.DrawFn) -> list:
    n = draw(st.integers(1, 40))
    out, time = [], 0
    for seq in range(1, n + 1):
        time = (time + draw(st.sampled_from([1000, 1000, 0, 7, 1 << 63]))) & M64
        if draw(st.booleans()):
            typ = draw(st.sampled_from(SIM_TYPES))
            payload = {f: draw(values) for f in codec.WIRE_FIELDS[typ]}
        else:
            typ = draw(st.sampled_from(["toy.ping", "toy.pong", "x"]))
            payload = draw(st.dictionaries(st.text(max_size=5), values, max_size=3))
        cause = draw(st.sampled_from([seq - 1, 0, seq + 5]))
        out.append([seq, time, draw(st.sampled_from(ACTORS)), draw(st.sampled_from(ACTORS)),
                    typ, cause & M64, draw(st.integers(0, 300)), payload])
    return out


def toy(n: int, start: int = 1) -> list:
    names = ["hub", "w0", "w1", "w2", "w3"]
    return [[i, i * 1000, names[i % 5], names[(i + 1) % 5], ("toy.ping", "toy.pong")[i % 2],
             i - 1, i // 5 + 1, {"n": i, "from": names[i % 5]}] for i in range(start, n + 1)]


def write(path: Path, recs: list) -> bytes:
    with LogWriter(path, HEADER, durable=False) as w:
        for r in recs:
            w.append(r)
    return path.read_bytes()


def header_end(data: bytes) -> int:
    n, h = _varint(data, 21)
    return h + 4 + n


@pytest.fixture(params=["pure", "c"])
def backend(request, monkeypatch) -> str:
    """The reader's decode path: pure Python (batch + one by one) or the C fast path."""
    if request.param == "c" and L._cdecode is None:
        pytest.skip("the C fast path is not built (tests/test_cdecode.py says if it should be)")
    monkeypatch.setattr(L, "USE_C", request.param == "c")
    return request.param


@pytest.fixture
def pure(monkeypatch) -> None:
    """Tests of the batch path's own mechanics: the pure-Python path."""
    monkeypatch.setattr(L, "USE_C", False)


def small_batches(m: pytest.MonkeyPatch, size: int) -> None:
    """Batches of `size` frames: short generated logs then cross many batch boundaries,
    and most batches (those without a new name) take the batch path."""
    m.setattr(batch, "BATCH", size)
    m.setattr(L, "BATCH", size)


@FAST
@given(recs=records(), cut=st.floats(0, 1), flip=st.floats(0, 1), bit=st.integers(0, 7),
       how=st.sampled_from(["intact", "cut", "flip", "both"]), size=st.sampled_from([2, 3, 5, 512]))
def test_reader_matches_reference_decoder(tmp_path: Path, monkeypatch, backend, recs, cut, flip,
                                          bit, how, size) -> None:
    with monkeypatch.context() as m:
        small_batches(m, size)
        check_against_reference(tmp_path, recs, cut, flip, bit, how)


def check_against_reference(tmp_path: Path, recs, cut, flip, bit, how) -> None:
    path = tmp_path / "g.fadlog"
    data = write(path, recs)
    start = header_end(data)
    if how in ("flip", "both"):  # a flipped bit after the header
        i = start + int(flip * (len(data) - start - 1))
        data = data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]
    if how in ("cut", "both"):
        data = data[:start + int(cut * (len(data) - start))]
    path.write_bytes(data)
    want, want_off, want_trailer = reference(path)
    got, off, trailer, err = read(path)
    assert tagged(got) == tagged(want)
    assert off == want_off, err
    assert trailer == want_trailer
    if how == "intact":
        assert got == recs and err is None
    it = LogReader(path)
    assert list(it) == want  # the streaming path too
    assert (it.error.offset if it.error else None) == want_off


# --- batch path vs the one-by-one path on forged frames ----------------------------------------

def slow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "USE_C", False)
    monkeypatch.setattr(L, "decode_batch", lambda buf, pos, exp, *a: (pos, exp, None, 0))


def both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    fast = read(path)
    with monkeypatch.context() as m:
        slow_only(m)
        slow = read(path)
    return fast, slow


forged_item = st.one_of(
    st.integers(-(1 << 63), M64), st.booleans(), st.floats(allow_nan=False), st.none(),
    st.text(max_size=4), st.sampled_from([0, 1, 40, 41, 44, 1000, -1]),
    st.builds(msgpack.ExtType, st.sampled_from([1, 2, 3, 9]), st.binary(max_size=4)),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
    st.lists(st.integers(0, 9), max_size=3))


def deep(n: int) -> list:
    v: list = []
    for _ in range(n - 1):
        v = [v]
    return v


forged_body = st.one_of(
    st.lists(forged_item, max_size=9).map(msgpack.packb),
    st.tuples(st.integers(0, 3), st.sampled_from([0, 40, 41]), st.sampled_from([0, 41]),
              st.sampled_from([42, 43, 3, 44]), st.integers(0, 3), st.integers(0, 3),
              forged_item).map(lambda t: msgpack.packb(list(t))),
    st.sampled_from([31, 32, 33]).map(lambda d: msgpack.packb([0, 40, 41, 42, 1, 1, {"a": deep(d)}])),
    st.binary(max_size=12),
    st.builds(lambda a, b: msgpack.packb(a) + msgpack.packb(b), st.integers(0, 3),
              st.lists(st.integers(0, 3), max_size=3)))


@FAST
@given(n=st.integers(0, 1100), at=st.lists(st.tuples(st.floats(0, 1), forged_body), max_size=3),
       size=st.sampled_from([2, 7, 512]))
def test_batch_path_equals_one_by_one_path_on_forged_frames(tmp_path: Path, monkeypatch, backend,
                                                            n, at, size) -> None:
    """CRC-valid frames holding anything: the batch path accepts exactly what the
    reference path accepts and reports the same first damage (offset and cause)."""
    with monkeypatch.context() as m:
        small_batches(m, size)
        check_forged(tmp_path, monkeypatch, n, at)


def check_forged(tmp_path: Path, monkeypatch, n, at) -> None:
    recs = toy(n)
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)
    bodies = [enc.body(r) for r in recs]
    for where, body in at:
        bodies.insert(int(where * len(bodies)), body)
    path = tmp_path / "f.fadlog"
    forged_log(path, bodies)
    fast, slow = both(path, monkeypatch)
    assert tagged(fast[0]) == tagged(slow[0])
    assert str(fast[3]) == str(slow[3])
    assert fast[2] == slow[2]


# --- what pins the fast path ------------------------------------------------------------------

def test_plain_log_goes_through_the_batch_path(tmp_path: Path, monkeypatch, pure) -> None:
    path = tmp_path / "t.fadlog"
    recs = toy(20_000)
    write(path, recs)
    slow_frames = []
    real_slow = L._decode_slow
    unpackers = []
    real_unpacker = msgpack.Unpacker

    def counting_slow(buf, pos, expected, *a):
        res = real_slow(buf, pos, expected, *a)
        slow_frames.append(res[1] - expected)
        return res

    def counting_unpacker(*a, **kw):
        unpackers.append(1)
        return real_unpacker(*a, **kw)

    monkeypatch.setattr(L, "_decode_slow", counting_slow)
    monkeypatch.setattr(batch.msgpack, "Unpacker", counting_unpacker)
    got, off, trailer, err = read(path)
    assert got == recs and err is None
    # only the batch holding the first uses of the 7 new names goes one by one
    assert sum(slow_frames) <= batch.BATCH
    # one Unpacker per batch of frames, not one per record
    assert len(unpackers) <= len(recs) // batch.BATCH + 4


@pytest.mark.parametrize("target", ["chunk", "batch"])
@pytest.mark.parametrize("damage", ["flip", "cut", "swap"])
def test_damage_at_block_and_batch_boundaries(tmp_path: Path, backend, target: str,
                                              damage: str) -> None:
    """A frame straddling the 1 MiB read boundary, or the first/last frame of a batch:
    its checksum is checked and the offset is its start."""
    path = tmp_path / "b.fadlog"
    data = write(path, toy(45_000))  # ~1.3 MiB
    frames = [off for off, kind, _ in L.iter_frames(path) if kind == b"E"]
    base = header_end(data)
    if target == "chunk":  # the frame that crosses base + CHUNK
        k = max(i for i, off in enumerate(frames) if off < base + L.CHUNK)
        picks = [k, k + 1]
    else:
        # the first batch holds the new names (one by one); the next ones are batches
        picks = [2 * batch.BATCH - 1, 2 * batch.BATCH, 3 * batch.BATCH - 1, 3 * batch.BATCH + 7]
    for k in picks:
        off = frames[k]
        nxt = frames[k + 1]
        if damage == "flip":
            bad = data[:nxt - 1] + bytes([data[nxt - 1] ^ 1]) + data[nxt:]
        elif damage == "cut":
            bad = data[:nxt - 1]
        else:  # frames k and k+1 swapped: valid CRCs for the wrong sequence numbers
            after = frames[k + 2]
            bad = data[:off] + data[nxt:after] + data[off:nxt] + data[after:]
        path.write_bytes(bad)
        want, want_off, _ = reference(path)
        got, got_off, _, err = read(path)
        assert want_off == off and got_off == off, (k, err)
        assert got == want and len(got) == k
        assert err.cause == ("truncated record" if damage == "cut" else "checksum mismatch")


def test_payload_nested_33_deep_in_a_short_frame_is_refused(tmp_path: Path, backend) -> None:
    """A 40-byte body (too long for the no-check bound) nesting 33 deep: the batch path
    must not take it."""
    path = tmp_path / "d.fadlog"
    recs = toy(600)
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)  # the stream starts with the header
    bodies = [enc.body(r) for r in recs]
    bodies[550] = msgpack.packb([0, 40, 41, 42, 1, 1, {"a": deep(32)}])
    assert 32 < len(bodies[550]) < 128
    offs = forged_log(path, bodies)
    got, off, _, err = read(path)
    assert len(got) == 550 and off == offs[550], err
    assert err.cause == "malformed record (nesting deeper than 32)"


def forged_log(path: Path, bodies: list) -> list[int]:
    """Write CRC-valid frames around `bodies`; their offsets."""
    data = bytearray(L._encode_header(HEADER, codec.Deflater()))
    offs = []
    for k, b in enumerate(bodies, 1):
        offs.append(len(data))
        data += encode_frame(b"E", b, k)
    data += L._encode_end(len(bodies), {})
    path.write_bytes(bytes(data))
    return offs


def test_bad_deflated_payload_inside_a_batch(tmp_path: Path, monkeypatch, backend) -> None:
    """A deflated payload that does not inflate, in the middle of a batch of good frames:
    the records before it are kept and the damage is at its frame, as one by one."""
    recs = toy(1200)
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)
    bodies = [enc.body(r) for r in recs]
    bodies[700] = msgpack.packb([0, 40, 41, 42, 1, 1, msgpack.ExtType(1, b"\xff\xff\xff")])
    offs = forged_log(tmp_path / "x.fadlog", bodies)
    fast, slow = both(tmp_path / "x.fadlog", monkeypatch)
    assert fast[0] == slow[0] == recs[:700]
    assert fast[1] == offs[700] and str(fast[3]) == str(slow[3])
    assert fast[3].cause.startswith("malformed record (bad deflate data")


def test_inflate_budget_ends_a_batch_early_without_losing_records(tmp_path: Path,
                                                                  monkeypatch, pure) -> None:
    """Payloads of 40 KB that deflate to a few bytes (frames < 128 bytes): a batch stops
    once 1 MiB is inflated and the next one starts at the right frame."""
    recs = [[i, i, "kernel", "sim", "blob", i - 1, 0, {"s": "a" * 40_000 + str(i)}]
            for i in range(1, 200)]
    path = tmp_path / "i.fadlog"
    write(path, recs)
    assert max(len(b) for _, k, b in L.iter_frames(path) if k == b"E") < 128
    calls = []
    real = batch.decode_batch

    def spy(*a):
        res = real(*a)
        calls.append(res[2])
        return res

    monkeypatch.setattr(L, "decode_batch", spy)
    small_batches(monkeypatch, 50)  # 50 x 40 KB > 1 MiB; the first batch has the new name
    got, off, trailer, err = read(path)
    assert err is None and got == recs
    assert batch.INFLATED in calls


def test_objects_must_end_at_frame_ends(tmp_path: Path, monkeypatch, backend) -> None:
    """Two frames whose bodies hold two good records, but cut in the wrong place (one
    body and a half, then the other half): as many objects as frames, yet damage."""
    recs = toy(1100)
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)
    bodies = [enc.body(r) for r in recs]
    a, b = bodies[800], bodies[801]
    bodies[800:802] = [a + b[:3], b[3:]]
    offs = forged_log(tmp_path / "o.fadlog", bodies)
    fast, slow = both(tmp_path / "o.fadlog", monkeypatch)
    assert fast[0] == slow[0] == recs[:800]
    assert fast[1] == offs[800] and fast[3].cause == "undecodable record"
    assert str(fast[3]) == str(slow[3])


@pytest.mark.parametrize("wire, cause", [
    ([0, True, 41, 42, 1, 1, {"n": 1}], "record field src is not a name"),
    ([0.0, 40, 41, 42, 1, 1, {"n": 1}], "record time step, cause or chan_seq is not"),
    ([0, 40, 41, 42, False, 1, {"n": 1}], "record time step, cause or chan_seq is not"),
    ([0, 40, 41, 42, 1, -1, {"n": 1}], "record time step, cause or chan_seq is not"),
    ([1 << 63, 40, 41, 42, 1, 1, {"n": 1}], "record time step, cause or chan_seq is not"),
    ([0, 40, 41, 9999, 1, 1, {"n": 1}], "record field type is not a name"),
    ([0, 40, 41, 42, 1, 1, {"n": msgpack.ExtType(1, b"\x00")}], "misplaced msgpack extension"),
    ([0, 40, 41, 42, 1, 1, [1]], "payload is a list, not a map"),
    ([0, 40, 41, 42, 1, 1, {"n": 1}, 5], "record has no single payload map"),
    ([0, 40, 41, 3, 1, 1, 7], "cmd.run payload has 1 fields, not 2"),
    ([0, 40, 41, 42, 1, 1, msgpack.ExtType(7, b"")], None),
])
def test_forged_record_in_a_batch(tmp_path: Path, monkeypatch, backend, wire, cause) -> None:
    """One CRC-valid forged record in the middle of a batch of good ones: refused with
    the reference path's cause at its frame, every record before it kept."""
    recs = toy(1100)
    enc = codec.RecordEncoder(codec.Deflater())
    L._encode_header(HEADER, enc._stream)
    bodies = [enc.body(r) for r in recs]
    bodies[700] = msgpack.packb(wire)
    offs = forged_log(tmp_path / "r.fadlog", bodies)
    fast, slow = both(tmp_path / "r.fadlog", monkeypatch)
    assert fast[0] == slow[0] == recs[:700]
    assert fast[1] == offs[700] and str(fast[3]) == str(slow[3])
    want = f"malformed record ({cause}" if cause else "undecodable record"
    assert fast[3].cause.startswith(want), fast[3]


def test_u64_lists_of_eight_or_more_are_packed_as_ext3_and_read_back():
    # docs/log-format.md: inside a deflated payload "every list of 8 or more unsigned
    # 64-bit ints ... is an ext 3"; shorter ones stay plain, and the reader takes both.
    import msgpack

    from fadumpsim.events import codec
    regs8 = [0xC000000000000000 + 8 * i for i in range(8)]
    packed = codec._pack_u64_lists({"r": regs8, "s": regs8[:7], "n": [[*regs8, 1 << 63]]})
    assert isinstance(packed["r"], msgpack.ExtType) and packed["r"].code == 3
    assert packed["s"] == regs8[:7]
    assert isinstance(packed["n"][0], msgpack.ExtType)
    back = msgpack.unpackb(msgpack.packb(packed), ext_hook=codec._inner_hook)
    assert back == {"r": regs8, "s": regs8[:7], "n": [[*regs8, 1 << 63]]}
    with pytest.raises(ValueError):  # a packed list shorter than 8 is damage
        codec._inner_hook(3, msgpack.packb(regs8[:7]))


def test_a_name_index_is_known_up_to_the_last_name_and_not_one_past():
    from fadumpsim.events import codec
    dec = codec.RecordDecoder(codec.Inflater(), 1 << 20)
    n = len(dec.names)
    assert dec._name(n - 1, "src") == codec.PRESET_NAMES[-1]
    with pytest.raises(codec.CodecError, match=rf"record field src is not a name or a known name index \({n}\)"):
        dec._name(n, "src")
    assert dec._name("fresh", "dst") == "fresh" and dec._name(n, "src") == "fresh"


def test_the_name_table_stops_at_max_names_and_an_index_past_it_is_damage():
    # the writer interns at most MAX_NAMES names; a forged log that goes on naming new
    # strings cannot make index MAX_NAMES mean anything
    from fadumpsim.events import codec
    dec = codec.RecordDecoder(codec.Inflater(), 1 << 20)
    for i in range(codec.MAX_NAMES - len(dec.names)):
        dec._name(f"n{i}", "src")
    assert len(dec.names) == codec.MAX_NAMES
    assert dec._name("one-too-many", "src") == "one-too-many"
    assert len(dec.names) == codec.MAX_NAMES
    with pytest.raises(codec.CodecError):
        dec._name(codec.MAX_NAMES, "src")


def test_dcause_and_chan_seq_zero_are_valid_and_negative_ones_are_damage():
    # docs/log-format.md: dcause and chan_seq are ints >= 0 (cause = seq - dcause, so
    # dcause = seq is an injected event's cause 0); checked on the one-by-one path that
    # large and deflated records take
    from fadumpsim.events import codec
    dec = codec.RecordDecoder(codec.Inflater(), 1 << 20)
    assert dec.finish([5, "sim", "kernel", "x.y", 0, 0, {"a": 1}], 1, 30)[5:] == [1, 0, {"a": 1}]
    assert dec.finish([5, "sim", "kernel", "x.y", 2, 3, {"a": 1}], 2, 30)[5:] == [0, 3, {"a": 1}]
    for bad in ([5, "sim", "kernel", "x.y", -1, 0, {}], [5, "sim", "kernel", "x.y", 0, -1, {}]):
        with pytest.raises(codec.CodecError, match="cause or chan_seq is not a 64-bit int"):
            codec.RecordDecoder(codec.Inflater(), 1 << 20).finish(bad, 1, 30)
