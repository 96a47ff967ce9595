"""The invariant checker and the dump verdict on forged states, without a simulation.

Each invariant must fire on its own bad case and stay quiet on the nearest good one:

* `reserved-area-intact`: the first and last LMB of the boot-memory region and of the
  reserved area, at registration and at a later DLPAR release; the LMB just outside
  either end is not the area's; an unregistered area is forgotten;
* `accounting` (pages): a live kernel's pages short of, or beyond, its present LMBs;
* `dump-armed`: judged on the last successful kernel write before the first crash;
* `kernel-data-captured`: one lost kernel page is a violation, reported at the dump;
* the verdict: the dump status rules, and a page is captured only with the right
  content identity (tag and page number), whatever its place in the extent.

Fast (no actors, no scheduler): they come first in the mutation check's invariants area.
"""
from __future__ import annotations

from types import SimpleNamespace as NS

from fadumpsim.invariants import Checker
from fadumpsim.ownership import DRC_BASE
from fadumpsim.actors.pagemap import PageMap
from fadumpsim.verdict import dump_status, judge, page_counts

LMB = 256 << 20
PS = 64 << 10
N_LMBS = 16
BOOT = (0, 4 * LMB)            # LMBs 0..3
AREA = (8 * LMB, 12 * LMB)     # LMBs 8..11


class World:
    """Just the actor state the checker reads: firmware, two kernels, hotplug, scripts."""

    def __init__(self, boot: tuple[int, int] = BOOT, area: tuple[int, int] = AREA) -> None:
        m = NS(lmb_size=LMB, page_size=PS)
        self.firmware = NS(machine=m, registered=None, assigned=bytearray(b"\x01" * N_LMBS))
        self.pages = N_LMBS * LMB
        self.kernel = NS(name="kernel", machine=m, booted=True, crashed=False,
                         drmem=bytearray(b"\x01" * N_LMBS), ops={}, locks={},
                         mm=NS(by_class=lambda: {"kernel": LMB, "free": self.pages - LMB}),
                         fw=NS(boot_memory_size=boot[1], reserved_area=lambda: area))
        capture = NS(name="capture", machine=m, booted=False, crashed=False, ops={}, locks={},
                     drmem=bytearray(N_LMBS))
        self.scripts = {
            "kdump": NS(actor="kernel", results=[]),
            "dlpar": NS(actor="hotplug", results=[]),
        }
        self.sched = NS(actors={"firmware": self.firmware, "kernel": self.kernel,
                                "capture": capture, "hotplug": NS(in_transit=[]),
                                **self.scripts})
        self.checker = Checker()
        self.seq = 0

    def deliver(self, src: str, dst: str, type_: str = "x", cause: int = 0,
                **payload) -> int:
        self.seq += 1
        self.checker(self.sched, NS(type=type_, src=src, dst=dst, seq=self.seq,
                                    cause=cause, payload=payload))
        return self.seq

    def register(self) -> int:
        self.firmware.registered = object()
        return self.deliver("kernel", "firmware", "rtas.call")

    def release(self, lmb: int) -> int:
        """A DLPAR release: firmware takes LMB `lmb` out of the partition."""
        self.firmware.assigned[lmb] = 0
        return self.deliver("hotplug", "firmware", "rtas.call", drc_index=DRC_BASE + lmb)

    def command(self, script: str, command: str, kernel_seq: int, exit: int = 0) -> None:
        """A script hears that its command, completed at kernel delivery `kernel_seq`, ended."""
        res = self.scripts[script].results
        res.append({"command": command, "exit": exit})
        self.deliver("kernel", script, "cmd.result", cause=kernel_seq, index=len(res) - 1,
                     exit=exit)

    def crash(self, kernel_seq: int, src: str = "kernel") -> None:
        self.deliver(src, "firmware", "rtas.os_term", cause=kernel_seq)

    def found(self, name: str | None = None) -> list:
        return [v for v in self.checker.violations if name is None or v.invariant == name]


ECHO1 = "echo 1 > /sys/kernel/fadump_registered"
ECHO0 = "echo 0 > /sys/kernel/fadump_registered"


