"""Kernel messages carry the prefix their printk gives them (ground truth §8, checked
against the 2017/2018 fadump.c and the RFC v6 text).

fadump.c defines `pr_fmt(fmt) "fadump: " fmt`: pr_info/pr_err/pr_warn lines carry it, its
bare printk(KERN_*) lines do not. pseries hotplug-memory.c does the same with
"pseries-hotplug-mem: ". mm/page_alloc.c (RFC 1/4's "Zone movable could not be
activated") has no pr_fmt.
"""
from __future__ import annotations

import re

import pytest

from fadumpsim import scenario, sim

FADUMP = "fadump: "
HP = "pseries-hotplug-mem: "
#: message (its start, without any prefix) -> the prefix the real kernel prints
PREFIX = {
    # pr_info / pr_err / pr_warn in fadump.c
    "Reserved ": None,  # depends on which one: see below
    "Failed to reserve memory": FADUMP,
    "Adjusted boot memory size to": FADUMP,
    "Initialized 0x": FADUMP,
    "Failed to init zone movable area for firmware-assisted dump": FADUMP,
    "Can't have holes in boot memory area while registering fadump": FADUMP,
    "Can't have holes in reserved memory area while registering fadump": FADUMP,
    "Failed to register. Unknown Error(": FADUMP,
    "Failed to invalidate firmware-assisted dump registration": FADUMP,
    # bare printk(KERN_*) in fadump.c
    "firmware-assisted kernel dump registration is successful": "",
    "Failed to register firmware-assisted kernel dump. Hardware Error(": "",
    "Failed to register firmware-assisted kernel dump. Parameter Error(": "",
    "firmware-assisted kernel dump is already  registered.": "",
    "Failed to un-register firmware-assisted dump. unexpected error(": "",
    "Dump taken by platform is not valid": "",
    "Dump taken by platform is incomplete": "",
    "Crash info header is not valid.": "",
    "Firmware-assisted dump is active.": "",
    # mm/page_alloc.c (RFC 1/4)
    "Zone movable could not be activated": "",
    # pseries hotplug-memory.c: all pr_info/pr_err
    "Attempting to hot-": HP,
    "Not enough LMBs available": HP,
    "Memory hot-remove failed, adding LMB's back": HP,
    "Memory hot-add failed, removing any added LMBs": HP,
    "Memory at ": HP,
    "Failed to hot-remove memory at ": HP,
}
RESERVED = {  # the two "Reserved ..." lines of fadump_reserve_mem()
    re.compile(r"Reserved \d+MB of memory at \d+MB for firmware-assisted dump \(System RAM: \d+MB\)$"): FADUMP,
    re.compile(r"Reserved \d+MB of memory at \d+MB for saving crash dump$"): "",
}


def expected_prefix(line: str) -> tuple[str, str] | None:
    """(bare message, prefix it must carry) for a line of a known message, else None."""
    for p in (FADUMP, HP, ""):
        if not line.startswith(p):
            continue
        body = line[len(p):]
        if body.startswith("Reserved "):
            for rx, want in RESERVED.items():
                if rx.match(body):
                    return body, want
            continue
        for start, want in PREFIX.items():
            if want is not None and body.startswith(start):
                return body, want
    return None


def check(lines: list[str]) -> list[str]:
    bad = []
    for line in lines:
        e = expected_prefix(line)
        if e is not None and line != e[1] + e[0]:
            bad.append(f"{line!r} should be {e[1] + e[0]!r}")
    return bad


#: the 2018 profiles' scenarios; the upstream ones print mainline's lines, checked against
#: mainline's format strings in tests/test_upstream.py
SCENARIOS_2018 = [n for n in scenario.builtin_names() if scenario.load(n).kernel.profile != "upstream"]


@pytest.mark.parametrize("name", SCENARIOS_2018)
def test_every_library_message_has_its_printk_prefix(name):
    res = sim.run(scenario.load(name))
    assert not check(res.kernel_log)


def test_each_kind_is_seen_with_its_prefix():
    """The library covers both kinds of fadump.c lines and the DLPAR ones."""
    seen = []
    for name in scenario.builtin_names():
        seen += sim.run(scenario.load(name)).kernel_log
    want = [
        "fadump: Reserved 576MB of memory at 576MB for firmware-assisted dump (System RAM: 8192MB)",
        "fadump: Initialized 0x24000000 bytes as zone movable area at 576MB from 0x24010000 bytes of memory reserved for firmware-assisted dump",
        "fadump: Adjusted boot memory size to 2048MB",
        "fadump: Can't have holes in reserved memory area while registering fadump",
        "fadump: Failed to init zone movable area for firmware-assisted dump,-22",
        "firmware-assisted kernel dump registration is successful",
        "Failed to register firmware-assisted kernel dump. Parameter Error(-3).",
        "Failed to register firmware-assisted kernel dump. Hardware Error(-1).",
        "Firmware-assisted dump is active.",
        "Dump taken by platform is not valid",
        "Zone movable could not be activated",
        "pseries-hotplug-mem: Memory hot-remove failed, adding LMB's back",
    ]
    for w in want:
        assert w in seen, w
    assert any(re.fullmatch(r"Reserved \d+MB of memory at \d+MB for saving crash dump", l)
               for l in seen)


def test_unknown_error_and_invalidate_failures_are_pr_err():
    # an unknown RTAS status at registration, then a failing INVALIDATE in the capture kernel
    from tests.test_kernel import script
    res = sim.run(scenario.loads('name = "e"\n' + script(
        "firmware", "inject rtas -42", name="f") + script(
        "kernel", "echo 1 > /sys/kernel/fadump_registered", name="k", after=["f"]), "<e>"))
    assert "fadump: Failed to register. Unknown Error(-42)." in res.kernel_log
    assert not check(res.kernel_log)


def test_the_checker_itself_catches_a_wrong_prefix():
    assert check(["Initialized 0x1 bytes as zone movable area"])
    assert check(["fadump: firmware-assisted kernel dump registration is successful"])
    assert check(["Memory at 30000000 was hot-removed"])
    assert not check(["fadump: Failed to reserve memory", "Crash info header is not valid."])
