"""Where the log reader's decode time goes, stage by stage, next to a bare msgpack floor
(issue 15: decode >= 400k events/s, i.e. >= ~0.6x of a bare `msgpack.unpackb` here).

Run: python benchmarks/probe_decode_stages.py [N]

On a log of N toy records (bench_logfile.toy, written by LogWriter) it times, per
CPU-second and best of 3, each stage any pure-Python fast path must pay for intact
small E frames, and prints each as a ratio to the bare floor measured in the same run:

* floor: `msgpack.unpackb` of the same records packed plainly (bench_logfile's "bare");
* walk: the Python loop that finds the frames (kind, one-byte length) and slices bodies;
* CRC: each frame's CRC-32 over kind, sequence number and body, checked against the
  stored one (two ways: stored CRCs read per frame, or the frames rebuilt from the
  bodies and computed CRCs and compared to the file in one bytes comparison);
* decode: each body decoded, by `msgpack.unpackb` and, if installed, by `msgspec`
  (untyped, typed tuple, array-like Struct: records whose names are all indices);
* build: the 8-element records (seq, time, names, cause) from the decoded columns.

The *upper bound* line adds the cheapest of each, with no shape, type, range or depth
check and no fallback: no reader that keeps per-frame CRCs and yields these records
can be faster in pure Python. With msgspec installed it also runs the real reader
twice in the same run: as is (one msgpack.Unpacker per batch) and with that one step
replaced by msgspec per body (not a correct reader: msgspec accepts int map keys and
decodes ext -1 as datetime, which the reference path refuses or keeps as Timestamp;
it only shows the most that swapping the decoder could give).
"""
from __future__ import annotations

import gc
import os
import struct
import sys
import tempfile
import time
import zlib
from itertools import accumulate, repeat
from operator import add, sub
from typing import Any, Callable

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import bench_logfile as bl  # noqa: E402
from fadumpsim.events import batch  # noqa: E402
from fadumpsim.events.logfile import LogReader, LogWriter, PREFIX_SIZE  # noqa: E402

try:
    import msgspec
except ImportError:  # the probe runs without it; only the msgspec rows are skipped
    msgspec = None

_CRC_E = zlib.crc32(b"E")
_seq_pack = struct.Struct("<Q").pack
_crc_at = struct.Struct("<I").unpack_from
_head_pack = struct.Struct("<BBI").pack


def cpu(fn: Callable[[], Any], reps: int = 3) -> float:
    """Best-of-reps process time of fn() with the cyclic GC paused (as the reader does)."""
    best = float("inf")
    for _ in range(reps):
        gc.disable()
        try:
            c = time.process_time()
            fn()
            best = min(best, time.process_time() - c)
        finally:
            gc.enable()
    return best


def first_event(buf: bytes) -> int:
    """Offset of the first E frame: after the prefix and the header frame."""
    i, n, shift = PREFIX_SIZE + 1, 0, 0
    while True:
        b = buf[i]
        n |= (b & 127) << shift
        i, shift = i + 1, shift + 7
        if b < 128:
            return i + 4 + n


def walk(buf: bytes, pos: int) -> tuple[list[int], list[bytes], int]:
    """Frame starts and bodies of the small E frames from pos (batch.py's loop)."""
    starts: list[int] = []
    bodies: list[bytes] = []
    put_start, put_body = starts.append, bodies.append
    lim = len(buf) - 6
    while pos <= lim:
        n = buf[pos + 1]
        if n > 127 or buf[pos] != 69:
            break
        end = pos + 6 + n
        put_start(pos)
        put_body(buf[pos + 6:end])
        pos = end
    return starts, bodies, pos


def crcs(bodies: list[bytes]) -> list[int]:
    return list(map(zlib.crc32, bodies,
                    map(zlib.crc32, map(_seq_pack, range(1, len(bodies) + 1)), repeat(_CRC_E))))


