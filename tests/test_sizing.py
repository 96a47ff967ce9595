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
