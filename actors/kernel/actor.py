"""The production kernel actor (and, booted by firmware after a crash, the capture kernel).

One class serves both: the `capture` actor is the same kernel booted again with
`ibm,kernel-dump` in its device tree, exactly as on real hardware.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.commands import parse_command
from fadumpsim.actors.kernel import shell, sysfs
from fadumpsim.actors.kernel.crash import CrashMixin
from fadumpsim.actors.kernel.dlpar import DlparMixin
from fadumpsim.actors.kernel.fadump import FadumpMixin
from fadumpsim.actors.kernel.fwdump import FwDump
from fadumpsim.actors.kernel.upstream import UpstreamMixin
from fadumpsim.actors.kernel.sizing import parse_cmdline
from fadumpsim.actors.kernel.mm import (BOOT_MISC, KERNEL_IMAGE, MEM_LIMIT_TAG, RTAS_SIZE,
                                        STRUCT_PAGE_SIZE, KernelMM, OutOfMemory)
from fadumpsim.actors.machine import KernelConfig, Machine
from fadumpsim.actors.ops import OpActor
from fadumpsim.actors.pagemap import PageMap
from fadumpsim.events.envelope import Event


class Kernel(UpstreamMixin, FadumpMixin, CrashMixin, DlparMixin, OpActor):
    """A Linux kernel of the scenario's profile, on one partition."""

    def __init__(self, name: str, machine: Machine, cfg: KernelConfig,
                 scripts: list[str] | None = None, dump_dir: str | None = None) -> None:
        super().__init__(name)
        self.op_prefix = name[0]
        self.machine, self.cfg = machine, cfg
        self.scripts = list(scripts or [])
        self.dump_dir = dump_dir
        self.booted = False
        self.crashed = False
        self.boot_count = 0
        self.log: list[list[Any]] = []
        self.fw = FwDump()
        self.mm = KernelMM(machine)
        self.drmem = bytearray(machine.n_lmbs)
        self.blobs: dict[int, dict[str, Any]] = {}
        self.hp_lock_ops: dict[str, str] = {}
        self.oldmem: PageMap | None = None
        self.vmcore: dict[str, Any] | None = None
        self.last_vmcore: dict[str, Any] | None = None
        self.dump_status = "none"
        self.saved_dumps: list[dict[str, Any]] = []
        self.crash_truth: PageMap | None = None
        self.memtotal_after_boot = 0
        self.pending_cmds: list[Event] = []
        #: host I/O errors while writing --dump-dir files (never part of the simulation)
        self.host_errors: list[OSError] = []
        #: fadump_init_files() created fadump_release_mem (fadump enabled, dump active at boot)
        self.release_mem_created = False
        self.params = parse_cmdline(cfg.cmdline, 0)
        self.memory_limit = 0          # mem= (page aligned), raised by fadump_reserve_mem
        self._cmdline_warned = False

    def deliver(self, event: Event) -> None:
        """A crashed kernel handles nothing: events to it are delivered (and logged) but die."""
        if self.crashed:
            return
        super().deliver(event)

    # -- logging --------------------------------------------------------------------------------
    def printk(self, line: str) -> None:
        cur = self._current
        self.log.append([cur.seq if cur else 0, self.now, line])

    # -- boot -------------------------------------------------------------------------------------
    def on_fw_boot(self, ev: Event) -> None:
        self.start_op("boot", self.boot(ev.payload))

    def boot(self, p: dict[str, Any]) -> Generator[Any, Any, None]:
        dt = p["dt"]
        m, mm, fw = self.machine, self.mm, self.fw
        self.boot_count = p["boot"]
        lmb = dt["lmb_size"]
        for first, count, assigned in dt["lmbs"]:
            if assigned:
                self.drmem[first:first + count] = b"\x01" * count
        mm.boot_present([(f * lmb, (f + c) * lmb) for f, c, a in dt["lmbs"] if a])
        fw.cpu_state_data_size = dt["fadump"]["cpu_state_size"]
        fw.hpte_region_size = dt["fadump"]["hpte_size"]
        fw.fdm_active = dt["kernel_dump"]
        fw.dump_active = fw.fdm_active is not None
        release = "6.12.0" if self.cfg.profile == "upstream" else "4.18.0"
        self.printk(f"Linux version {release}-fadumpsim ({self.cfg.profile}) #1 SMP")
        self.printk(f"Kernel command line: {self.cfg.cmdline}")
        # early params: fadump=, fadump_reserve_mem=, mem=; crashkernel= is parsed where it
        # is used; anything else (fadumb=on) is not the kernel's and goes to init
        self.params = parse_cmdline(self.cfg.cmdline, 0)
        self.memory_limit = self.params.memory_limit
        if fw.dump_active:
            self.oldmem = PageMap.from_list(m.page_size, p["ram"]["extents"])
            self.blobs = {a: b for a, _size, b in p["ram"]["blobs"]}
        # early reservations: kernel image, RTAS (top of the RMA), PACAs/stacks below it
        mm.boot_reserve_kernel(0, KERNEL_IMAGE, "kernel:image")
        mm.boot_reserve_other(m.rma_size - RTAS_SIZE, m.rma_size, "rtas")
        mm.boot_reserve_kernel(m.rma_size - RTAS_SIZE - BOOT_MISC, m.rma_size - RTAS_SIZE,
                               "kernel:paca")
        self.params = parse_cmdline(self.cfg.cmdline, mm.phys_mem_size())
        if not self.fadump_reserve_mem() and not fw.dump_active:
            self.print_cmdline_warnings()  # reserve_crashkernel() parses crashkernel= too
        if self.memory_limit:
            mm.enforce_memory_limit(self.memory_limit)
        # memmap: one struct page per page, per node, top-down from the node's end
        for nid in range(m.nodes):
            lo, hi = m.node_range(nid)
            present = sum(min(e, hi) - max(s, lo) for s, e in mm.memory_regions()
                          if s < hi and lo < e)
            size = present // m.page_size * STRUCT_PAGE_SIZE
            size = max(m.page_size, (size + m.page_size - 1) // m.page_size * m.page_size)
            try:
                at = mm.memblock_alloc_top_down(size, lo, hi)
            except OutOfMemory:
                # memblock_alloc_try_nid(): a node with no free memory (the capture
                # kernel reserves everything above boot memory) falls back to any node
                at = mm.memblock_alloc_top_down(size, 0, mm.end_of_dram())
            mm.boot_reserve_kernel(at, at + size, f"kernel:memmap{nid}")
        self.fadump_init_reserved_mem()
        self.release_mem_created = fw.fadump_enabled and fw.dump_active
        self.printk(f"Memory: {mm.managed_bytes() >> 10}K/{mm.phys_mem_size() >> 10}K available")
        self.memtotal_after_boot = mm.managed_bytes()
        if fw.dump_active:
            if self.process_fadump() < 0:
                yield from self.fadump_invalidate_release_mem()
        else:
            yield from self.setup_fadump()
            wl = self.cfg.workload
            try:
                for klass in ("kernel", "user", "cache"):
                    if wl.get(klass):
                        mm.alloc(klass, wl[klass], tag=f"{klass}:workload")
            except OutOfMemory as e:
                self.printk(f"workload: {e}")
        self.booted = True
        for s in self.scripts:
            self.send(s, "script.start", {})
        for ev in self.pending_cmds:
            self.on_cmd_run(ev)
        self.pending_cmds.clear()

    def print_cmdline_warnings(self) -> None:
        """parse_crashkernel()'s pr_warn lines (kernel/crash_core.c has no pr_fmt), once."""
        if not self._cmdline_warned:
            self._cmdline_warned = True
            for line in self.params.messages:
                self.printk(line)

    # -- commands ------------------------------------------------------------------------------------
    def reply(self, ev: Event, stdout: str = "", stderr: str = "", exit: int = 0) -> None:
        self.send(ev.src, "cmd.result", {"index": ev.payload["index"], "stdout": stdout,
                                         "stderr": stderr, "exit": exit})

    def on_cmd_run(self, ev: Event) -> None:
        if not self.booted:
            self.pending_cmds.append(ev)
            return
        cmd = parse_command(self.name, ev.payload["command"])
        prog = cmd["prog"]
        if prog == "write":
            self.sysfs_write(ev, cmd)
        elif prog == "cat":
            self.sysfs_read(ev, cmd["file"], cmd["path"])
        elif prog == "free":
            self.reply(ev, shell.free_m(self.mm.meminfo()))
        elif prog == "lsmem":
            self.reply(ev, shell.lsmem(self.memory_blocks(), self.machine.lmb_size))
        elif prog == "dmesg":
            self.reply(ev, shell.dmesg(self.log))
        elif prog == "sim":
            self.sim_command(ev, cmd)
        elif prog in ("makedumpfile", "cp"):
            out, err, rc = self.save_dump(cmd)
            self.reply(ev, out, err, rc)
        else:  # pragma: no cover - parse_command refuses everything else
            self.reply(ev, "", f"{prog}: command not found\n", 127)

    def sim_command(self, ev: Event, cmd: dict[str, Any]) -> None:
        if cmd["verb"] == "alloc":
            try:
                tag = self.mm.alloc(cmd["klass"], cmd["size"])
            except OutOfMemory as e:
                self.reply(ev, "", f"sim: {e}\n", 1)
                return
            self.reply(ev, f"allocated {cmd['size'] >> 20}MB of {cmd['klass']} memory ({tag})\n")
        else:
            n = self.mm.free(cmd["klass"], cmd["size"])
            self.reply(ev, f"freed {n >> 20}MB of {cmd['klass']} memory\n")

    def sysfs_file_exists(self, f: str, path: str) -> bool:
        """Does this profile's kernel, as booted, have `path` (actors/kernel/sysfs.py)?"""
        if f == "region":  # debugfs powerpc/fadump_region: created with the sysfs files
            return self.fw.fadump_enabled
        if self.cfg.profile == "upstream":
            return self.upstream_sysfs_exists(f)
        return sysfs.exists(self.cfg.profile, path, enabled=self.fw.fadump_enabled,
                            release_mem_created=self.release_mem_created)

    def sysfs_read(self, ev: Event, f: str, path: str) -> None:
        fw = self.fw
        if not self.sysfs_file_exists(f, path):
            self.reply(ev, "", sysfs.missing_read_error(path), 1)
            return
        if f == "registered":
            self.reply(ev, f"{int(fw.dump_registered)}\n")
        elif f == "enabled":
            self.reply(ev, f"{int(fw.fadump_enabled)}\n")
        elif f in ("mem_reserved", "hotplug_ready"):
            self.reply(ev, self.fadump_sysfs_show(f) or "")
        else:
            fdm = fw.fdm_active if fw.fdm_active is not None else fw.fdm
            self.reply(ev, shell.fadump_region(fdm if fw.fadump_enabled else None,
                                               fw.fdm_active is not None,
                                               fw.reserve_dump_area_start))

    def sysfs_write(self, ev: Event, cmd: dict[str, Any]) -> None:
        f, value, path = cmd["file"], cmd["value"], cmd["path"]
        if f == "sysrq":
            if value == "c":
                self.sysrq_crash(cpu=self.scripts.index(ev.src) % self.machine.cpus
                                 if ev.src in self.scripts else 0)
                return  # no reply: the shell died with the kernel
            self.reply(ev)
            return

        def fail(rc: int) -> None:
            self.reply(ev, "", f"bash: echo: write error: {errno.strerror(rc)}\n", 1)

        if not self.sysfs_file_exists(f, path):
            self.reply(ev, "", sysfs.missing_write_error(path), 1)
            return
        if f == "release_mem":
            # fadump_release_memory_store() (2018): the file stays after a release, and
            # a write when no dump is active any more is -EPERM; then only buf[0] counts
            if not self.fw.dump_active:
                fail(-errno.EPERM)
                return
            if value[:1] != "1":
                fail(-errno.EINVAL)
                return

            def release() -> Generator[Any, Any, None]:
                yield from self.fadump_invalidate_release_mem()
                self.reply(ev)
            self.start_op("fadump_release_memory_store", release())
            return

        def store() -> Generator[Any, Any, None]:
            rc = yield from self.fadump_register_store(value + "\n")  # echo adds the newline
            if rc < 0:
                fail(rc)
            else:
                self.reply(ev)
        self.start_op("fadump_register_store", store(), by=ev.src)

    def on_fadump_retry(self, ev: Event) -> None:
        self.resume(ev)

    # -- views ------------------------------------------------------------------------------------------
    def memory_blocks(self) -> list[dict[str, Any]]:
        """/sys/devices/system/memory/memoryN as lsmem reads it (present blocks only), as
        runs of consecutive blocks that read alike: `index`..`last`, `start`..`end`.

        A block lying inside one extent reads like every later block inside it, up to
        the next change of assignment, node, zone or CMA area, so the walk jumps to the
        end of that stretch: 262,144 blocks on 64TB cost a question per extent, not per
        block (lsmem merges such blocks into one row anyway)."""
        out: list[dict[str, Any]] = []
        mm, m = self.mm, self.machine
        L, drmem, n = m.lmb_size, self.drmem, len(self.drmem)
        cuts = {nid * (m.memory // m.nodes) for nid in range(1, m.nodes)}
        for r in (mm.movable, mm.cma):
            if r is not None:
                cuts.update(r)
        cuts_sorted = sorted(c for c in cuts if c > 0)
        i = 0
        while i < n:
            if not drmem[i]:
                i = drmem.find(1, i)
                if i < 0:
                    break
                continue
            s, e = self.lmb_range(i)
            stop = i + 1
            pieces = list(mm.pages.pieces(s, e))
            if len(pieces) == 1 and pieces[0][0] == s and pieces[0][1] == e:
                stop = max(stop, mm.pages.ends[mm.pages._first(s)] // L)
                hole = drmem.find(0, i)
                if hole >= 0:
                    stop = min(stop, hole)
                for c in cuts_sorted:
                    if c > s:
                        stop = max(i + 1, min(stop, c // L))
                        break
            block = self._memory_block(i, s, e, pieces)
            if block is not None:
                block.update(last=stop - 1, end=stop * L)
                out.append(block)
            i = stop
        return out

    def _memory_block(self, lmb: int, s: int, e: int, pieces: list[Any]) -> dict[str, Any] | None:
        """One block as lsmem reads it; None when wholly beyond mem= (never added)."""
        mm = self.mm
        if all(t == MEM_LIMIT_TAG for _a, _b, _k, t, _base in pieces):
            return None
        classes = mm.lmb_classes(s, e)
        zones = sorted({mm.zone_of(a) for a, _b, *_ in pieces}, key=["Normal", "Movable"].index)
        return {"index": lmb, "last": lmb, "start": s, "end": e,
                "state": "offline" if classes.get("offline") else "online",
                "removable": mm.section_removable(s, e),
                "node": self.machine.node_of(s), "zones": ",".join(zones) or "None"}

    def snapshot(self) -> dict[str, Any]:
        mm = self.mm
        snap = {
            "booted": self.booted, "crashed": self.crashed, "boot": self.boot_count,
            "fw_dump": self.fw.snapshot(),
            "meminfo": mm.meminfo() if self.booted else {},
            "pages_by_class": mm.by_class(),
            "extents": len(mm.pages),
            "movable": list(mm.movable) if mm.movable else None,
            "memblock_memory": [list(r) for r in mm.memory_regions()],
            "memblock_reserved": [list(r) for r in mm.reserved],
            "vmcore": None if self.vmcore is None else {
                "loads": [[ld["start"], ld["end"]] for ld in self.vmcore["loads"]],
                "generation": self.vmcore["generation"]},
            "saved_dumps": [{k: v for k, v in d.items() if k != "kept"} for d in self.saved_dumps],
            "log_lines": len(self.log),
        }
        snap.update(self.ops_snapshot())
        return snap

    def makedumpfile_stats(self, saved: dict[str, Any]) -> Any:
        """makedumpfile's counters for `saved`: those of the file it writes (no host file)."""
        from fadumpsim.actors.kernel.dumpwriter import dump_stats
        return dump_stats(self, saved)

    def write_dump_file(self, saved: dict[str, Any]) -> None:
        """Write the saved dump under --dump-dir (a host side effect; no output depends on it)."""
        if self.dump_dir is None:
            return
        from fadumpsim.actors.kernel.dumpwriter import write_saved_dump
        try:
            write_saved_dump(self, saved)
        except OSError as e:
            # the host's problem (disk full, permissions, a symlink out of --dump-dir), not
            # the simulated kernel's: the run goes on exactly as without --dump-dir and the
            # caller reports it (exit 2) from RunResult.host_errors
            self.host_errors.append(e)
