"""boot_memory_size and placement for several memory sizes and command lines."""
import pytest

from fadumpsim.actors.kernel.sizing import calculate_reserve_size, parse_cmdline
from fadumpsim.actors.sizes import GB, MB


@pytest.mark.parametrize("ram,rma,cmdline,expected,msg", [
    (8 * GB, 512 * MB, "fadump=on", 576 * MB, None),            # min with 512MB RMA
    (4 * GB, 256 * MB, "fadump=on", 320 * MB, None),            # min with 256MB RMA
    (64 * GB, 512 * MB, "fadump=on", 3072 * MB, None),          # 5% = 3276.8MB -> 3072MB
    (1024 * GB, 512 * MB, "fadump=on", 52224 * MB, None),       # 5% of 1TB = 52428.8MB, down to 256MB
    (8 * GB, 512 * MB, "fadump=on crashkernel=1G", 1 * GB, None),
    (8 * GB, 512 * MB, "fadump=on crashkernel=3G", 2 * GB, "Adjusted boot memory size to 2048MB"),
    (8 * GB, 512 * MB, "fadump=on crashkernel=300M@64M", 300 * MB, None),  # base ignored, no min
    (8 * GB, 512 * MB, "fadump=on crashkernel=1G-4G:256M,4G-:512M", 512 * MB, None),
])
def test_reserve_size(ram, rma, cmdline, expected, msg):
    log: list[str] = []
    p = parse_cmdline(cmdline, ram)
    assert calculate_reserve_size(p, ram, rma, log) == expected
    assert log == ([msg] if msg else [])


def test_fadump_param_prefix_match():
    assert parse_cmdline("fadump=onx", 1).enabled
    assert not parse_cmdline("fadump=off", 1).enabled
    p = parse_cmdline("fadump=nonmovable", 1)
    assert p.enabled and p.nonmovable
    assert not parse_cmdline("quiet", 1).enabled


@pytest.mark.parametrize("memory,cmdline,area_line", [
    ("8G", "fadump=on", "fadump: Reserved 576MB of memory at 576MB for firmware-assisted dump (System RAM: 8192MB)"),
    ("4G", "fadump=on", "fadump: Reserved 576MB of memory at 576MB for firmware-assisted dump (System RAM: 4096MB)"),
    ("64G", "fadump=on", "fadump: Reserved 3072MB of memory at 3072MB for firmware-assisted dump (System RAM: 65536MB)"),
    ("8G", "fadump=on crashkernel=300M", "fadump: Reserved 304MB of memory at 608MB"),   # 16MB aligned; RTAS at 496MB pushes it one area up
    # RFC 2/4 aligns unconditionally: fadump=nonmovable does not skip it (300M -> 304MB)
    ("8G", "fadump=nonmovable crashkernel=300M", "fadump: Reserved 304MB of memory at 608MB"),
])
def test_placement_through_the_kernel(run, memory, cmdline, area_line):
    res = run(f"""
        name = "t"
        [machine]
        memory = "{memory}"
        [kernel]
        cmdline = "{cmdline}"
    """)
    assert any(area_line in line for line in res.kernel_log), res.kernel_log


def test_rma_256m_gives_320m_minimum(run):
    res = run("""
        name = "t"
        [machine]
        memory = "4G"
        rma_size = "256M"
    """)
    assert any("Reserved 320MB of memory at 320MB" in line for line in res.kernel_log)


# -- the command line as the 2018 kernel reads it --------------------------------------------------
from fadumpsim.actors.kernel.sizing import memparse  # noqa: E402
from tests.test_kernel import script  # noqa: E402


@pytest.mark.parametrize("text,value,rest", [
    ("3G", 3 * GB, ""), ("3g", 3 * GB, ""), ("3Gb", 3 * GB, "b"), ("0x10M", 16 * MB, ""),
    ("010", 8, ""), ("512", 512, ""), ("lots", 0, "lots"), ("1T@64M", 1 << 40, "@64M"),
])
def test_memparse(text, value, rest):
    assert memparse(text) == (value, rest)


def boot(run, cmdline, *cmds):
    return run(f'name = "c"\n[kernel]\ncmdline = "{cmdline}"\n' +
               (script("kernel", *cmds, name="k") if cmds else ""))


