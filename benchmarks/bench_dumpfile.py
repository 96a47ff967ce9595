"""Dump-file writing cost: it must grow with the pages kept, not with the partition size.

Run: python benchmarks/bench_dumpfile.py [--dir DIR] [--keep]

Builds an 8 GB partition image (~600 MB kernel, 2 GB user, 1 GB page cache, the rest
free, interleaved in 16 MB blocks like a fragmented LPAR) and a 1 TB one with the same
kernel pages, then times makedumpfile-style writes.  Prints one table row per case.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fadumpsim.dumpfile import (  # noqa: E402
    ContentExtent,
    CpuState,
    LoadRange,
    VmcoreImage,
    WriteStats,
    inspect_dump,
    write_elf_vmcore,
    write_kdump_compressed,
)

PS = 65536
MB = 1 << 20
GB = 1 << 30
TB = 1 << 40
BLOCK = 16 * MB


def build_image(total: int, kernel: int, user: int, cache: int) -> VmcoreImage:
    """Two ranges (boot memory copy + the rest, a 64 MB reserved hole between) of 16 MB
    blocks dealt out in proportion (kernel, user, cache, free), so classes interleave."""
    boot = 576 * MB
    ranges_spec = [(0, boot), (boot + 64 * MB, total - boot)]
    quota = {"kernel": kernel, "user": user, "cache": cache, "free": total - kernel - user - cache}
    given = {k: 0 for k in quota}
    n = {k: 0 for k in quota}
    ranges = []
    done = 0
    for start, size in ranges_spec:
        exts = []
        for a in range(start, start + size, BLOCK):
            done += BLOCK
            # the class furthest behind its share gets the next block
            klass = max(quota, key=lambda k: quota[k] * done / total - given[k] if given[k] < quota[k] else -1e30)
            given[klass] += BLOCK
            n[klass] += 1
            if klass == "free":
                tag = "" if n[klass] % 2 else f"free:stale-{n[klass]}"
            else:
                tag = f"{klass}:blk-{n[klass]}"
            exts.append(ContentExtent(a, a + BLOCK, klass, tag, 0))
        ranges.append(LoadRange(start, size, tuple(_coalesce(exts))))
    cpus = tuple(CpuState(c, tuple(range(c, c + 48))) for c in range(8))
    return VmcoreImage("4.18.0-fadumpsim", PS, 1_530_000_000,
                       {"swapper_pg_dir": 0xC000000001230000}, cpus, 0, tuple(ranges))


def build_1tb_same_kernel(kernel: int) -> VmcoreImage:
    """1 TB partition whose kernel pages equal the 8 GB case; the rest is user/cache/free."""
    return build_image(TB, kernel, 300 * GB, 200 * GB)


def _coalesce(exts: list[ContentExtent]) -> list[ContentExtent]:
    out: list[ContentExtent] = []
    for e in exts:
        p = out[-1] if out else None
        if p and p.klass == e.klass == "free" and p.tag == e.tag == "" and p.end == e.start:
            out[-1] = ContentExtent(p.start, e.end, "free", "", 0)
        else:
            out.append(e)
    return out


def run(label: str, image: VmcoreImage, fn: Callable[[VmcoreImage, str], WriteStats],
        path: str, keep: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    st = fn(image, path)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    rep = inspect_dump(path, image)
    di = time.perf_counter() - t1
    assert rep.truth is not None and rep.truth.lost == 0, label
    size = os.path.getsize(path)
    disk = os.stat(path).st_blocks * 512
    if not keep:
        os.unlink(path)
    return {"case": label, "partition": image.total_pages * PS, "kept": st.pages_written,
            "write_s": dt, "size": size, "disk": disk, "inspect_s": di,
            "us_per_kept": dt / max(1, st.pages_written) * 1e6}


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="where to write the dump files (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    out = args.dir or tempfile.mkdtemp(prefix="bench_dumpfile.")
    os.makedirs(out, exist_ok=True)

    kd31 = lambda img, p: write_kdump_compressed(img, p, dump_level=31, compression="zlib")  # noqa: E731
    kd31n = lambda img, p: write_kdump_compressed(img, p, dump_level=31, compression="none")  # noqa: E731
    elf31 = lambda img, p: write_elf_vmcore(img, p, dump_level=31)  # noqa: E731

    t0 = time.perf_counter()
    img8 = build_image(8 * GB, 600 * MB, 2 * GB, 1 * GB)
    img8_150 = build_image(8 * GB, 150 * MB, 2 * GB, 1 * GB)
    img8_300 = build_image(8 * GB, 300 * MB, 2 * GB, 1 * GB)
    img1t = build_1tb_same_kernel(600 * MB)
    build_s = time.perf_counter() - t0

    rows = [
        run("8GB   -d31 kdump zlib, 150MB kernel", img8_150, kd31, os.path.join(out, "a"), args.keep),
        run("8GB   -d31 kdump zlib, 300MB kernel", img8_300, kd31, os.path.join(out, "b"), args.keep),
        run("8GB   -d31 kdump zlib, 600MB kernel", img8, kd31, os.path.join(out, "c"), args.keep),
        run("1TB   -d31 kdump zlib, 600MB kernel", img1t, kd31, os.path.join(out, "d"), args.keep),
        run("8GB   -d31 kdump none, 600MB kernel", img8, kd31n, os.path.join(out, "e"), args.keep),
        run("8GB   -d31 -E (ELF),   600MB kernel", img8, elf31, os.path.join(out, "f"), args.keep),
        run("1TB   -d31 -E (ELF),   600MB kernel", img1t, elf31, os.path.join(out, "g"), args.keep),
    ]
    print(f"images built in {build_s:.2f}s; extents: 8GB {sum(len(r.extents) for r in img8.ranges)}, "
          f"1TB {sum(len(r.extents) for r in img1t.ranges)}; files in {out}"
          + ("" if args.keep else " (removed)"))
    head = f"{'case':<38} {'partition':>9} {'kept pages':>10} {'write s':>8} {'us/kept':>8} {'file size':>10} {'on disk':>9} {'inspect s':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<38} {fmt_bytes(r['partition']):>9} {r['kept']:>10} {r['write_s']:>8.2f} "
              f"{r['us_per_kept']:>8.0f} {fmt_bytes(r['size']):>10} {fmt_bytes(r['disk']):>9} {r['inspect_s']:>9.2f}")
    if not args.keep and not args.dir:
        os.rmdir(out)


if __name__ == "__main__":
    main()
