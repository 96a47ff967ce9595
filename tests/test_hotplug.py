"""DLPAR, udev, crash and capture through the actors."""
from tests.test_kernel import script


def test_remove_by_count_skips_protected_lmbs(run):
    # registered: LMB 3 (reserved area) is protected, LMB 4 holds kernel pages; the first
    # removable LMB from the bottom is 5
    res = run('name = "c"\n[workload]\nkernel = "600M"\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
              script("hotplug", "drmgr -c mem -r -q 1", name="d", after=["k"]))
    assert "pseries-hotplug-mem: Memory at 50000000 was hot-removed" in res.kernel_log
    unreg = run('name = "u"\n[workload]\nkernel = "600M"\n' + script("hotplug", "drmgr -c mem -r -q 1"))
    # not registered: the ZONE_MOVABLE LMB 3 inside the fadump area goes first
    assert "pseries-hotplug-mem: Memory at 30000000 was hot-removed" in unreg.kernel_log


def test_hot_remove_migrates_user_pages_in_batches(run):
    res = run('name = "m"\n[workload]\nuser = "1G"\n' + script("hotplug", "drmgr -c mem -r -s 0x80000003"),
              keep_sched=True)
    k = res.sched.actors["kernel"]
    assert res.transcript[0]["exit"] == 0
    assert k.mm.by_class()["user"] == 1 << 30          # nothing lost, all migrated
    batches = sum(1 for _ in res.sched.trace if _ == ("kernel", "kernel"))
    assert batches >= 256 * (1 << 20) // (256 * 65536) - 1   # 16MB per batch, one LMB
    assert not res.violations


def test_release_mem_accounting(run):
    res = run('name = "r"\n[workload]\nuser = "1G"\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger", name="k") +
              script("capture", "free -m", "echo 1 > /sys/kernel/fadump_release_mem", "free -m",
                     "lsmem", name="c"), keep_sched=True)
    cap = res.sched.actors["capture"]
    t = [x for x in res.transcript if x["script"] == "c"]
    before = int(t[0]["stdout"].splitlines()[1].split()[1])
    after = int(t[2]["stdout"].splitlines()[1].split()[1])
    assert before < 576 and after == 7557      # the fadump area stays reserved after release
    assert cap.mm.movable is None              # not ZONE_MOVABLE until the next fresh boot
    assert "Movable" not in t[3]["stdout"]
    assert not res.violations
    # memblock.reserved follows the release: the new area stays reserved, and nothing
    # reserved is memory the release handed back (the old, larger range is gone)
    ra_s, ra_e = cap.fw.reserved_area()
    assert [ra_s, ra_e] in [list(r) for r in cap.mm.reserved]
    for s, e in cap.mm.reserved:
        assert all(k != "free" for _s, _e, k, _t, _b in cap.mm.pages.pieces(s, e)), (s, e)


def test_udev_rule_unregisters_and_reregisters(run):
    res = run('name = "u"\n[hotplug]\nudev_reload = true\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
              script("hotplug", "drmgr -c mem -a -q 1", name="d", after=["k"]), keep_sched=True)
    hp = res.sched.actors["hotplug"]
    log = [line for _seq, line in hp.udev_log]
    assert log[0].startswith("memory32: online")
    assert "kdumpctl stop: echo 0 > /sys/kernel/fadump_registered -> 0" in log
    assert "kdumpctl start: echo 1 > /sys/kernel/fadump_registered -> 0" in log
    assert res.sched.actors["kernel"].fw.dump_registered
    assert res.sched.now >= 1_000_000_000      # kdumpctl start (no rebuild) on the virtual clock


def test_crash_without_registration_reboots_without_dump(run):
    res = run('name = "n"\n' + script("kernel", "echo c > /proc/sysrq-trigger", name="k") +
              script("capture", "cp /proc/vmcore /x", name="c"))
    assert res.dump["status"] == "none"
    assert "cp: cannot stat '/proc/vmcore'" in res.transcript[-1]["stderr"]


def test_kernel_pages_never_lost_user_pages_lost_with_d0(run):
    res = run('name = "l"\n[workload]\nkernel = "1G"\nuser = "3G"\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger", name="k") +
              script("capture", "makedumpfile -d 0 /proc/vmcore /x", name="c"))
    assert res.dump["kernel_pages_lost"] == 0
    # the whole ZONE_MOVABLE area (576MB) held user pages: 9216 pages lost
    assert res.dump["user_pages_lost"] == 576 * 16


def test_hot_add_after_registration_is_missing_from_vmcore(run):
    res = run('name = "h"\n[kernel]\ncmdline = "fadump=nonmovable"\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
              script("hotplug", "drmgr -c mem -a -q 1", name="d", after=["k"]) +
              script("kernel", "sim alloc user 128M", "echo c > /proc/sysrq-trigger", name="a", after=["d"]) +
              script("capture", "cp /proc/vmcore /x", name="c"))
    assert res.dump["user_pages_lost"] == 128 * 16
    assert res.dump["kernel_pages_lost"] == 0


