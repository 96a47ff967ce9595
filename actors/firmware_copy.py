"""The os-term copy, done as firmware does it (QEMU's fadump_preserve_mem, 2025).

Sections are handled in order. Each starts with error_flags and bytes_dumped at 0; one
whose request_flag is not 1 is skipped; an unknown type is flagged 0x8000. CPU state
data is one write of what firmware generates (QEMU: 32 + 1264 bytes per CPU). A memory
section (real-mode region, parameter area) is copied in 32 MiB chunks: read the source
chunk, then write it to the destination. The first chunk that fails decides the one
flag: a source that cannot be read (0x4000) wins over a destination that cannot be
written (0x1000), because the read comes first. Chunks before it are already written,
so the destination (user pages, under ZONE_MOVABLE) is overwritten up to there.

Everything is extents: the failing chunk is found arithmetically from the first hole of
the source and destination ranges and from the injected faults, then the written prefix
is copied as one extent operation. A 3TB real-mode region costs what its extents cost,
not 100,000 chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from fadumpsim.actors.flavours import cpu_state_size
from fadumpsim.actors.kernel.fwdump import CPU_STATE_DATA, HPTE_REGION, REAL_MODE_REGION
from fadumpsim.actors.pagemap import PageMap

CHUNK = 32 << 20                       # FADUMP_CHUNK_SIZE
PARAM_AREA = 0x0100                    # FADUMP_PARAM_AREA: an OS-defined memory section
REQUEST_FLAG = 1
ERR_INVALID_DATA_TYPE = 0x8000
ERR_INVALID_SOURCE = 0x4000
ERR_INVALID_DEST = 0x1000
#: section names of the `inject copy-error` grammar
SECTION_TYPES = {"cpu": CPU_STATE_DATA, "hpte": HPTE_REGION, "rmr": REAL_MODE_REGION}
#: within one chunk: the source read (a bad source, or a hardware fault on the read) first
FAIL_ORDER = {"source": 0, "hardware": 1, "destination": 2}


class Partition(Protocol):
    """The firmware's view of which addresses are backed by partition memory."""

    def first_hole(self, start: int, length: int) -> int | None: ...

    def present_ranges(self, start: int, end: int) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class CopyFault:
    """An injected copy failure: side, section name ('' = every section), chunk."""
    side: str
    section: str = ""
    chunk: int = 0

    def applies(self, typ: int) -> bool:
        return not self.section or SECTION_TYPES[self.section] == typ


@dataclass
class CopyResult:
    """What the copy did beyond the section fields."""
    hardware_error: bool = False       # a failure that is neither a bad source nor destination
    aborted: bool = False              # QEMU: CPU state could not be stored, no dump boot
    written: list[list[int]] = field(default_factory=list)  # [start, end, section type]


@dataclass(frozen=True)
class Failure:
    chunk: int
    side: str            # "source", "destination", "hardware"
    injected: bool


