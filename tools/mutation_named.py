# The bugs the test-strength issue listed, each as one textual change (regular
# expression -> replacement, matching exactly once). `python tools/mutation.py --named`
# applies them one at a time and runs the judged tests: every one must be killed.
# Loaded by tools/mutation.py (which provides `Named`).
NAMED = [
    Named("fifo-by-send-order", "replay/strategies.py",  # noqa: F821
          r"bk = heads\[0\]\.due, heads\[0\]\.send_order\n(.*\n){2}.*k = h\.due, h\.send_order",
          "bk = heads[0].send_order, heads[0].due\n        for i in range(1, len(heads)):\n"
          "            h = heads[i]\n            k = h.send_order, h.due"),
    # the scheduler's FIFO fast path keeps its own heap of channel heads: the same bug there
    Named("fifo-heap-by-send-order-at-enqueue", "replay/runtime.py",  # noqa: F821
          r"heappush\(self\._heads, \(ev\.due, ev\.send_order, i\)\)",
          "heappush(self._heads, (ev.send_order, ev.due, i))"),
    Named("fifo-heap-by-send-order-after-pop", "replay/runtime.py",  # noqa: F821
          r"heappush\(self\._heads, \(h\.due, h\.send_order, self\._index\[key\]\)\)",
          "heappush(self._heads, (h.send_order, h.due, self._index[key]))"),
    Named("in-partition-end-off-by-one", "actors/firmware.py",  # noqa: F821
          r"first, last = start // lmb, \(start \+ length - 1\) // lmb",
          "first, last = start // lmb, (start + length) // lmb"),
    Named("crashkernel-range-inclusive", "actors/kernel/sizing.py",  # noqa: F821
          r"\(end is None or ram < end\)", "(end is None or ram <= end)"),
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
    # the minimizer (issue 13): a deviation rule must name the message by its channel
    # sequence, a constraint its delivery by its nth, and a candidate must fail the same way
    Named("deviation-rule-ignores-chan-seq", "replay/minimize.py",  # noqa: F821
          r"if heads\[k\]\.chan_seq == cs:", "if True:"),
    Named("constraint-ignores-nth", "replay/constraints.py",  # noqa: F821
          r"return \(\*k, self\.counts\.get\(k, 0\) \+ 1\)", "return (*k, 1)"),
    Named("minimizer-accepts-another-failure", "replay/minimize.py",  # noqa: F821
          r"_target\(res\) == self\.target", "_target(res) is not None"),
    # the invariants (issue 18): the boot-memory region and a region's last LMB are the
    # registration's too; one lost page is a loss; fewer pages than LMBs is an error too
    Named("reserved-area-skips-boot-memory", "fadumpsim/invariants.py",  # noqa: F821
          r"self\._areas = \[\(0, fw\.boot_memory_size\), fw\.reserved_area\(\)\]",
          "self._areas = [fw.reserved_area()]"),
    Named("reserved-area-misses-last-lmb", "fadumpsim/invariants.py",  # noqa: F821
          r"min\(hi, \(e - 1\) // lmb \+ 1\)", "min(hi, (e - 1) // lmb)"),
    Named("kernel-data-captured-tolerates-one-page", "fadumpsim/invariants.py",  # noqa: F821
          r'and verdict\["kernel_pages_lost"\]:', 'and verdict["kernel_pages_lost"] > 1:'),
    Named("accounting-compares-with-greater", "fadumpsim/invariants.py",  # noqa: F821
          r"if counted != present:", "if counted > present:"),
    # dump levels, the capture kernel's vmcore, firmware's copy and REGISTER
    Named("zero-and-free-bits-swapped", "fadumpsim/dumpfile/image.py",  # noqa: F821
          r'\{"zero": 1, "cache": 2, "cache_private": 4, "user": 8, "free": 16\}',
          '{"zero": 16, "cache": 2, "cache_private": 4, "user": 8, "free": 1}'),
    Named("unreadable-tail-not-counted", "actors/kernel/crash.py",  # noqa: F821
          r'unreadable \+= ld\["end"\] - pos', "unreadable += 0"),
    Named("header-magic-not-checked", "actors/kernel/crash.py",  # noqa: F821
          r'hdr is None or hdr\.get\("magic"\) != CRASH_INFO_MAGIC', "hdr is None"),
    Named("copy-error-flags-swapped", "actors/firmware_copy.py",  # noqa: F821
          r'ERR_INVALID_SOURCE if fail\.side == "source" else ERR_INVALID_DEST',
          'ERR_INVALID_DEST if fail.side == "source" else ERR_INVALID_SOURCE'),
    Named("double-register-is-minus-3", "actors/flavours.py",  # noqa: F821
          r"        return RC_ALREADY_REGISTERED\n", "        return RC_PARAM_ERROR\n"),
]
