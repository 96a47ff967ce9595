"""Small, exact facts of the kernel model, without a simulation (fast: they come first
in the mutation check's model area).

* get_fadump_area_size() is page aligned and exact: a sum landing on a page boundary
  stays there, one byte more takes the next page (the 2018 structure sizes, written out
  here from the kernel's declarations, not read from the model);
* an allocation's pages are numbered 0..n-1 across the pieces it was placed in (the
  content identity the dump verdict compares);
* offline_pages() migrates NR_OFFLINE_AT_ONCE_PAGES (256) pages per batch, and a batch
  that fills the last free memory succeeds: the *next* batch is the one without room;
  test_pages_in_a_zone() at the edges of ZONE_MOVABLE and of a node; an LMB removed and
  added back is not left isolated (it takes pages again);
* the capture kernel's /proc/vmcore: excluded bytes by class, the unreadable hole and
  tail of a PT_LOAD; makedumpfile refusing a compression the build lacks;
* sysfs reads on behalf of udev: fadump_registered, fadump_enabled, fadump/hotplug_ready.
"""
from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from fadumpsim import sim
from fadumpsim.actors.kernel.crash import CrashMixin
from fadumpsim.actors.kernel.dlpar import DlparMixin
from fadumpsim.actors.kernel.mm import KernelMM, OutOfMemory
from fadumpsim.actors.kernel.sizing import area_size
from fadumpsim.actors.machine import Machine
from fadumpsim.scenario import Scenario

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


# -- the capture kernel's view of /proc/vmcore ----------------------------------------------------
class _Capture(CrashMixin):
    """Just what save_dump and vmcore_pages read."""

    def __init__(self, vmcore: dict) -> None:
        self.vmcore, self.saved_dumps = vmcore, []
        self.mm = NS(ps=PS)
        self._current = NS(seq=7)


VMCORE = {"generation": 1, "loads": [
    {"start": 0, "end": 10 * PS, "extents": [
        [0, 2 * PS, "kernel", "slab", 0],
        [2 * PS, 5 * PS, "user", "anon", 0],
        # 5..6 no longer in the partition: unreadable
        [6 * PS, 8 * PS, "free", "", 0],
        [8 * PS, 9 * PS, "user", "anon2", 4]]}]}     # 9..10, the load's tail: unreadable


def test_vmcore_pages_count_excluded_and_unreadable_bytes_by_class():
    kept, excluded, unreadable = _Capture(VMCORE).vmcore_pages(31)
    assert kept == [[0, 2 * PS, "kernel", "slab", 0]]
    assert excluded == {"user": 4 * PS, "free": 2 * PS}
    assert unreadable == 2 * PS                      # the hole and the tail of the PT_LOAD
    kept, excluded, unreadable = _Capture(VMCORE).vmcore_pages(1)
    assert excluded == {"zero": 2 * PS} and len(kept) == 3 and unreadable == 2 * PS


def test_makedumpfile_refuses_a_compression_this_build_lacks(monkeypatch):
    import fadumpsim.dumpfile as dumpfile
    monkeypatch.setattr(dumpfile, "compression_available", lambda m: m != "lzo")
    cap = _Capture(VMCORE)
    cmd = {"prog": "makedumpfile", "path": "/var/crash/vmcore", "level": 31,
           "format": "kdump", "compress": "lzo"}
    assert cap.save_dump(cmd) == ("", "makedumpfile: lzo compression is not supported in this "
                                  "build (its Python binding is not installed); use -c\n\n"
                                  "makedumpfile Failed.\n", 1)
    assert cap.saved_dumps == []


# -- DLPAR: isolation lasts as long as offline_pages() ---------------------------------------------
def test_an_lmb_removed_and_added_back_takes_pages_again():
    sc = Scenario.build("remove-add", machine={"memory": "4G", "lmb_size": "256M"},
                        script=[{"name": "dlpar", "actor": "hotplug",
                                 "run": ["drmgr -c mem -r -q 2", "drmgr -c mem -a -q 2"]}])
    res = sim.run(sc, keep_sched=True)
    assert [r["exit"] for r in res.transcript] == [0, 0]
    mm = res.sched.actors["kernel"].mm
    free = mm.pages.bytes_by_class()["free"]
    mm.alloc("user", free)                  # every free byte, the added-back LMBs' too
    assert "free" not in mm.pages.bytes_by_class() or mm.pages.bytes_by_class()["free"] == 0


# -- sysfs reads on behalf of udev and kdumpctl -------------------------------------------------------
class _Sysfs(DlparMixin):
    def __init__(self, registered: bool, ready: str | None) -> None:
        self.fw = NS(dump_registered=registered, fadump_enabled=True)
        self.ready, self.sent = ready, []

    def sysfs_file_exists(self, name: str, path: str) -> bool:
        return name != "missing"

    def fadump_sysfs_show(self, name: str) -> str | None:
        return self.ready if name == "hotplug_ready" else None

    def send(self, dst: str, type_: str, payload: dict) -> None:
        self.sent.append((dst, type_, payload))


