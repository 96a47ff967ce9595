"""Profile `upstream` (mainline 2024) and its revertable steps, through the actors."""
import re

import pytest

from fadumpsim import sim
from fadumpsim.actors.kernel.upstream import boot_mem_regions, crash_ranges, reserve_size
from fadumpsim.actors.sizes import GB, MB
from fadumpsim.compare import variant
from fadumpsim.scenario import ScenarioError, builtin_names, load, loads

# Format strings copied from mainline (linux-next 2024): arch/powerpc/kernel/fadump.c
# (pr_fmt "fadump: ") and arch/powerpc/platforms/pseries/rtas-fadump.c (pr_fmt "rtas fadump: ").
FADUMP_C = [
    "Reserved %lldMB of memory at %#016llx (System RAM: %lldMB)",
    "Initialized 0x%lx bytes cma area at %ldMB from 0x%lx bytes of memory reserved for "
    "firmware-assisted dump",
    "Failed to init cma area for firmware-assisted dump,%d",
    "Failed to find memory chunk for reservation!",
    "Can't enable fadump with boot memory size (0x%lx) less than 0x%llx",
    "Too many holes in boot memory area to enable fadump",
    "Adjusted boot memory size to %luMB",
    "Firmware-assisted dump is active.",
    "Reserving %lluMB of memory at %#016llx for preserving crash data",
    "freeing reserved memory (0x%llx - 0x%llx)",
    "Crash info header is not valid.",
]
RTAS_FADUMP_C = [
    "Registration is successful!",
    "Failed to register. Hardware Error(%d).",
    "Can't have holes in boot memory area.",
    "Can't have holes in reserved memory area.",
    "Failed to register. Parameter Error(%d).",
    "Already registered!",
    "Failed to register. Unknown Error(%d).",
    "Failed to un-register - unexpected error(%d).",
    "Failed to invalidate - unexpected error (%d).",
    "Firmware-assisted dump is active.",
    "Dump taken by platform is not valid",
    "Dump taken by platform is incomplete",
]


def printf_regex(fmt: str) -> re.Pattern:
    """A C format string as a regex: %d/%ld/%llu -> decimal, 0x%lx -> hex, %#016llx ->
    0x and at least 14 hex digits (width 16 counts the prefix)."""
    out, i = "", 0
    for m in re.finditer(r"%(#0?16)?(l{0,2})([dux])", fmt):
        out += re.escape(fmt[i:m.start()])
        out += "0x[0-9a-f]{14,}" if m.group(1) else ("[0-9a-f]+" if m.group(3) == "x" else "-?[0-9]+")
        i = m.end()
    return re.compile(out + re.escape(fmt[i:]) + "$")


PATTERNS = {"fadump: ": [printf_regex(f) for f in FADUMP_C],
            "rtas fadump: ": [printf_regex(f) for f in RTAS_FADUMP_C]}


def c_printf(fmt: str, *args) -> str:
    """Python's % follows C printf for these conversions once length modifiers go."""
    return re.sub(r"%(#?0?\d*)l{1,2}([dux])", r"%\1\2", fmt) % args


def run_upstream(name: str, revert=()):
    return sim.run(variant(load(name), "upstream", tuple(revert)), keep_sched=True)


@pytest.mark.parametrize("revert", [(), ("hotplug-ready",), ("cma", "reregister")])
def test_every_prefixed_line_matches_a_mainline_format(revert):
    seen = set()
    for name in builtin_names():
        for line in run_upstream(name, revert).kernel_log:
            for prefix in ("rtas fadump: ", "fadump: "):
                if line.startswith(prefix):
                    body = line[len(prefix):]
                    assert any(p.match(body) for p in PATTERNS[prefix]), line
                    seen.add(prefix + body.split(" ")[0])
                    break
    assert {"fadump: Reserved", "rtas fadump: Registration"} <= seen


def test_messages_are_the_c_format_with_the_state():
    res = sim.run(loads('name = "u"\nprofile = "upstream"\n'), keep_sched=True)
    fw = res.sched.actors["kernel"].fw
    assert "fadump: " + c_printf(FADUMP_C[0], fw.reserve_dump_area_size >> 20,
                                 fw.reserve_dump_area_start, 8192) in res.kernel_log
    assert "fadump: " + c_printf(FADUMP_C[1], fw.boot_memory_size,
                                 fw.reserve_dump_area_start >> 20,
                                 fw.reserve_dump_area_size) in res.kernel_log
    assert res.kernel_log.count("rtas fadump: Registration is successful!") == 1  # at boot