# -- reserved-area-intact ---------------------------------------------------------------------------
def _released_while_registered(lmb: int, **kw) -> World:
    w = World(**kw)
    w.register()
    w.deliver("kernel", "firmware", "rtas.call")     # firmware hears something else meanwhile
    w.release(lmb)
    return w


def test_release_of_the_reserved_areas_last_lmb_is_reported_with_its_drc_index():
    w = _released_while_registered(11)
    [v] = w.found()
    assert v.invariant == "reserved-area-intact" and v.seq == w.seq
    assert v.message == ("LMB 11 (drc index 0x8000000b) left the partition while firmware "
                         "holds a registration covering [0x80000000-0xbfffffff]")


def test_release_of_the_reserved_areas_first_lmb_is_reported():
    [v] = _released_while_registered(8).found()
    assert v.message.startswith("LMB 8 (drc index 0x80000008) left")


def test_release_of_the_boot_memory_regions_lmbs_is_reported():
    for lmb in (0, 3):
        [v] = _released_while_registered(lmb).found()
        assert v.message == (f"LMB {lmb} (drc index {0x80000000 + lmb:#x}) left the partition "
                             "while firmware holds a registration covering [0x0-0x3fffffff]")


def test_release_of_the_lmbs_just_outside_each_region_is_fine():
    for lmb in (4, 7, 12, 15):
        assert _released_while_registered(lmb).found() == [], lmb


