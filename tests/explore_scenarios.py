"""Scenarios shared by tests/test_explore.py and benchmarks/bench_explore.py."""
from __future__ import annotations

from fadumpsim.scenario import Scenario, loads

CAT = "cat /sys/kernel/fadump_enabled"

# The crash script first reads fadump_enabled twice (as a test harness checks state before
# pulling the trigger): without that, the crash's cmd.run is pending from the start and a
# uniformly random scheduler rarely holds it back long enough (median ~150 schedules to the
# first hit, vs ~12 with the two reads; see benchmarks/bench_explore.py), while PCT and
# exhaustive search find the window quickly either way.
UDEV = """
name = "udev window"
[hotplug]
udev_reload = true
[[script]]
name = "kdump"
actor = "kernel"
run = ["echo 1 > /sys/kernel/fadump_registered"]
[[script]]
name = "hotadd"
actor = "hotplug"
after = ["kdump"]
run = ["drmgr -c mem -a -q 1"]
[[script]]
name = "crash"
actor = "kernel"
after = ["kdump"]
run = [%s"echo c > /proc/sysrq-trigger"]
[expect]
dump = "available"
"""


def udev(cats: int = 2) -> Scenario:
    return loads(UDEV % (f'"{CAT}", ' * cats), f"<udev cats={cats}>")