def main(n: int = 100_000) -> dict[str, float]:
    recs = bl.toy(n)
    d = tempfile.mkdtemp()
    path = os.path.join(d, "toy.fadlog")
    w = LogWriter(path, bl.HEADER, durable=False)
    for r in recs:
        w.append(r)
    w.close({"events": n})
    with open(path, "rb") as f:
        buf = f.read()
    first = first_event(buf)
    starts, bodies, stop = walk(buf, first)
    assert len(bodies) == n, (len(bodies), n)
    plain = [msgpack.packb(r) for r in recs]
    reader_recs = LogReader(path).records()
    assert reader_recs == recs

    def bare() -> None:
        unpackb = msgpack.unpackb
        for b in plain:
            unpackb(b)

    def crc_stored() -> None:
        assert crcs(bodies) == [c for (c,) in map(_crc_at, repeat(buf), map(add, starts, repeat(2)))]

    def crc_rebuilt() -> None:
        frames: list[Any] = [None] * (2 * n)
        frames[0::2] = map(_head_pack, repeat(69), map(len, bodies), crcs(bodies))
        frames[1::2] = bodies
        assert b"".join(frames) == buf[first:stop]

    t: dict[str, float] = {"floor": cpu(bare), "reader": cpu(lambda: LogReader(path).records()),
                           "walk": cpu(lambda: walk(buf, first)), "crc_stored": cpu(crc_stored),
                           "crc_rebuilt": cpu(crc_rebuilt),
                           "unpackb_each": cpu(lambda: list(map(msgpack.unpackb, bodies)))}
    decoded = list(map(msgpack.unpackb, bodies))
    k = next(i for i, w_ in enumerate(decoded) if all(type(x) is int for x in w_[1:4]))
    tail = bodies[k:]  # records whose src/dst/type are name indices (no new names)
    names = ["x"] * 65536
    ws = [tuple(w_) for w_ in decoded[k:]]

    def build() -> list:
        ds, s, dd, ty, dc, cs, p = zip(*ws)
        steps = list(accumulate(ds, initial=0))
        times = list(accumulate(steps[1:], initial=0))
        del times[0]
        seqs = range(1, len(ws) + 1)
        g = names.__getitem__
        return list(map(list, zip(seqs, times, map(g, s), map(g, dd), map(g, ty),
                                  map(sub, seqs, dc), cs, p)))

    t["build"] = cpu(build) * n / len(ws)
    if msgspec is not None:
        rec_t = tuple[int, int, int, int, int, int, dict[str, Any]]

        class Rec(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
            ds: int
            s: int
            d: int
            t: int
            dc: int
            cs: int
            p: dict[str, Any]

        plain_dec, tuple_dec, struct_dec = (msgspec.msgpack.Decoder(), msgspec.msgpack.Decoder(rec_t),
                                            msgspec.msgpack.Decoder(Rec))
        assert list(map(plain_dec.decode, tail)) == decoded[k:]  # the first has an ext
        assert list(map(tuple_dec.decode, tail)) == ws
        t["msgspec_each"] = cpu(lambda: list(map(plain_dec.decode, bodies)))
        t["msgspec_tuple"] = cpu(lambda: list(map(tuple_dec.decode, tail))) * n / len(tail)
        t["msgspec_struct"] = cpu(lambda: list(map(struct_dec.decode, tail))) * n / len(tail)
        t["reader_msgspec"] = reader_with_msgspec(path, recs)
    decode = min(v for key, v in t.items() if key.startswith(("unpackb_", "msgspec_")))
    t["upper_bound"] = t["walk"] + min(t["crc_stored"], t["crc_rebuilt"]) + decode + t["build"]
    floor = t["floor"]
    print(f"toy records: {n}, load average {os.getloadavg()[0]:.1f} "
          f"(per CPU-second, best of 3; ratio = stage rate / bare unpackb rate, same run)")
    for key, label in (("floor", "bare msgpack.unpackb (floor)"), ("reader", "LogReader.records()"),
                       ("reader_msgspec", "  same, msgspec per body in batch.py"),
                       ("walk", "stage: walk (find frames, slice bodies)"),
                       ("crc_stored", "stage: CRC vs stored CRC per frame"),
                       ("crc_rebuilt", "stage: CRC, frames rebuilt, one compare"),
                       ("unpackb_each", "stage: msgpack.unpackb per body"),
                       ("msgspec_each", "stage: msgspec untyped per body"),
                       ("msgspec_tuple", "stage: msgspec tuple[int*6, dict] per body"),
                       ("msgspec_struct", "stage: msgspec array_like Struct per body"),
                       ("build", "stage: build the 8-element records"),
                       ("upper_bound", "upper bound: walk + CRC + decode + build")):
        if key in t:
            print(f"  {label:44s} {t[key] / n * 1e6:6.3f} us/event {n / t[key]:>10,.0f} /CPU-s "
                  f"{floor / t[key]:5.2f}x")
    if msgspec is None:
        print("  (msgspec not installed: pip install msgspec for its rows)")
    return {k_: n / v for k_, v in t.items()}


def reader_with_msgspec(path: str, recs: list) -> float:
    """CPU time of LogReader.records() with batch._unpack swapped for msgspec per body."""
    orig = batch._unpack  # AttributeError if batch.py changed: this probe must follow it

    def unpack(bodies: list[bytes], dec: Any) -> list | None:
        hook = dec.hook
        m = msgspec.msgpack.Decoder(ext_hook=lambda code, data: hook(code, bytes(data)))
        try:
            return list(map(m.decode, bodies))
        except Exception:
            dec.exts.clear()
            return None

    batch._unpack = unpack
    try:
        assert LogReader(path).records() == recs
        return cpu(lambda: LogReader(path).records())
    finally:
        batch._unpack = orig


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    try:
        count = int(args[0]) if args else 100_000
        if count < 100:
            raise ValueError
    except ValueError:
        print(f"usage: {sys.argv[0]} [N >= 100]", file=sys.stderr)
        sys.exit(2)
    main(count)