def test_hot_remove_after_registration_leaves_unreadable_range(run):
    res = run('name = "s"\n[kernel]\nrevert = ["hotplug-protect"]\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
              script("hotplug", "drmgr -c mem -r -s 0x80000010", name="d", after=["k"]) +
              script("kernel", "echo c > /proc/sysrq-trigger", name="x", after=["d"]) +
              script("capture", "makedumpfile -d 31 /proc/vmcore /x", name="c"))
    save = res.transcript[-1]
    assert save["exit"] == 0 and "readmem: Can't read the dump memory" in save["stderr"]
    assert res.dump["status"] == "saved" and res.dump["kernel_pages_lost"] == 0


def test_crashed_kernel_handles_nothing(run):
    # the udev reload's `echo 1` reaches the kernel after it crashed: it must not register
    res = run('name = "d"\n[hotplug]\nudev_reload = true\n' +
              script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
              script("hotplug", "drmgr -c mem -a -q 1", name="d", after=["k"]) +
              script("kernel", "echo c > /proc/sysrq-trigger", name="x", after=["d"]), keep_sched=True)
    k = res.sched.actors["kernel"]
    assert k.crashed
    regs = [line for line in res.kernel_log if "registration is successful" in line]
    assert len(regs) == 1
    assert res.sched.actors["firmware"].registered is None


def dlpar_vs_crash(seed: int, cats: int = 12):
    """Registered fadump; a 3-LMB hot-remove and a hot-add race a crash (which a few
    reads delay, so that it lands anywhere in the DLPAR operations)."""
    from fadumpsim import scenario, sim
    records: list = []
    sc = scenario.loads('name = "dc"\n[hotplug]\nudev_reload = true\n' +
                        script("kernel", "echo 1 > /sys/kernel/fadump_registered", name="k") +
                        script("hotplug", "drmgr -c mem -r -q 3", "drmgr -c mem -a -q 2",
                               name="d", after=["k"]) +
                        script("kernel", *["cat /sys/kernel/fadump_enabled"] * cats,
                               "echo c > /proc/sysrq-trigger", name="x", after=["k"]),
                        "<dlpar-vs-crash>")
    res = sim.run(sc, strategy="random", seed=seed, sink=records.append, keep_sched=True)
    return res, records


def test_dlpar_dies_with_its_kernel():
    mid = 0
    for seed in range(80):
        res, records = dlpar_vs_crash(seed)
        hp = res.sched.actors["hotplug"]
        # [seq, time, src, dst, type, cause, chan_seq, payload]
        term = next(r[0] for r in records if r[4] == "rtas.os_term")
        crash = next(r[5] for r in records if r[4] == "rtas.os_term")
        to_fw = [r for r in records if r[3] == "firmware" and r[4].startswith("dlpar.")]
        assert all(r[0] < term for r in to_fw), f"seed {seed}: DLPAR reached firmware after os-term"
        # until hp.crashed reaches it, the hotplug actor may still send, but only to the
        # crashed kernel (which drops it) or to its scripts: never to firmware
        late = [r for r in records if r[2] == "hotplug" and r[5] > crash]
        assert all(r[3] in ("kernel", "d", "hotplug") for r in late), f"seed {seed}: {late}"
        assert res.sched.actors["kernel"].crashed
        assert hp.dead and not hp.ops, f"seed {seed}: {hp.ops}"
        drmgr = [t for t in res.transcript if t["script"] == "d"]
        if any(t["exit"] is None for t in drmgr):
            mid += 1           # the crash cut a drmgr short: it never answered
    assert mid >= 5             # the crash did land inside DLPAR operations


def test_debug_only_and_invented_messages_are_not_in_dmesg(run):
    from fadumpsim import scenario, sim
    # the rollback story: offlining fails for lack of room, but pr_debug is not in dmesg
    res = sim.run(scenario.load("remove-by-count-rollback"))
    assert "pseries-hotplug-mem: Memory hot-remove failed, adding LMB's back" in res.kernel_log
    assert not [l for l in res.kernel_log if "memory offlining" in l]
    # remove by index of an LMB beyond the drmem table: -EINVAL, the usual failure line
    res = run('name = "i"\n' + script("hotplug", "drmgr -c mem -r -s 0x800000ff", name="d"))
    assert res.transcript[0]["exit"] == 1
    assert "Invalid argument" in res.transcript[0]["stderr"]
    assert "pseries-hotplug-mem: Failed to hot-remove memory at ff0000000" in res.kernel_log
    assert not [l for l in res.kernel_log if "Failed to find LMB" in l]
    # add by count beyond max_memory: silent -EINVAL after the "Attempting" line
    res = run('name = "a"\n' + script("hotplug", "drmgr -c mem -a -q 40", name="d"))
    assert res.transcript[0]["exit"] == 1
    assert "Invalid argument" in res.transcript[0]["stderr"]
    hp = [l for l in res.kernel_log if l.startswith("pseries-hotplug-mem: ")]
    assert hp == ["pseries-hotplug-mem: Attempting to hot-add 40 LMB(s)"]