def test_an_area_ending_inside_an_lmb_covers_that_lmb_only():
    area = (8 * LMB + LMB // 2, 11 * LMB + 1)        # touches LMBs 8..11
    assert [v.message[:6] for v in _released_while_registered(11, area=area).found()] == ["LMB 11"]
    assert _released_while_registered(12, area=area).found() == []
    assert _released_while_registered(7, area=area).found() == []


def test_an_empty_area_covers_no_lmb():
    area = (8 * LMB + LMB // 2, 8 * LMB + LMB // 2)
    assert _released_while_registered(8, area=area).found() == []


def test_registration_over_an_lmb_already_gone_is_reported_at_registration():
    for lmb, cover in ((10, "[0x80000000-0xbfffffff]"), (11, "[0x80000000-0xbfffffff]"),
                       (0, "[0x0-0x3fffffff]"), (3, "[0x0-0x3fffffff]")):
        w = World()
        w.firmware.assigned[lmb] = 0
        seq = w.register()
        [v] = w.found()
        assert (v.invariant, v.seq) == ("reserved-area-intact", seq)
        # already gone when firmware accepted it (QEMU checks no holes): said as such,
        # not "left the partition" (the swarm's hole findings group on this text)
        assert v.message == (f"LMB {lmb} (drc index {0x80000000 + lmb:#x}) was not in the "
                             f"partition when firmware accepted a registration covering {cover}")


def test_registration_with_only_neighbours_gone_is_fine():
    w = World()
    for lmb in (4, 7, 12):
        w.firmware.assigned[lmb] = 0
    w.register()
    assert w.found() == []


def test_nothing_is_reported_without_a_registration_and_a_new_one_brings_its_own_area():
    w = World()
    w.release(9)                                   # no registration: anything goes
    w.firmware.assigned[9] = 1
    w.register()
    w.firmware.registered = None                   # unregistered
    w.deliver("kernel", "firmware", "rtas.call")
    w.kernel.fw.reserved_area = lambda: (12 * LMB, 14 * LMB)
    w.register()                                   # registers again, elsewhere
    w.release(9)                                   # the old area: fine now
    assert w.found() == []
    w.release(13)
    [v] = w.found()
    assert v.message.startswith("LMB 13 ") and v.message.endswith("[0xc0000000-0xdfffffff]")


def test_only_the_first_violation_of_an_invariant_is_kept():
    w = _released_while_registered(9)
    w.release(10)
    assert [v.message[:5] for v in w.found()] == ["LMB 9"]


# -- accounting: a live kernel's pages against its present LMBs ----------------------------------
def _pages_off_by(delta: int, **kernel) -> World:
    w = World()
    w.deliver("firmware", "kernel")                # the kernel boots (ownership starts)
    w.pages += delta
    for k, v in kernel.items():
        setattr(w.kernel, k, v)
    w.deliver("firmware", "kernel")
    return w


def test_pages_matching_present_lmbs_are_fine():
    assert _pages_off_by(0).found() == []


def test_one_page_missing_or_one_too_many_is_an_accounting_violation():
    for delta in (-PS, PS):
        w = _pages_off_by(delta)
        [v] = w.found()
        assert (v.invariant, v.seq) == ("accounting", 2)
        assert v.message == (f"kernel: pages account for {N_LMBS * LMB + delta} bytes but "
                             f"{N_LMBS * LMB} bytes of LMBs are present")


def test_a_crashed_or_not_booted_kernel_is_not_counted():
    assert _pages_off_by(-PS, crashed=True).found() == []
    assert _pages_off_by(-PS, booted=False).found() == []


# -- dump-armed ---------------------------------------------------------------------------------------
def _armed(writes: list[tuple[str, int]], crash: int = 20, status: str = "none",
           **kw) -> World:
    w = World()
    for cmd, seq in writes:
        w.command("kdump", cmd, seq, **kw)
    w.crash(crash)
    w.checker.finish({"status": status, "kernel_pages_lost": 0}, 0)
    return w


def test_echo_1_then_a_crash_without_a_dump_is_reported_with_both_events():
    w = _armed([(ECHO1, 5)], crash=9)
    [v] = w.found()
    assert (v.invariant, v.seq) == ("dump-armed", 9)
    assert v.message == ("a script registered fadump (event #5) and never unregistered it, "
                         "but the crash at event #9 gave dump status 'none'")


def test_the_last_write_before_the_crash_decides():
    assert _armed([(ECHO1, 5), (ECHO0, 7)]).found() == []
    [v] = _armed([(ECHO0, 5), (ECHO1, 7)]).found()
    assert "(event #7)" in v.message
    [v] = _armed([(ECHO1, 3), (ECHO1, 6)]).found()
    assert "(event #6)" in v.message
    # judged in kernel order, not in the order the script heard back
    [v] = _armed([(ECHO1, 7), (ECHO0, 5)]).found()
    assert "(event #7)" in v.message


def test_writes_after_the_crash_or_failed_or_by_other_actors_do_not_arm():
    assert _armed([(ECHO1, 25)], crash=20).found() == []
    assert _armed([(ECHO1, 5)], exit=1).found() == []
    w = World()
    w.command("dlpar", ECHO1, 5)                   # a hotplug script's command
    w.crash(9)
    w.checker.finish({"status": "none", "kernel_pages_lost": 0}, 0)
    assert w.found() == []


def test_a_saved_or_available_dump_satisfies_dump_armed():
    for status in ("saved", "available"):
        assert _armed([(ECHO1, 5)], status=status).found() == []
    assert [v.invariant for v in _armed([(ECHO1, 5)], status="lost").found()] == ["dump-armed"]


def test_not_armed_is_never_a_dump_armed_violation():
    assert _armed([]).found() == []
    assert _armed([(ECHO0, 5)]).found() == []


def test_the_first_kernel_crash_counts_not_a_later_one_or_the_capture_kernels():
    w = World()
    w.crash(4, src="capture")                      # not the production kernel
    w.command("kdump", ECHO1, 5)
    w.crash(9)
    w.crash(30)                                    # a later os-term changes nothing
    w.checker.finish({"status": "none", "kernel_pages_lost": 0}, 0)
    [v] = w.found()
    assert v.seq == 9 and "crash at event #9" in v.message


def test_a_command_result_for_an_actor_without_results_is_ignored():
    w = World()
    w.deliver("kernel", "hotplug", "cmd.result", cause=3, index=0, exit=0)
    assert w.checker.writes == [] and w.found() == []


# -- kernel-data-captured ------------------------------------------------------------------------------
def test_one_lost_kernel_page_in_a_saved_dump_is_reported_at_the_dump():
    w = World()
    w.crash(9)
    w.checker.finish({"status": "saved", "kernel_pages_lost": 1}, 40)
    [v] = w.found()
    assert (v.invariant, v.seq, v.message) == ("kernel-data-captured", 40,
                                               "the saved dump lost 1 kernel pages")


def test_an_available_dump_losing_pages_is_reported_at_the_crash():
    w = World()
    w.crash(9)
    w.checker.finish({"status": "available", "kernel_pages_lost": 3}, 0)
    [v] = w.found()
    assert (v.invariant, v.seq) == ("kernel-data-captured", 9)


def test_no_lost_kernel_page_or_no_dump_is_fine():
    for status, lost in (("saved", 0), ("available", 0), ("none", 5), ("lost", 5)):
        w = World()
        w.crash(9)
        w.checker.finish({"status": status, "kernel_pages_lost": lost}, 40)
        assert w.found("kernel-data-captured") == [], status


# -- the verdict ---------------------------------------------------------------------------------------
def test_dump_status_rules():
    up = NS(crashed=True)
    assert dump_status(NS(crashed=False), NS(booted=True, boot_count=1, dump_status="x")) == \
        "no-crash"
    assert dump_status(up, NS(booted=False, boot_count=0, dump_status="x")) == "none"
    # the capture kernel booted once and is gone (rebooted): its own status stands
    assert dump_status(up, NS(booted=False, boot_count=1, dump_status="saved")) == "saved"
    assert dump_status(up, NS(booted=True, boot_count=1, dump_status="available")) == \
        "available"


def _truth() -> PageMap:
    t = PageMap(PS)
    t.assign(4 * PS, 12 * PS, "kernel", "slab", 100)   # 8 kernel pages, slab pages 100..107
    t.assign(12 * PS, 14 * PS, "user", "anon", 7)      # 2 user pages
    return t


def test_page_counts_need_the_right_content_at_the_right_place():
    kept = [# 4..6 missing
            [6 * PS, 8 * PS, "kernel", "slab", 102],   # right, starting mid-extent
            [8 * PS, 9 * PS, "kernel", "slab", 98],    # wrong page of the right allocation
            [9 * PS, 10 * PS, "kernel", "other", 105],  # right number, wrong allocation
            [10 * PS, 11 * PS, "kernel", "slab", 106],  # right
            # 11..12 missing
            [12 * PS, 14 * PS, "user", "anon", 7]]
    assert page_counts(_truth(), kept, 0, PS) == {
        "kernel_pages_expected": 8, "kernel_pages_captured": 3, "kernel_pages_lost": 5,
        "user_pages_expected": 2, "user_pages_captured": 2, "user_pages_lost": 0}


def test_page_counts_filtered_user_pages_are_not_lost():
    kept = [[4 * PS, 12 * PS, "kernel", "slab", 100]]
    out = page_counts(_truth(), kept, 8, PS)
    assert (out["kernel_pages_lost"], out["user_pages_expected"], out["user_pages_lost"]) == \
        (0, 0, 0)


def _crashed_kernel() -> NS:
    return NS(crashed=True, crash_truth=_truth(), machine=NS(page_size=PS))


def test_judge_a_saved_dump_uses_the_last_saved_file():
    cap = NS(booted=True, boot_count=1, dump_status="saved", saved_dumps=[
        {"kept": [], "level": 0, "path": "/var/crash/old"},
        {"kept": [[4 * PS, 12 * PS, "kernel", "slab", 100]], "level": 31,
         "path": "/var/crash/vmcore"}])
    out = judge(_crashed_kernel(), cap)
    assert out == {"status": "saved", "kernel_pages_lost": 0, "user_pages_lost": 0,
                   "path": "/var/crash/vmcore", "level": 31,
                   "kernel_pages_expected": 8, "kernel_pages_captured": 8,
                   "user_pages_expected": 0, "user_pages_captured": 0}


def test_judge_an_available_dump_reads_vmcore_at_level_0():
    cap = NS(booted=True, boot_count=1, dump_status="available", last_vmcore=14 * PS,
             vmcore_pages=lambda a, b: ([[4 * PS, 10 * PS, "kernel", "slab", 100]], 0, 0))
    out = judge(_crashed_kernel(), cap)
    assert (out["level"], out["kernel_pages_lost"], out["user_pages_lost"]) == (0, 2, 2)


def test_judge_without_a_dump_reports_nothing_lost():
    cap = NS(booted=False, boot_count=0, dump_status="none")
    assert judge(_crashed_kernel(), cap) == {"status": "none", "kernel_pages_lost": 0,
                                             "user_pages_lost": 0}
    assert judge(NS(crashed=False), cap)["status"] == "no-crash"
