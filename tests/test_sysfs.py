"""fadump's sysfs files as the 2018 kernel has them, and how writes to them are parsed."""
from __future__ import annotations

import pytest

from fadumpsim.actors.kernel.sysfs import kstrtoint
from tests.test_kernel import script

REG = "/sys/kernel/fadump_registered"


@pytest.mark.parametrize("buf,want", [
    ("1\n", (0, 1)), ("0\n", (0, 0)), ("1", (0, 1)), ("+1\n", (0, 1)), ("-1\n", (0, -1)),
    ("0x1\n", (0, 1)), ("0X1\n", (0, 1)), ("01\n", (0, 1)), ("010\n", (0, 8)),
    ("08\n", (-22, 0)),        # octal after a leading 0
    ("0b1\n", (-22, 0)), ("1_0\n", (-22, 0)), (" 1\n", (-22, 0)), ("1 \n", (-22, 0)),
    ("1\n\n", (-22, 0)), ("\n", (-22, 0)), ("", (-22, 0)), ("0x\n", (-22, 0)),
    ("0xg\n", (-22, 0)), ("2147483647\n", (0, 2147483647)), ("2147483648\n", (-34, 0)),
    ("-2147483648\n", (0, -2147483648)),
])
def test_kstrtoint(buf, want):
    assert kstrtoint(buf, 0) == want


@pytest.mark.parametrize("value,exit_code,registered", [
    ("1", 0, 1), ("0x1", 0, 1), ("01", 0, 1), ("+1", 0, 1),
    ("0b1", 1, 0), ("1_0", 1, 0), (" 1", 1, 0), ("1.0", 1, 0), ("2", 1, 0), ("true", 1, 0),
])
def test_register_store_parses_with_kstrtoint(run, value, exit_code, registered):
    res = run('name = "w"\n' + script("kernel", f"echo '{value}' > {REG}", f"cat {REG}", name="k"))
    t = res.transcript
    assert t[0]["exit"] == exit_code, t[0]
    if exit_code:
        assert t[0]["stderr"] == "bash: echo: write error: Invalid argument\n"
    assert t[1]["stdout"] == f"{registered}\n"


def test_second_release_is_eperm_not_a_missing_file(run):
    res = run('name = "r"\n' +
              script("kernel", f"echo 1 > {REG}", "echo c > /proc/sysrq-trigger", name="k") +
              script("capture", "echo 1 > /sys/kernel/fadump_release_mem",
                     "echo 1 > /sys/kernel/fadump_release_mem", name="c"))
    c = [t for t in res.transcript if t["script"] == "c"]
    assert c[0]["exit"] == 0
    assert c[1]["exit"] == 1
    assert c[1]["stderr"] == "bash: echo: write error: Operation not permitted\n"


def test_release_mem_does_not_exist_without_an_active_dump(run):
    res = run('name = "n"\n' + script("kernel", "echo 1 > /sys/kernel/fadump_release_mem", name="k"))
    assert res.transcript[0]["stderr"] == "bash: /sys/kernel/fadump_release_mem: Permission denied\n"


@pytest.mark.parametrize("profile", ["rfc-v6", "classic"])
def test_2018_profiles_have_no_sys_kernel_fadump_directory(run, profile):
    res = run(f'name = "p"\nprofile = "{profile}"\n' + script(
        "kernel", "echo 1 > /sys/kernel/fadump/registered", "cat /sys/kernel/fadump/registered",
        "cat /sys/kernel/fadump/enabled", f"cat {REG}", name="k"))
    t = res.transcript
    assert t[0]["stderr"] == "bash: /sys/kernel/fadump/registered: No such file or directory\n"
    assert t[1]["stderr"] == "cat: /sys/kernel/fadump/registered: No such file or directory\n"
    assert t[2]["stderr"] == "cat: /sys/kernel/fadump/enabled: No such file or directory\n"
    assert [x["exit"] for x in t] == [1, 1, 1, 0]
    assert t[3]["stdout"] == "0\n"     # nothing registered through the missing path


def test_fadump_disabled_creates_no_files(run):
    # setup_fadump() returns before fadump_init_files() when fadump is not enabled
    res = run('name = "o"\n[kernel]\ncmdline = "fadump=off"\n' + script(
        "kernel", "cat /sys/kernel/fadump_enabled", f"echo 1 > {REG}",
        "cat /sys/kernel/debug/powerpc/fadump_region", name="k"))
    t = res.transcript
    assert t[0]["stderr"] == "cat: /sys/kernel/fadump_enabled: No such file or directory\n"
    assert t[1]["stderr"] == f"bash: {REG}: Permission denied\n"
    assert t[2]["exit"] == 1