@pytest.mark.parametrize("cmdline,warning", [
    ("fadump=on crashkernel=3Gb", "crashkernel: unrecognized char: b"),
    ("fadump=on crashkernel=lots", "crashkernel: memory value expected"),
    ("fadump=on crashkernel=1G-4G;256M", "crashkernel: unrecognized char: -"),  # no ':': simple
    ("fadump=on crashkernel=1G:256M", "crashkernel: '-' expected"),
])
def test_malformed_crashkernel_is_a_warning_and_no_crashkernel(run, cmdline, warning):
    res = boot(run, cmdline, "echo 1 > /sys/kernel/fadump_registered")
    assert warning in res.kernel_log                      # crash_core.c: no pr_fmt
    # no crashkernel: the 5% default (576MB minimum with a 512MB RMA) is used
    assert any(l.startswith("fadump: Reserved 576MB of memory at 576MB") for l in res.kernel_log)
    assert res.transcript[0]["exit"] == 0


def test_unknown_parameter_is_ignored_by_the_kernel(run):
    res = boot(run, "fadumb=on", "cat /sys/kernel/fadump_enabled")
    assert not [l for l in res.kernel_log if l.startswith("fadump: ") or "crashkernel" in l]
    assert res.transcript[0]["stderr"] == "cat: /sys/kernel/fadump_enabled: No such file or directory\n"
    ok = boot(run, "fadump-on=1 fadump=on", "cat /sys/kernel/fadump_enabled")
    assert ok.transcript[0]["stdout"] == "1\n"
    dash = boot(run, "fadump_reserve-mem=1G fadump=on")   # '-' and '_' are the same in names
    assert any("Reserved 1024MB of memory at 1024MB" in l for l in dash.kernel_log)


def test_fadump_reserve_mem_deprecated_but_used(run):
    res = boot(run, "fadump=on fadump_reserve_mem=1G")
    assert "fadump: 'fadump_reserve_mem=' parameter is deprecated in favor of 'crashkernel=' parameter." \
        in res.kernel_log
    assert any(l.startswith("fadump: Reserved 1024MB of memory at 1024MB") for l in res.kernel_log)
    both = boot(run, "fadump=on fadump_reserve_mem=1G crashkernel=512M")
    assert "fadump: Using 'crashkernel=' parameter for memory reservation." in both.kernel_log
    assert any(l.startswith("fadump: Reserved 512MB of memory at 512MB") for l in both.kernel_log)


def test_mem_limit_raised_by_the_fadump_area_and_enforced(run):
    res = boot(run, "fadump=on mem=4G", "lsmem", "echo 1 > /sys/kernel/fadump_registered",
               "echo c > /proc/sysrq-trigger")
    # memory blocks up to the cut (4672MB + 64K, inside LMB 18) only
    lsmem = res.transcript[0]["stdout"]
    assert "0x0000000120000000-0x000000012fffffff" in lsmem       # LMB 18, partly kept
    assert "0x0000000130000000" not in lsmem                        # LMB 19: beyond mem=
    # area = 576MB + 64K: memory_limit becomes 4G + area, printed with %#016llx
    assert "Adjusted memory_limit for firmware-assisted dump, now 0x00000124010000" in res.kernel_log
    assert "fadump: Reserved 576MB of memory at 576MB for firmware-assisted dump (System RAM: 8192MB)" \
        in res.kernel_log
    # memblock keeps 4672MB + 64K; MemTotal is what the kernel manages of it
    mem = next(l for l in res.kernel_log if l.startswith("Memory: "))
    assert mem.endswith(f"/{(4 * GB + 576 * MB + 64 * 1024) >> 10}K available")
    assert res.memtotal_mb < 4 * 1024 + 576
    assert res.dump["status"] == "available" and not res.violations
    # 5% of the end of DRAM (64G: 3072MB) is truncated to mem= (1024MB)
    big = run('name = "m"\n[machine]\nmemory = "64G"\n[kernel]\ncmdline = "fadump=on mem=1G"\n')
    assert any(l.startswith("fadump: Reserved 1024MB of memory at 1024MB") for l in big.kernel_log)
    full = run('name = "m"\n[machine]\nmemory = "64G"\n')
    assert any(l.startswith("fadump: Reserved 3072MB of memory at 3072MB") for l in full.kernel_log)
