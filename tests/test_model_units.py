"""Small, exact facts of the kernel model, without a simulation (fast: they come first
in the mutation check's model area).

* get_fadump_area_size() is page aligned and exact: a sum landing on a page boundary
  stays there, one byte more takes the next page (the 2018 structure sizes, written out
  here from the kernel's declarations, not read from the model);
* an allocation's pages are numbered 0..n-1 across the pieces it was placed in (the
  content identity the dump verdict compares);
* offline_pages() migrates NR_OFFLINE_AT_ONCE_PAGES (256) pages per batch, and a batch
  that fills the last free memory succeeds: the *next* batch is the one without room.
"""
from __future__ import annotations

import pytest

from fadumpsim.actors.kernel.mm import KernelMM, OutOfMemory
from fadumpsim.actors.kernel.sizing import area_size
from fadumpsim.actors.machine import Machine

PS = 64 << 10
MB = 1 << 20
BATCH = 256 * PS                     # NR_OFFLINE_AT_ONCE_PAGES pages

# struct fadump_crash_info_header (4.18): magic 8, elfcorehdr_addr 8, crashing_cpu 4, pad 4,
# struct pt_regs 384, struct cpumask 256 (NR_CPUS 2048); Elf64_Ehdr 64, Elf64_Phdr 56; one
# PT_NOTE phdr, and a PT_LOAD per memblock region plus two
HEADERS = 8 + 8 + 4 + 4 + 384 + 256 + 64 + 56


def test_area_size_is_exact_at_a_page_boundary():
    regions, cpu, hpte = 3, 0x27A0, 0
    overhead = HEADERS + (regions + 2) * 56 + cpu + hpte
    bms = 100 * PS - overhead          # the sum is exactly 100 pages
    assert area_size(bms, cpu, hpte, regions, PS) == 100 * PS
    assert area_size(bms + 1, cpu, hpte, regions, PS) == 101 * PS
    assert area_size(bms - 1, cpu, hpte, regions, PS) == 100 * PS


def _mm(memory: str = "1G") -> KernelMM:
    return KernelMM(Machine.from_dict({"memory": memory}))


def test_an_allocation_numbers_its_pages_across_every_piece():
    mm = _mm()
    mm.pages.assign(0, 4 * PS, "free")
    mm.pages.assign(4 * PS, 6 * PS, "kernel", "k", 0)
    mm.pages.assign(6 * PS, 10 * PS, "free")
    tag = mm.alloc("user", 6 * PS)
    numbers = []
    for s, e, k, t, b in mm.pages.all():
        if t == tag:
            assert k == "user"
            numbers += range(b, b + (e - s) // PS)
    assert sorted(numbers) == list(range(6))          # each page of the 6 exactly once
    assert mm.pages.bytes_by_class() == {"free": 2 * PS, "kernel": 2 * PS, "user": 6 * PS}


def _offlining(src_pages: list[int], room: int) -> KernelMM:
    """Kernel data everywhere but `room` free bytes at [0, room) and an isolated LMB-sized
    source at [64MB, 80MB) holding user allocations of `src_pages` pages each."""
    mm = _mm()
    mm.pages.assign(0, room, "free")
    mm.pages.assign(room, 64 * MB, "kernel", "k", 0)
    s = 64 * MB
    for i, n in enumerate(src_pages):
        mm.pages.assign(s, s + n * PS, "user", f"u{i}", 10)
        s += n * PS
    mm.pages.assign(s, 96 * MB, "kernel", "k2", 0)
    mm.isolated.append((64 * MB, s))
    return mm


def test_one_batch_moves_256_pages_and_keeps_their_content():
    mm = _offlining([300], room=32 * MB)
    moved, done = mm.migrate_batch(64 * MB, 64 * MB + 300 * PS)
    assert (moved, done) == (BATCH, False)
    assert mm.pages.bytes_by_class(64 * MB, 64 * MB + 300 * PS) == {"free": BATCH,
                                                                    "user": 44 * PS}
    # the moved pages are pages 10..265 of u0, now in the free room
    got = sorted((b, (e - s) // PS) for s, e, k, t, b in mm.pages.pieces(0, 32 * MB)
                 if t == "u0")
    assert sum(n for _b, n in got) == 256 and got[0][0] == 10
    assert mm.migrate_batch(64 * MB, 64 * MB + 300 * PS) == (44 * PS, True)


def test_a_batch_that_fills_the_last_free_memory_succeeds():
    # the first allocation is exactly one batch and the room exactly one batch
    mm = _offlining([256, 8], room=BATCH)
    assert mm.migrate_batch(64 * MB, 64 * MB + 264 * PS) == (BATCH, False)
    with pytest.raises(OutOfMemory):               # now there is no room left
        mm.migrate_batch(64 * MB, 64 * MB + 264 * PS)