def first_failure(n: int, src: int, dst: int, typ: int, part: Partition,
                  faults: Iterable[CopyFault]) -> Failure | None:
    """The first failing chunk of an n-byte chunked copy, and which side fails first.

    Within one chunk the source read comes first (a hole there, or an injected source
    or hardware fault on the read), then the destination write.
    """
    nchunks = -(-n // CHUNK)
    cands: list[tuple[int, int, bool, str]] = []      # chunk, order in the chunk, hole, side
    for side, start in (("source", src), ("destination", dst)):
        hole = part.first_hole(start, n)
        if hole is not None:
            cands.append(((hole - start) // CHUNK, FAIL_ORDER[side], True, side))
    for f in faults:
        if f.applies(typ) and f.chunk < nchunks:
            cands.append((f.chunk, FAIL_ORDER[f.side], False, f.side))
    if not cands:
        return None
    # an injected fault fails its whole chunk: it wins over a hole on the same side
    k, _o, hole, side = min(cands)
    injected = not hole
    return Failure(k, side, injected)


class Copier:
    """One os-term's copy of every registered section into `ram`."""

    def __init__(self, flavour: str, cpus: int, ram: PageMap, blobs: dict[int, Any],
                 part: Partition, faults: list[CopyFault]) -> None:
        self.flavour, self.cpus = flavour, cpus
        self.ram, self.blobs, self.part = ram, blobs, part
        self.faults = faults
        self.result = CopyResult()

    def run(self, sections: list[dict[str, Any]]) -> CopyResult:
        for s in sections:
            s["error"], s["dumped"] = 0, 0
            if s["request"] != REQUEST_FLAG:
                continue
            t = s["type"]
            if t == CPU_STATE_DATA:
                n = cpu_state_size(self.flavour, self.cpus) if self.flavour == "qemu" else s["length"]
                if not self.generated_section(s, n):
                    self.result.aborted = True
                    return self.result
            elif t == HPTE_REGION:
                if self.flavour != "qemu":   # QEMU: "TODO: Add hpte state data"
                    self.generated_section(s, s["length"])
            elif t in (REAL_MODE_REGION, PARAM_AREA):
                self.preserve_region(s)
            else:
                s["error"] = ERR_INVALID_DATA_TYPE
        return self.result

    # -- sections firmware generates ----------------------------------------------------
    def generated_section(self, s: dict[str, Any], n: int) -> bool:
        """CPU state (or PowerVM's HPTE): one write of n bytes firmware generates.

        False: QEMU could not store the CPU state (a hardware error): os-term fails.
        """
        if not n:
            return True
        d = s["destination"]
        sides = {f.side for f in self.faults if f.applies(s["type"]) and f.chunk == 0}
        side = next((x for x in ("source", "hardware", "destination") if x in sides), "")
        if not side and self.part.first_hole(d, n) is not None:
            side = "hole"
        if not side:
            self._generated(d, d + n, s["type"])
            s["dumped"] = n
            return True
        if side == "hardware":
            if self.flavour == "qemu":
                return False
            self.result.hardware_error = True
            return True
        if side == "hole":             # the mapped parts of a partly missing range are written
            for a, b in self.part.present_ranges(d, d + n):
                self._generated(a, b, s["type"])
        # QEMU's do_populate_cpu_state flags any failed write as a bad *source*
        if self.flavour == "qemu" or side == "source":
            s["error"] = ERR_INVALID_SOURCE
        else:
            s["error"] = ERR_INVALID_DEST
        return True

    def _generated(self, a: int, b: int, typ: int) -> None:
        self.ram.assign(a, b, "reserved", f"fadump:section{typ:#x}", 0)
        self._overwrote(a, b, typ)

    # -- memory sections ------------------------------------------------------------------
    def preserve_region(self, s: dict[str, Any]) -> None:
        """do_preserve_region(): chunked copy; bytes_dumped is all or nothing."""
        src, dst, n = s["source"], s["destination"], s["length"]
        if src == dst:                  # QEMU's shortcut (e.g. a parameter area in place)
            s["dumped"] = n
            return
        fail = first_failure(n, src, dst, s["type"], self.part, self.faults)
        if fail is None:
            self._copy(src, dst, 0, n, s["type"])
            s["dumped"] = n
            return
        done = fail.chunk * CHUNK
        self._copy(src, dst, 0, done, s["type"])
        if fail.side == "destination" and not fail.injected:
            # address_space_write() carries on past an unassigned region and reports the
            # error at the end: the chunk's in-partition part is written too
            end = min(done + CHUNK, n)
            for a, b in self.part.present_ranges(dst + done, dst + end):
                self._copy(src, dst, a - dst, b - dst, s["type"])
        if fail.side == "hardware":
            self.result.hardware_error = True
        else:
            s["error"] = ERR_INVALID_SOURCE if fail.side == "source" else ERR_INVALID_DEST

    def _copy(self, src: int, dst: int, a: int, b: int, typ: int) -> None:
        """Copy bytes [a, b) of the section (offsets) from source to destination."""
        if b <= a:
            return
        pieces = list(self.ram.pieces(src + a, src + b))
        self.ram.assign(dst + a, dst + b, "free")
        for pa, pb, k, t, base in pieces:
            off = pa - src
            self.ram.assign(dst + off, dst + off + (pb - pa), k, t, base)
        self._overwrote(dst + a, dst + b, typ)

    def _overwrote(self, a: int, b: int, typ: int) -> None:
        for addr in [x for x in self.blobs if a <= x < b]:
            del self.blobs[addr]
        self.result.written.append([a, b, typ])


def overwritten_pages(truth: PageMap, written: list[list[int]], ps: int,
                      classes: tuple[str, ...] = ("kernel", "user")) -> dict[str, int]:
    """Pages of the crashed kernel (by class) that the copy wrote over, page-rounded out."""
    out = {k: 0 for k in classes}
    spans = _merge([(a - a % ps, -(-b // ps) * ps) for a, b, _t in written])
    for a, b in spans:
        for s, e, k, _t, _b in truth.pieces(a, b):
            if k in out:
                out[k] += (e - s) // ps
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out