def _read(k: _Sysfs, path: str) -> str | None:
    k.on_hp_sysfs_read(NS(src="hotplug", payload={"path": path, "op": "h1"}))
    (dst, type_, payload), = k.sent[-1:]
    assert (dst, type_, payload["op"]) == ("hotplug", "hp.sysfs_value", "h1")
    return payload["value"]


def test_sysfs_reads_registered_enabled_and_the_other_files():
    k = _Sysfs(registered=True, ready="1\n")
    assert _read(k, "/sys/kernel/fadump_registered") == "1\n"
    assert _read(k, "/sys/kernel/fadump_enabled") == "1\n"
    assert _read(k, "/sys/kernel/fadump/hotplug_ready") == "1\n"
    assert _read(_Sysfs(registered=False, ready=None), "/sys/kernel/fadump_registered") == "0\n"
    assert _read(k, "/sys/kernel/fadump/missing") is None


def test_single_zone_at_the_edges_of_zone_movable_and_of_a_node():
    L = 256 * MB
    mm = KernelMM(Machine.from_dict({"memory": "4G", "nodes": 2, "lmb_size": "256M"}))
    mm.movable = (4 * L, 6 * L)
    assert mm.single_zone(3 * L, 4 * L)           # the LMB just below ZONE_MOVABLE
    assert mm.single_zone(4 * L, 5 * L) and mm.single_zone(5 * L, 6 * L)
    assert mm.single_zone(6 * L, 7 * L)           # just above it
    assert not mm.single_zone(3 * L, 5 * L)       # spans Normal and Movable
    # nodes split at 2GB: an LMB ending there is on node 0 alone
    assert mm.single_zone(7 * L, 8 * L) and not mm.single_zone(7 * L, 9 * L)


# -- drmgr's DLPAR steps, driven one reply at a time (actors/hotplug.py) -----------------------
def _hp(machine):
    """A Hotplug whose printks are collected and whose other sends go nowhere."""
    from fadumpsim.actors.hotplug import Hotplug
    hp = Hotplug("hotplug", machine)
    hp.printed = []
    hp.send = lambda dst, type_, payload=None, **kw: hp.printed.append(payload["msg"]) \
        if type_ == "hp.printk" else None
    return hp


def _drive(gen, answer):
    """Run an op generator, answering each Call with answer(call); returns (rc, calls)."""
    calls, reply = [], None
    try:
        while True:
            call = gen.send(reply)
            calls.append((call.type, dict(call.payload)))
            reply = answer(call)
    except StopIteration as stop:
        return stop.value, calls


def test_hot_add_that_gets_too_few_lmbs_removes_the_ones_it_added():
    # dlpar_memory_add_by_count(): an LMB firmware refuses is skipped; when fewer than n
    # were added, "Memory hot-add failed, removing any added LMBs" and each added one is
    # offlined, removed and its DRC released again (the partition is as before).
    m = Machine.from_dict({"memory": "4G", "lmb_size": "256M"})
    hp = _hp(m)

    def answer(call):
        if call.type == "hp.lmbs":
            return {"lmbs": [[0, 16, 1], [16, 3, 0]]}
        if call.type == "dlpar.acquire_drc":  # firmware refuses LMB 17
            return {"rc": -1 if call.payload["drc_index"] == 0x80000000 + 17 else 0}
        return {"rc": 0}

    rc, calls = _drive(hp.add_by_count(3), answer)
    assert rc != 0
    assert "Memory hot-add failed, removing any added LMBs" in " ".join(hp.printed)
    added = [p["lmb"] for t, p in calls if t == "hp.add_memory"]
    assert added == [16, 18]
    assert [p["lmb"] for t, p in calls if t == "hp.remove_memory"] == added
    released = [p["drc_index"] - 0x80000000 for t, p in calls if t == "dlpar.release_drc"]
    assert released == added
    assert hp.in_transit == []


def test_remove_by_index_leaves_nothing_in_transit():
    m = Machine.from_dict({"memory": "4G", "lmb_size": "256M"})
    hp = _hp(m)

    def answer(call):
        if call.type == "hp.is_removable":
            return {"removable": True, "rc": 0}
        return {"rc": 0, "removable": True}

    rc, calls = _drive(hp.remove_by_index(0x80000000 + 12), answer)
    assert rc == 0, calls
    assert [t for t, _ in calls if t in ("hp.offline", "hp.remove_memory", "dlpar.release_drc")] \
        == ["hp.offline", "hp.remove_memory", "dlpar.release_drc"]
    assert hp.in_transit == []
    assert hp.snapshot()["in_transit"] == []
    assert any(m_.endswith("Memory at c0000000 was hot-removed") for m_ in hp.printed)


