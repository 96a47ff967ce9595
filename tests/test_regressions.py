"""Behaviour the test-strength issue found unpinned, one plausible bug per test.

Every test runs the whole system through a scenario and asserts what a kernel
engineer would see (exit codes, kernel messages, RTAS calls, dump contents), so
it survives refactoring of the code under it. Messages are matched without their
`fadump: ` / `pseries-hotplug-mem: ` prefix.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import pytest

from fadumpsim.actors.sizes import GB, MB


def script(name, actor, *cmds, after=()):
    cmds_s = ", ".join(f'"{c}"' for c in cmds)
    aft = ", ".join(f'"{a}"' for a in after)
    return f'[[script]]\nname = "{name}"\nactor = "{actor}"\nafter = [{aft}]\nrun = [{cmds_s}]\n'


REG = "echo 1 > /sys/kernel/fadump_registered"
UNREG = "echo 0 > /sys/kernel/fadump_registered"
CRASH = "echo c > /proc/sysrq-trigger"


def klog(res) -> str:
    return "\n".join(res.kernel_log)


def exits(res, name):
    return [t["exit"] for t in res.transcript if t["script"] == name]


def rtas_calls(res, cmd=None):
    """RTAS ibm,configure-kernel-dump calls the kernel made (from the event log)."""
    out = []
    for ev in res.sched_events:
        if ev[4] == "rtas.configure_kernel_dump" and (cmd is None or ev[7]["cmd"] == cmd):
            out.append(ev)
    return out


@pytest.fixture
def runlog(run):
    """Like `run`, and keep every delivered record on the result (`sched_events`)."""
    def go(text, **kw):
        recs: list = []
        res = run(text, sink=recs.append, **kw)
        res.sched_events = recs
        return res
    return go


# -- firmware: the partition bound of a section ------------------------------------------------
def test_boot_memory_ending_exactly_at_a_hole_registers(runlog):
    # crashkernel=512M: boot memory [0, 512M) ends exactly where unassigned LMB 2 begins.
    res = runlog('name = "edge"\n[machine]\nunassigned = [2]\n'
                 '[kernel]\ncmdline = "fadump=on crashkernel=512M"\n' + script("k", "kernel", REG))
    assert exits(res, "k") == [0]
    assert res.registered
    assert "registration is successful" in klog(res)


def test_trailing_hole_in_boot_memory_is_refused_with_the_hole_message(runlog):
    # 576MB of boot memory on 256MB LMBs with LMB 2 missing: the hole is at the end.
    res = runlog('name = "tail"\n[machine]\nunassigned = [2]\n' + script("k", "kernel", REG))
    assert exits(res, "k") == [1]
    assert "Can't have holes in boot memory area while registering fadump" in klog(res)
    assert "Parameter Error(-3)" in klog(res)
    assert not res.registered


# -- the 2018 store: EEXIST without a second RTAS call ------------------------------------------
def test_second_echo_1_does_not_call_firmware_again(runlog):
    res = runlog('name = "twice"\n' + script("k", "kernel", REG, REG))
    assert exits(res, "k") == [0, 1]
    assert len(rtas_calls(res, cmd=1)) == 1
    assert res.registered


def test_injected_minus_9_reads_as_already_registered(runlog):
    # the kernel's -9 branch (firmware already holds a registration): EEXIST, the
    # kernel then believes it is registered
    res = runlog('name = "fw9"\n' + script("fw", "firmware", "inject rtas -9 1")
                 + script("k", "kernel", REG, after=["fw"]))
    assert exits(res, "k") == [1]
    assert "already  registered" in klog(res)
    assert "File exists" in next(t["stderr"] for t in res.transcript if t["script"] == "k")


# -- crashkernel= range syntax ----------------------------------------------------------------------
@pytest.mark.parametrize("memory,expect_mb", [("4G", 1024), ("8G", 1024), ("2G", 512)])
def test_crashkernel_range_end_is_exclusive(run, memory, expect_mb):
    # "start-end:size": system RAM in [start, end); 4G falls in "4G-", not in "0-4G"
    res = run(f'name = "ck"\n[machine]\nmemory = "{memory}"\n'
              '[kernel]\ncmdline = "fadump=on crashkernel=0-4G:512M,4G-:1G"\n')
    line = next(l for l in res.kernel_log if "Reserved" in l and "firmware-assisted dump" in l)
    assert f"Reserved {expect_mb}MB of memory" in line, line


# -- DLPAR remove-by-count pre-check ------------------------------------------------------------------
def _precheck(runlog, n):
    res = runlog(f'name = "n{n}"\n' + script("hp", "hotplug", f"drmgr -c mem -r -q {n}"))
    return res, [r[4] for r in res.sched_events]


def test_remove_by_count_precheck_boundary(runlog):
    import re
    res, _t = _precheck(runlog, 32)
    m = re.search(r"Not enough LMBs available \((\d+) of 32\) to satisfy request", klog(res))
    assert m, klog(res)
    avail = int(m.group(1))
    assert 1 <= avail < 32
    # one more than available: refused before any LMB is offlined (no offline, no rollback)
    res, types = _precheck(runlog, avail + 1)
    assert exits(res, "hp") == [1]
    assert f"Not enough LMBs available ({avail} of {avail + 1})" in klog(res)
    assert "hp.offline" not in types and "uevent" not in types
    # exactly the available number passes the pre-check and starts offlining
    res, types = _precheck(runlog, avail)
    assert f"Attempting to hot-remove {avail} LMB(s)" in klog(res)
    assert "hp.offline" in types


# -- the capture kernel ---------------------------------------------------------------------------------
def test_capture_kernel_refuses_registration_with_eperm(run):
    res = run('name = "cap"\n' + script("k", "kernel", REG, CRASH)
              + script("c", "capture", REG))
    cap = [t for t in res.transcript if t["script"] == "c"]
    assert cap[0]["exit"] == 1
    assert "Operation not permitted" in cap[0]["stderr"]


def test_crashing_cpu_is_the_one_that_ran_sysrq(tmp_path):
    from elftools.elf.elffile import ELFFile

    from fadumpsim import api, scenario
    text = ('name = "cpu"\n' + script("a", "kernel", REG)
            + script("b", "kernel", CRASH, after=["a"])
            + script("c", "capture", "cp /proc/vmcore /var/crash/vmcore"))
    sc = scenario.loads(text, "<t>")
    res = api.record(sc, str(tmp_path / "r.fadlog"), dump_dir=str(tmp_path / "d"), keep_sched=True)
    assert res.dump["status"] == "saved"
    crash_cpu = None
    for ev in _records(tmp_path / "r.fadlog"):
        if ev[4] == "rtas.os_term":
            crash_cpu = ev[7]["crash"]["cpu"]
    assert crash_cpu == 1  # script "b" is the kernel's second script
    with open(tmp_path / "d" / "var" / "crash" / "vmcore", "rb") as f:
        elf = ELFFile(f)
        notes = [n for s in elf.iter_segments() if s["p_type"] == "PT_NOTE" for n in s.iter_notes()]
    pr = [_raw(n) for n in notes if n["n_type"] == "NT_PRSTATUS"]
    assert len(pr) == 8
    # the crashing CPU's elf_prstatus carries pr_cursig = SIGSEGV (offset 12, a short);
    # pr_pid (offset 32) holds cpu + 1 in the files fadumpsim writes
    crashing = [int.from_bytes(d[32:36], "little") - 1 for d in pr
                if int.from_bytes(d[12:14], "little") == 11]
    assert crashing == [crash_cpu]


def _raw(note) -> bytes:
    desc = note["n_desc"]
    return desc if isinstance(desc, (bytes, bytearray)) else bytes(desc, "latin-1")


def _records(path):
    from fadumpsim.events.logfile import read_log
    _h, recs, _t, err = read_log(path)
    assert err is None
    return recs


# -- sizes -----------------------------------------------------------------------------------------------------
def test_gb_mb_helpers_are_binary():
    assert GB == 1024 * MB == 1 << 30


# -- makedumpfile dump levels: each bit filters its own class ------------------------------------------------
WORKLOAD = '[workload]\nuser = "1G"\ncache = "512M"\n'
USER_PAGES, CACHE_PAGES = (1 << 30) // (64 << 10), (512 << 20) // (64 << 10)


def _excluded(stdout: str, label: str) -> int:
    line = next(l for l in stdout.splitlines() if l.strip().startswith(label))
    return int(line.split(":")[1], 16)


@pytest.mark.parametrize("level", [0, 1, 2, 4, 8, 16, 31])
def test_dump_level_bits_filter_their_own_class(run, level):
    res = run(f'name = "d{level}"\n' + WORKLOAD + script("k", "kernel", REG, CRASH)
              + script("cap", "capture", f"makedumpfile -d {level} /proc/vmcore /var/crash/vmcore"))
    out = next(t["stdout"] for t in res.transcript if t["script"] == "cap")
    d = res.dump
    assert d["status"] == "saved" and d["level"] == level
    # bit 8: user process data; filtered pages are neither expected nor lost
    if level & 8:
        assert d["user_pages_expected"] == 0 and d["user_pages_lost"] == 0
        assert _excluded(out, "User process data pages") > 0
    else:
        assert d["user_pages_expected"] == USER_PAGES
        assert _excluded(out, "User process data pages") == 0
        # the part of the user memory the firmware copy overwrote (ZONE_MOVABLE reuse)
        assert d["user_pages_lost"] == USER_PAGES - d["user_pages_captured"] > 0
    # bit 2: non-private page cache
    assert _excluded(out, "Non-private cache pages") == (CACHE_PAGES if level & 2 else 0)
    # kernel pages are never filtered by these levels, and none is lost
    assert d["kernel_pages_lost"] == 0 and d["kernel_pages_captured"] == d["kernel_pages_expected"] > 0


# -- dump-armed is judged on the LAST script write before the crash -------------------------------------------
def test_echo_1_then_echo_0_then_crash_is_not_a_dump_armed_violation(run):
    res = run('name = "off"\n' + script("k", "kernel", REG, UNREG, CRASH))
    assert res.dump["status"] == "none"
    assert not [v for v in res.violations if v["invariant"] == "dump-armed"]


def test_echo_0_then_echo_1_then_lost_dump_is_a_dump_armed_violation(run):
    res = run('name = "on"\n' + script("fw", "firmware", "inject copy-error destination")
              + script("k", "kernel", UNREG, REG, CRASH, after=["fw"]))
    assert res.dump["status"] not in ("saved", "available")
    assert [v["invariant"] for v in res.violations] == ["dump-armed"]



# -- memblock contiguity (RFC 3/4's hole check) ---------------------------------------------------------------
def test_contiguity_check_sees_a_trailing_hole(run):
    res = run('name = "z"\n[kernel]\ncmdline = "fadump=nonmovable"\n', keep_sched=True)
    k = res.sched.actors["kernel"]
    top = 8 * GB
    lmb = 256 * MB
    assert k._contiguous(top - 2 * lmb, top)
    k.mm.remove(top - lmb, top)                     # the last LMB leaves: memory ends early
    assert not k._contiguous(top - 2 * lmb, top)    # a hole at the very end
    assert k._contiguous(top - 2 * lmb, top - lmb)  # up to the hole is fine
    k.mm.remove(top - 3 * lmb, top - 2 * lmb)
    assert not k._contiguous(top - 4 * lmb, top - lmb)  # a hole in the middle


@contextmanager
def _counting_lmb_removable(k):
    """Count the kernel's per-LMB removability questions inside the block ([n])."""
    calls = [0]
    orig = k._lmb_removable

    def counted(i):
        calls[0] += 1
        return orig(i)
    k._lmb_removable = counted
    try:
        yield calls
    finally:
        k._lmb_removable = orig


