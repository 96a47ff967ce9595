# The bugs the test-strength issue listed, each as one textual change (regular
# expression -> replacement, matching exactly once). `python tools/mutation.py --named`
# applies them one at a time and runs the judged tests: every one must be killed.
# Loaded by tools/mutation.py (which provides `Named`).
NAMED = [
    Named("fifo-by-send-order", "replay/strategies.py",  # noqa: F821
          r"bk = heads\[0\]\.due, heads\[0\]\.send_order\n(.*\n){2}.*k = h\.due, h\.send_order",
          "bk = heads[0].send_order, heads[0].due\n        for i in range(1, len(heads)):\n"
          "            h = heads[i]\n            k = h.send_order, h.due"),
    Named("in-partition-end-off-by-one", "actors/firmware.py",  # noqa: F821
          r"first, last = start // lmb, \(start \+ length - 1\) // lmb",
          "first, last = start // lmb, (start + length) // lmb"),
    Named("crashkernel-range-inclusive", "actors/kernel/sizing.py",  # noqa: F821
          r"ram < hi_b\)", "ram <= hi_b)"),
    Named("contiguity-misses-trailing-hole", "actors/kernel/fadump.py",  # noqa: F821
          r"                d_start = end\n        return False",
          "                d_start = end\n        return True"),
    Named("remove-by-count-precheck-off-by-one", "actors/hotplug.py",  # noqa: F821
          r'if r\["count"\] < n:', 'if r["count"] < n - 1:'),
    Named("second-echo-1-calls-firmware", "actors/kernel/fadump.py",  # noqa: F821
          r"            if fw\.dump_registered:\n                ret = -errno\.EEXIST",
          "            if False:\n                ret = -errno.EEXIST"),
    Named("capture-eperm-becomes-enodev", "actors/kernel/fadump.py",  # noqa: F821
          r"fw\.fdm_active is not None:\n            return -errno\.EPERM",
          "fw.fdm_active is not None:\n            return -errno.ENODEV"),
    Named("crashing-cpu-always-0", "actors/kernel/actor.py",  # noqa: F821
          r"self\.sysrq_crash\(cpu=self\.scripts\.index\(ev\.src\) % self\.machine\.cpus",
          "self.sysrq_crash(cpu=0 * self.machine.cpus"),
    Named("user-pages-use-bit-16", "fadumpsim/dumpfile/image.py",  # noqa: F821
          r'"user": 8, "free": 16', '"user": 16, "free": 16'),
    Named("dump-armed-judges-first-write", "fadumpsim/invariants.py",  # noqa: F821
          r"before\[-1\]\[0\] if before and before\[-1\]\[1\] == \"1\"",
          'before[0][0] if before and before[0][1] == "1"'),
]