def test_sizing_320mb_minimum_without_rma_term():
    log: list[str] = []
    assert reserve_size(None, 8 * GB, log) == 320 * MB        # 5% = 409MB -> 256MB < 320MB
    assert reserve_size(None, 64 * GB, log) == 3 * 1024 * MB  # 5% = 3276MB -> 3072MB
    assert reserve_size(3 * GB, 8 * GB, log) == 2 * GB and log == [
        "fadump: Adjusted boot memory size to 2048MB"]
    # the 2018 kernel needs max(256MB, RMA) + 64MB = 576MB on the same LPAR
    assert sim.run(loads('name = "c"\nprofile = "classic"\n'), keep_sched=True) \
        .sched.actors["kernel"].fw.boot_memory_size == 576 * MB


def test_boot_memory_regions_and_top():
    regs, top = boot_mem_regions([(0, 256 * MB), (512 * MB, 1024 * MB)], 320 * MB)
    assert regs == [[0, 256 * MB], [512 * MB, 64 * MB]] and top == 576 * MB
    many = [(i * 2 * MB, i * 2 * MB + MB) for i in range(8)]
    assert boot_mem_regions(many, 8 * MB)[0] is None           # 8 regions > 7
    assert boot_mem_regions(many, 7 * MB)[0] is not None


def test_too_many_holes_disables_fadump():
    res = sim.run(loads('name = "h"\nprofile = "upstream"\n[kernel]\ncmdline = "fadump=on '
                        'crashkernel=2G"\n[machine]\nmemory = "16G"\nlmb_size = "16M"\n'
                        'rma_size = "512M"\nunassigned = [33, 35, 37, 39, 41, 43, 45]\n'),
                  keep_sched=True)
    assert "fadump: Too many holes in boot memory area to enable fadump" in res.kernel_log
    assert not res.sched.actors["kernel"].fw.fadump_enabled


def test_first_fit_placement_above_boot_mem_top_skips_reservations():
    k = run_upstream("upstream-area-not-removable").sched.actors["kernel"]
    fw = k.fw
    assert fw.boot_mem_top == 320 * MB
    # [320MB, 512MB) is free but too small: the RMA's top holds RTAS and the PACAs
    assert fw.reserve_dump_area_start == 512 * MB
    assert k.mm.cma == (512 * MB, 832 * MB) and fw.cma


def test_cma_area_never_removable_and_lsmem_shows_normal():
    res = sim.run(load("upstream-area-not-removable"))
    assert res.ok and res.expectations, res.expectations  # the scenario's own [expect]
    assert [t["exit"] for t in res.transcript if t["command"].startswith("drmgr")] == [1, 1, 0]
    lsmem = [t for t in res.transcript if t["command"] == "lsmem"][0]["stdout"]
    assert "Movable" not in lsmem
    reverted = run_upstream("upstream-area-not-removable", ["cma"])
    # without CMA the area is plain reserved: still not removable, and MemTotal drops
    assert [t["exit"] for t in reverted.transcript if t["command"].startswith("drmgr")] == [1, 1, 0]
    assert res.memtotal_mb - reverted.memtotal_mb == 320
    assert not any("cma" in line for line in reverted.kernel_log)


def test_nocma_and_nonmovable():
    nocma = sim.run(loads('name = "n"\nprofile = "upstream"\n[kernel]\ncmdline = "fadump=nocma"\n'),
                    keep_sched=True)
    assert nocma.memtotal_mb == 8133 - 320 and nocma.sched.actors["kernel"].fw.fadump_enabled
    non = sim.run(loads('name = "n"\nprofile = "upstream"\n[kernel]\ncmdline = "fadump=nonmovable"\n'),
                  keep_sched=True)
    assert not non.sched.actors["kernel"].fw.fadump_enabled  # never reached mainline


def _echo_twice(revert):
    text = ('name = "r"\nprofile = "upstream"\n[kernel]\nrevert = %s\n[[script]]\nname = "k"\n'
            'actor = "kernel"\nrun = ["echo 1 > /sys/kernel/fadump/registered", '
            '"echo 1 > /sys/kernel/fadump_registered"]\n') % (list(revert),)
    return sim.run(loads(text.replace("'", '"')))