# -- the DLPAR scan over LMBs jumps over registered fadump areas, with the same answers ---------------------------
@pytest.mark.parametrize("revert", [[], ["hotplug-protect"], "upstream"])
@pytest.mark.parametrize("memory,lmb", [("64G", "256M"), ("16G", "128M"), ("8G", "256M")])
def test_removable_scan_equals_asking_every_lmb(run, revert, memory, lmb):
    head = 'profile = "upstream"\n' if revert == "upstream" else ""
    revert = [] if revert == "upstream" else revert
    res = run(head + f'name = "scan"\n[machine]\nmemory = "{memory}"\nlmb_size = "{lmb}"\n'
              f'[kernel]\nrevert = {revert!r}\n'.replace("'", '"') + script("k", "kernel", REG),
              keep_sched=True)
    k = res.sched.actors["kernel"]
    assert k.fw.dump_registered
    brute = [i for i in range(len(k.drmem)) if k.drmem[i] and k.lmb_is_removable(i)[0]]
    assert list(k.removable_lmbs()) == brute
    for start in (0, 1, 5, len(k.drmem) // 3, len(k.drmem) - 1):
        assert list(k.removable_lmbs(start)) == [i for i in brute if i >= start]
    # the jump is what makes it cheap: far fewer lmb_is_removable calls than LMBs scanned
    with _counting_lmb_removable(k) as calls:
        first = next(k.removable_lmbs(), None)
    assert first is not None and first >= 3  # the areas come first: boot memory from 0
    assert calls[0] < first  # fewer questions than LMBs passed over


@pytest.mark.parametrize("registered", [False, True])
def test_removable_scan_jumps_over_unmovable_extents(run, registered):
    """Remove by count scans for removable LMBs: a 2TB kernel allocation on 8TB of 64MB
    LMBs (32,768 LMBs of kernel pages) is one jump, with the answers of asking every LMB."""
    res = run('name = "scan"\n[machine]\nmemory = "8T"\nlmb_size = "64M"\n'
              '[workload]\nkernel = "2T"\nuser = "64G"\n'
              + (script("k", "kernel", REG) if registered else ""), keep_sched=True)
    k = res.sched.actors["kernel"]
    assert k.fw.dump_registered == registered
    with _counting_lmb_removable(k) as calls:
        got = list(itertools.islice(k.removable_lmbs(), 64))
    assert calls[0] < 1000, calls
    brute = []
    for i in range(len(k.drmem)):
        if k.drmem[i] and k.lmb_is_removable(i)[0]:
            brute.append(i)
            if len(brute) == 64:
                break
    assert got == brute and len(got) == 64
    unmovable = sum(1 for i in range(brute[-1]) if k.drmem[i] and not k.lmb_is_removable(i)[0])
    assert unmovable > 10 * calls[0]  # the scan passed over them without asking each


# -- lsmem reads blocks as runs: the same text as asking every block ----------------------------------------
def _blocks_one_by_one(k):
    """The per-block walk memory_blocks() replaced (the reference)."""
    out = []
    for lmb in range(len(k.drmem)):
        if not k.drmem[lmb]:
            continue
        s, e = k.lmb_range(lmb)
        b = k._memory_block(lmb, s, e, list(k.mm.pages.pieces(s, e)))
        if b is not None:
            out.append(b)
    return out


@pytest.mark.parametrize("toml", [
    '[machine]\nmemory = "64G"\nlmb_size = "256M"\nnodes = 4\nunassigned = [9, 40]\n'
    '[workload]\nkernel = "3G"\nuser = "5G"\n',
    '[machine]\nmemory = "16G"\nlmb_size = "128M"\n[kernel]\ncmdline = "fadump=on mem=9G"\n',
    'profile = "upstream"\n[machine]\nmemory = "32G"\nnodes = 2\n[workload]\ncache = "2G"\n',
])
def test_lsmem_runs_read_like_every_block(run, toml):
    from fadumpsim.actors.kernel import shell
    res = run('name = "ls"\n' + toml + script("k", "kernel", REG)
              + script("d", "hotplug", "drmgr -c mem -r -q 3", after=["k"]), keep_sched=True)
    k = res.sched.actors["kernel"]
    ref = shell.lsmem(_blocks_one_by_one(k), k.machine.lmb_size)
    assert shell.lsmem(k.memory_blocks(), k.machine.lmb_size) == ref
    assert ref.count("\n") > 6  # several rows: zones, nodes, holes, removability differ


def test_lsmem_on_64tb_asks_a_few_blocks(run):
    res = run('name = "ls"\n[machine]\nmemory = "64T"\nmax_memory = "64T"\nnodes = 2\n'
              '[workload]\nkernel = "1T"\nuser = "2T"\n' + script("k", "kernel", REG),
              keep_sched=True)
    k = res.sched.actors["kernel"]
    calls = []
    orig = k._memory_block
    k._memory_block = lambda *a: calls.append(a[0]) or orig(*a)
    blocks = k.memory_blocks()
    assert len(k.drmem) == 262144 and len(calls) < 200, len(calls)
    assert sum(b["last"] - b["index"] + 1 for b in blocks) == 262144