def test_remove_by_index_one_past_the_last_lmb_is_einval_not_a_crash():
    # 4G of 256M LMBs, max_memory 8G: DRC indexes 0x80000000..0x8000001f exist; 0x80000020
    # names no LMB ("no such LMB"), so drmgr gets EINVAL like any unknown index
    sc = Scenario.build("rm-past-end", machine={"memory": "4G", "lmb_size": "256M"},
                        script=[{"name": "d", "actor": "hotplug",
                                 "run": ["drmgr -c mem -r -s 0x80000020"]}])
    res = sim.run(sc)
    assert res.failure is None
    assert [t["exit"] for t in res.transcript] == [1]
    assert "Invalid argument" in res.transcript[0]["stderr"]


def test_user_pages_fill_zone_movable_from_its_bottom_and_normal_memory_from_its_top():
    mm = _mm()
    mm.pages.assign(0, 8 * PS, "kernel", "k", 0)
    mm.pages.assign(8 * PS, 16 * PS, "free")
    mm.movable = (8 * PS, 16 * PS)
    assert mm._place("user", PS) == [(8 * PS, 9 * PS)]
    assert mm._place("kernel", PS) is None          # the kernel never takes ZONE_MOVABLE
    mm.movable = None
    assert mm._place("user", PS) == [(15 * PS, 16 * PS)]


def test_meminfo_used_is_total_minus_free_minus_cache():
    mm = _mm()
    mm.pages.assign(0, 8 * PS, "kernel", "k", 0)
    mm.pages.assign(8 * PS, 10 * PS, "cache", "c", 0)
    mm.pages.assign(10 * PS, 16 * PS, "free")
    info = mm.meminfo()
    assert info == {"total": 16 * PS, "free": 6 * PS, "cache": 2 * PS, "used": 8 * PS,
                    "available": 8 * PS}


@pytest.mark.parametrize("fadump, movable", [("on", True), ("nonmovable", False)])
def test_the_area_is_zone_movable_only_with_fadump_on(fadump, movable):
    sc = Scenario.build("zm", machine={"memory": "8G"}, kernel={"cmdline": f"fadump={fadump}"})
    res = sim.run(sc, keep_sched=True)
    assert res.sched.actors["kernel"].fw.zone_movable is movable


@pytest.mark.parametrize("mem, adjusted", [("8G", False), ("4G", True)])
def test_mem_equal_to_the_end_of_dram_is_not_adjusted(mem, adjusted):
    # fadump_reserve_mem(): only `memory_limit < memblock_end_of_DRAM()` raises the limit
    # (a plain printk: no "fadump: " prefix)
    sc = Scenario.build("m", machine={"memory": "8G"}, kernel={"cmdline": f"fadump=on mem={mem}"})
    res = sim.run(sc)
    lines = [ln for ln in res.kernel_log if str(ln).startswith("Adjusted memory_limit")]
    assert bool(lines) is adjusted


@pytest.mark.parametrize("lock", [True, False])
def test_registration_under_the_hotplug_lock_never_races_a_dlpar_remove(lock):
    # [kernel] hotplug_lock = true (the what-if) makes fadump_register_store() take the
    # device-hotplug lock after fadump_mutex: no order of the DLPAR remove of LMB 3 can
    # then break the reserved area; without it some order does (the RFC's race)
    from fadumpsim import api
    from fadumpsim.scenario import load
    sc = load("hotplug-lock-registration")
    data = dict(sc.data, kernel=dict(sc.data.get("kernel", {}), hotplug_lock=lock))
    r = api.explore(Scenario(data, source=sc.source), "exhaustive", schedules=5000)
    assert r.complete
    found = sorted({i for f in r.failures for i in f.invariants})
    assert found == ([] if lock else ["reserved-area-intact"])


def test_a_crash_info_header_with_another_magic_is_not_valid(monkeypatch):
    # process_fadump(): a header at fadumphdr_addr whose magic is not "FADMPINF" (here
    # written by a kernel that got it wrong) is refused like a missing one
    import fadumpsim.actors.kernel.fadump as fadump_mod
    sc = Scenario.build("magic", machine={"memory": "8G"}, script=[
        {"name": "k", "actor": "kernel",
         "run": ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]},
        {"name": "c", "actor": "capture", "run": ["free -m"]}])
    good = sim.run(sc)
    assert good.dump["status"] == "available"
    monkeypatch.setattr(fadump_mod, "CRASH_INFO_MAGIC", "FADMPINX")
    bad = sim.run(sc)
    assert "Crash info header is not valid." in bad.kernel_log
    assert bad.dump["status"] == "invalid"
