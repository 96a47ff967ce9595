"""Production kernel and firmware behaviour, each through the actors."""
import pytest

from fadumpsim.actors import errno
from fadumpsim.actors.sizes import MB


def script(actor, *cmds, name="s", after=()):
    cmds = ", ".join(f'"{c}"' for c in cmds)
    aft = ", ".join(f'"{a}"' for a in after)
    return f'[[script]]\nname = "{name}"\nactor = "{actor}"\nafter = [{aft}]\nrun = [{cmds}]\n'


def test_free_m_gain_is_boot_memory_size(run):
    rfc = run('name = "a"\n')
    non = run('name = "b"\n[kernel]\ncmdline = "fadump=nonmovable"\n')
    classic = run('name = "c"\nprofile = "classic"\n')
    reverted = run('name = "d"\n[kernel]\nrevert = ["zone-movable"]\n')
    assert rfc.memtotal_mb == 8133 and non.memtotal_mb == 7557
    assert rfc.memtotal_mb - non.memtotal_mb == 576
    assert classic.memtotal_mb == reverted.memtotal_mb == 7557


@pytest.fixture
def booted(run):
    """A booted 8GB kernel actor, for the zone_movable_init_reserved_mem() unit cases."""
    res = run('name = "z"\n[kernel]\ncmdline = "fadump=nonmovable"\n', keep_sched=True)
    k = res.sched.actors["kernel"]
    k.log.clear()
    return k


def test_zone_movable_failure_cases(booted):
    k = booted
    base, size = k.fw.reserve_dump_area_start, k.fw.boot_memory_size
    assert k.zone_movable_init_reserved_mem(base, 0) == -errno.EINVAL            # size 0
    assert k.zone_movable_init_reserved_mem(4096 * MB, 256 * MB) == -errno.EINVAL  # not reserved
    assert k.zone_movable_init_reserved_mem(base + 64 * 1024, size) == -errno.EINVAL  # misaligned
    assert k.zone_movable_init_reserved_mem(base, size + 4096) == -errno.EINVAL     # size misaligned
    assert k.log == []  # the early checks print nothing
    k.mm.remove(768 * MB, 1024 * MB)                                              # a hole
    assert k.zone_movable_init_reserved_mem(base, size) == -errno.EINVAL
    assert k.log[-1][2] == "Zone movable could not be activated"


def test_zone_movable_node_crossing(run):
    res = run('name = "n"\n[machine]\nmemory = "2G"\nnodes = 2\n')
    assert "Zone movable could not be activated" in res.kernel_log
    assert "fadump: Failed to init zone movable area for firmware-assisted dump,-22" in res.kernel_log
    assert res.memtotal_mb < 2048 - 576


@pytest.mark.parametrize("rc,messages,exit_code,registered", [
    (0, ["firmware-assisted kernel dump registration is successful"], 0, True),
    (-1, ["Failed to register firmware-assisted kernel dump. Hardware Error(-1)."], 1, False),
    (-3, ["Failed to register firmware-assisted kernel dump. Parameter Error(-3)."], 1, False),
    (-9, ["firmware-assisted kernel dump is already  registered."], 1, True),
    (-7, ["fadump: Failed to register. Unknown Error(-7)."], 1, False),
])
def test_registration_return_codes(run, rc, messages, exit_code, registered):
    inject = [] if rc == 0 else [f"inject rtas {rc}"]
    text = 'name = "r"\n' + (script("firmware", *inject, name="f") if inject else "") + \
        script("kernel", "echo 1 > /sys/kernel/fadump_registered", "cat /sys/kernel/fadump_registered",
               name="k", after=["f"] if inject else [])
    res = run(text)
    for m in messages:
        assert m in res.kernel_log
    t = [x for x in res.transcript if x["script"] == "k"]
    assert t[0]["exit"] == exit_code
    assert t[1]["stdout"] == f"{int(registered)}\n"
    if rc == -1 or rc == -7:
        assert "write error: Input/output error" in t[0]["stderr"]
    if rc == -9:
        assert "write error: File exists" in t[0]["stderr"]


def test_busy_retry_calls_and_time(run):
    res = run('name = "b"\n' + script("firmware", "inject rtas 9902 2", name="f") +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k", after=["f"]),
              keep_sched=True)
    calls = res.sched.actors["firmware"].calls
    assert [c[1] for c in calls] == [1, 1, 1]
    assert res.sched.now >= 200_000_000