def test_second_echo_1_reregisters_unless_reverted():
    assert [t["exit"] for t in _echo_twice([]).transcript] == [0, 0]
    old = _echo_twice(["reregister"])
    assert [t["exit"] for t in old.transcript] == [1, 1]   # registered at boot: EEXIST
    assert "File exists" in old.transcript[0]["stderr"]
    late = _echo_twice(["reregister", "boot-register"])
    assert [t["exit"] for t in late.transcript] == [0, 1]


def test_sysfs_files_per_era():
    text = ('name = "s"\nprofile = "%s"\n[kernel]\nrevert = %s\n[[script]]\nname = "k"\n'
            'actor = "kernel"\nrun = ["cat /sys/kernel/fadump/hotplug_ready", '
            '"cat /sys/kernel/fadump/mem_reserved"]\n')
    up = sim.run(loads(text % ("upstream", "[]")))
    assert [t["stdout"] for t in up.transcript] == ["1\n", f"{(320 << 20) + (128 << 10)}\n"]
    old = sim.run(loads(text % ("upstream", '["hotplug-ready"]')))
    assert old.transcript[0]["exit"] == 1 and "No such file" in old.transcript[0]["stderr"]
    assert old.transcript[1]["exit"] == 0
    rfc = sim.run(loads(text % ("rfc-v6", "[]")))
    assert [t["exit"] for t in rfc.transcript] == [1, 1]


def test_hot_added_memory_in_dump_only_with_capture_built_header():
    up = sim.run(load("hotadd-kept-in-dump"))
    assert up.ok and up.expectations and up.dump["kernel_pages_lost"] == 0
    lost = up.dump["kernel_pages_expected"]
    for res in (run_upstream("hotadd-kept-in-dump", ["hotplug-ready"]),
                sim.run(variant(load("hotadd-kept-in-dump"), "rfc-v6", ()))):
        assert res.dump["status"] == "saved"
        assert 0 < res.dump["kernel_pages_lost"] <= 256 * MB // (64 << 10)
    assert lost > 0


def test_hot_removed_memory_not_in_capture_header():
    text = ('name = "rm"\nprofile = "upstream"\n[[script]]\nname = "d"\nactor = "hotplug"\n'
            'run = ["drmgr -c mem -r -s 0x80000010"]\n[[script]]\nname = "c"\nactor = "kernel"\n'
            'after = ["d"]\nrun = ["echo c > /proc/sysrq-trigger"]\n[[script]]\nname = "s"\n'
            'actor = "capture"\nrun = ["cp /proc/vmcore /v"]\n')
    for revert, listed in (([], False), (["hotplug-ready"], True)):
        res = sim.run(loads(text.replace('profile = "upstream"',
                                         f'profile = "upstream"\n[kernel]\nrevert = {revert}'
                                         .replace("'", '"'))), keep_sched=True)
        spans = [(ld["start"], ld["end"]) for ld in res.sched.actors["capture"].last_vmcore["loads"]]
        lmb16 = 16 * 256 * MB
        assert any(s <= lmb16 < e for s, e in spans) == listed
        # a header built at registration still lists the removed LMB: its reads fail
        assert ("readmem: Can't read" in res.transcript[-1]["stderr"]) == listed
        assert res.dump["status"] == "saved"


def test_crash_ranges_exclude_area_and_boot_memory():
    r = crash_ranges([(0, 4 * GB)], 320 * MB, 320 * MB, (512 * MB, 832 * MB))
    assert r == [[0, 320 * MB], [320 * MB, 512 * MB], [832 * MB, 4 * GB]]


@pytest.mark.parametrize("text, what", [
    ('name = "x"\nprofile = "upstream"\n[kernel]\nrevert = ["zone-movable"]', "can revert"),
    ('name = "x"\n[kernel]\nrevert = ["hotplug-ready"]', "can revert"),
    ('name = "x"\nprofile = "mainline"', "unknown profile"),
    ('name = "x"\n[hotplug]\nudev_rule = "systemd"', "udev_rule"),
    ('name = "x"\nprofile = "upstream"\n[hotplug]\nudev_rule = "reload-throttled-2019"', "udev_rule"),
])
def test_bad_profiles_and_reverts(text, what):
    with pytest.raises(ScenarioError, match=what):
        loads(text)