def test_eexist_einval_eperm(run):
    res = run('name = "e"\n' + script("kernel", "echo 1 > /sys/kernel/fadump_registered",
                                      "echo 1 > /sys/kernel/fadump_registered",
                                      "echo x > /sys/kernel/fadump_registered",
                                      "echo 5 > /sys/kernel/fadump_registered"))
    t = res.transcript
    assert [x["exit"] for x in t] == [0, 1, 1, 1]
    assert t[1]["stderr"].strip().endswith("write error: File exists")
    assert t[2]["stderr"].strip().endswith("write error: Invalid argument")
    assert t[3]["stderr"].strip().endswith("write error: Invalid argument")
    off = run('name = "o"\n[kernel]\ncmdline = "fadump=off"\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", "cat /sys/kernel/fadump_enabled"))
    # 2018: setup_fadump() returns before fadump_init_files() when fadump is off, so the
    # files do not exist (sysfs refuses the shell's O_CREAT); EPERM is the capture
    # kernel's answer (dump active), see scenarios/capture-eperm.toml
    assert off.transcript[0]["stderr"] == "bash: /sys/kernel/fadump_registered: Permission denied\n"
    assert off.transcript[1]["stderr"] == "cat: /sys/kernel/fadump_enabled: No such file or directory\n"
    cap = run('name = "c"\n' + script("kernel", "echo 1 > /sys/kernel/fadump_registered",
                                      "echo c > /proc/sysrq-trigger", name="k") +
              script("capture", "echo 1 > /sys/kernel/fadump_registered", name="c"))
    assert cap.transcript[-1]["stderr"] == "bash: echo: write error: Operation not permitted\n"


def test_hole_messages_and_revert(run):
    base = 'name = "h"\n{}' + script("hotplug", "drmgr -c mem -r -s 0x80000003", name="d") + \
        script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k", after=["d"])
    full = run(base.format(""))
    assert "fadump: Can't have holes in reserved memory area while registering fadump" in full.kernel_log
    rev = run(base.format('[kernel]\nrevert = ["hole-message"]\n'))
    assert not [l for l in rev.kernel_log if "Can't have holes in reserved memory area" in l]
    assert "Failed to register firmware-assisted kernel dump. Parameter Error(-3)." in rev.kernel_log
    boot = run('name = "b"\n' + script("hotplug", "drmgr -c mem -r -s 0x80000001", name="d") +
               script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k", after=["d"]))
    # LMB 1 holds kernel pages: not removable, so no hole appears
    assert boot.transcript[0]["exit"] == 1


def test_classic_vs_rfc_hot_remove(run):
    text = 'name = "c"\n{}' + script("hotplug", "drmgr -c mem -r -s 0x80000003", name="d")
    assert run(text.format("")).transcript[0]["exit"] == 0                 # rfc-v6, unregistered
    assert run(text.format('profile = "classic"\n')).transcript[0]["exit"] == 1


def test_debugfs_region_lines(run):
    res = run('name = "d"\n' + script("kernel", "cat /sys/kernel/debug/powerpc/fadump_region"))
    out = res.transcript[0]["stdout"].splitlines()
    assert out[0] == "CPU : [0x00000024000000-0x00000024002fff] 0x3000 bytes, Dumped: 0x0"
    assert out[2].startswith("DUMP: [0x00000024003000-0x00000048002fff] 0x24000000 bytes")


def test_workload_commands(run):
    res = run('name = "w"\n' + script("kernel", "sim alloc user 1G", "free -m", "sim free user 1G",
                                      "free -m", "sim alloc kernel 100T"))
    t = res.transcript
    used1 = int(t[1]["stdout"].splitlines()[1].split()[2])
    used2 = int(t[3]["stdout"].splitlines()[1].split()[2])
    assert used1 - used2 == 1024
    assert t[4]["exit"] == 1 and "cannot allocate" in t[4]["stderr"]


def test_user_pages_prefer_zone_movable(run):
    res = run('name = "m"\n[workload]\nuser = "256M"\n', keep_sched=True)
    k = res.sched.actors["kernel"]
    lo, hi = k.mm.movable
    assert k.mm.lmb_classes(lo, hi).get("user") == 256 * MB
    # kernel allocations never land in ZONE_MOVABLE
    k.mm.alloc("kernel", 2048 * MB)
    assert "kernel" not in k.mm.lmb_classes(lo, hi)
