"""Crash (sysrq-c), and the capture side: validate the dump, /proc/vmcore, save it.

The crashed kernel's RAM travels to firmware in `rtas.os_term` and comes back in the
capture kernel's `fw.boot` after the firmware copy (design note 2). The capture
kernel never sees the production kernel's objects, only that payload.
"""
from __future__ import annotations

from typing import Any

from fadumpsim.actors.kernel.fwdump import (CPU_STATE_DATA, CRASH_INFO_MAGIC, ERROR_FLAG, REAL_MODE_REGION,
                                  section)
from fadumpsim.actors import errno
from fadumpsim.actors.kernel.mm import MEM_LIMIT_TAG

#: dump-level bit of each page class makedumpfile can exclude
LEVEL_BIT = {"zero": 1, "cache": 2, "cache_private": 4, "user": 8, "free": 16}
#: profile -> does its makedumpfile print "Offline pages" (makedumpfile 1.6.5, 2018-11-22)?
#: The 2018 profiles' does not; a later profile adds itself here.
MAKEDUMPFILE_OFFLINE_LINE: dict[str, bool] = {"rfc-v6": False, "classic": False}


def crash_regs(cpu: int) -> list[int]:
    """Deterministic pt_regs of the CPU that ran sysrq_handle_crash()."""
    gpr = [0xC000000000000000 + cpu * 0x1000 + i * 8 for i in range(32)]
    gpr[1] = 0xC00000000FFF0000 - cpu * 0x4000  # stack pointer
    nip, msr = 0xC0000000007A1B2C, 0x8000000000009033
    # gpr0-31, nip, msr, orig_gpr3, ctr, link, xer, ccr, softe, trap, dar, dsisr, result,
    # and the 4 u64 of padding that make pr_reg 48 words
    return gpr + [nip, msr, 0, 0, nip - 0x40, 0x20000000, 0x28000422, 1, 0x300, 0, 0x42000000, 0,
                  0, 0, 0, 0]


def page_class_for_dump(klass: str, tag: str) -> str:
    """How makedumpfile classifies an old-kernel page from its struct page (flags).

    A free page is free whether or not it was ever used (never-used memory sits in the
    buddy allocator: -d 16 excludes it); kernel data, reserved and offlined pages are
    never excluded. Zero *content* is judged afterwards (dump_action).
    """
    if klass in ("user", "cache", "cache_private", "free"):
        return klass
    return "kernel"


def not_dumped(klass: str, tag: str) -> bool:
    """Memory no dump ever holds: the fadump reserved area (excluded from the crash
    ranges by design) and memory beyond mem= (not memblock memory)."""
    return klass == "reserved" and (tag.startswith("fadump:") or tag == MEM_LIMIT_TAG)


def dump_action(klass: str, tag: str, level: int) -> tuple[bool, str]:
    """(kept, counter) for a page at dump level `level`, exactly as the dump-file writer
    decides (fadumpsim.dumpfile.classify_extent): flags first, then zero content (bit 1)."""
    cls = page_class_for_dump(klass, tag)
    if cls != "kernel" and level & LEVEL_BIT[cls]:
        return False, cls
    if not tag and level & LEVEL_BIT["zero"]:
        return False, "zero"
    return True, cls


class CrashMixin:
    # -- production side -------------------------------------------------------------------
    def sysrq_crash(self, cpu: int) -> None:
        """sysrq_handle_crash() -> oops -> panic: crash_fadump() then ibm,os-term."""
        fw = self.fw
        self.printk("sysrq: SysRq : Trigger a crash")
        self.printk("Unable to handle kernel paging request for data at address 0x00000000")
        self.printk("Kernel panic - not syncing: Fatal exception")
        if fw.dump_registered and fw.fadumphdr_addr in self.blobs:
            hdr = self.blobs[fw.fadumphdr_addr]
            hdr["crashing_cpu"] = cpu
            hdr["regs"] = crash_regs(cpu)
            hdr["online"] = list(range(self.machine.cpus))
            hdr["time"] = self.now
        self.crashed = True
        if self.name == "kernel":  # DLPAR, drmgr, udev and kdumpctl die with this kernel
            self.send("hotplug", "hp.crashed", {})
        self.crash_truth = self.mm.pages.copy()
        self.send("firmware", "rtas.os_term", {
            "ram": {"extents": self.mm.pages.to_list(),
                    "blobs": [[a, 4096, b] for a, b in sorted(self.blobs.items())]},
            "crash": {"cpu": cpu, "msg": "Fatal exception"}})

    # -- capture side --------------------------------------------------------------------------
    def process_fadump(self) -> int:
        """Validate the dump firmware took; 0 when /proc/vmcore can be exported."""
        fdm = self.fw.fdm_active
        rtas = "rtas fadump: " if self.cfg.profile == "upstream" else ""
        cpu = section(fdm, CPU_STATE_DATA)
        rmr = section(fdm, REAL_MODE_REGION)
        if fdm["status"] == ERROR_FLAG or cpu["error"] or rmr["error"]:
            self.printk(f"{rtas}Dump taken by platform is not valid")
            self.dump_status = "invalid"
            return -errno.EINVAL
        if rmr["dumped"] != rmr["length"] or not cpu["dumped"]:
            self.printk(f"{rtas}Dump taken by platform is incomplete")
            self.dump_status = "incomplete"
            return -errno.EINVAL
        hdr = self.blobs.get(self.fw.fadumphdr_addr)
        if hdr is None or hdr.get("magic") != CRASH_INFO_MAGIC:
            self.printk(f"{'fadump: ' if rtas else ''}Crash info header is not valid.")
            self.dump_status = "invalid"
            return -errno.EINVAL
        hdr = self.capture_elfcorehdr(hdr)  # mainline 2024: built here, from this memblock
        self.vmcore = self.last_vmcore = self.build_vmcore(hdr, rmr)
        self.dump_status = "available"
        return 0

    def build_vmcore(self, hdr: dict[str, Any], rmr: dict[str, Any]) -> dict[str, Any]:
        """/proc/vmcore: one PT_LOAD per crash memory range of the registration-time header.

        [0, boot_memory_size) is read from the copy at the RMR destination; every other
        range in place; a range no longer in the partition cannot be read.
        """
        loads = []
        for s, e in hdr["ranges"]:
            if s == 0:
                off = rmr["destination"]
                ext = [[a - off, b - off, k, t, base]
                       for a, b, k, t, base in self.oldmem.pieces(off + s, off + e)]
            else:
                ext = [[a, b, k, t, base] for a, b, k, t, base in self.oldmem.pieces(s, e)]
            loads.append({"start": s, "end": e, "extents": ext})
        return {"loads": loads, "cpu": hdr["crashing_cpu"], "regs": hdr["regs"],
                "online": hdr["online"], "generation": hdr["generation"],
                "time": hdr.get("time", 0)}

    def vmcore_pages(self, level: int, vmcore: dict[str, Any] | None = None
                     ) -> tuple[list[list[Any]], dict[str, int], int]:
        """Pages a dump at `level` keeps: (extents, excluded bytes by class, unreadable bytes)."""
        kept: list[list[Any]] = []
        excluded: dict[str, int] = {}
        unreadable = 0
        for ld in (vmcore or self.vmcore)["loads"]:
            pos = ld["start"]
            for a, b, k, t, base in ld["extents"]:
                unreadable += a - pos
                pos = b
                keep, counter = dump_action(k, t, level)
                if not keep:
                    excluded[counter] = excluded.get(counter, 0) + b - a
                    continue
                kept.append([a, b, k, t, base])
            unreadable += ld["end"] - pos
        return kept, excluded, unreadable

    def save_dump(self, cmd: dict[str, Any]) -> tuple[str, str, int]:
        """makedumpfile / cp /proc/vmcore: record what was saved; write the file if asked."""
        if self.vmcore is None:
            if cmd["prog"] == "cp":
                return "", "cp: cannot stat '/proc/vmcore': No such file or directory\n", 1
            return "", ("open_dump_memory: Can't open the dump memory(/proc/vmcore). "
                        "No such file or directory\n\nmakedumpfile Failed.\n"), 1
        from fadumpsim.actors.kernel.capturefs import capture_path_error
        why = capture_path_error(cmd["path"])
        if why is not None:
            if cmd["prog"] == "cp":
                return "", f"cp: cannot create regular file '{cmd['path']}': {why}\n", 1
            return "", (f"open_dump_file: Can't open the dump file({cmd['path']}). {why}\n\n"
                        "makedumpfile Failed.\n"), 1
        level = cmd.get("level", 0) if cmd["prog"] == "makedumpfile" else 0
        kept, excluded, unreadable = self.vmcore_pages(level)
        ps = self.mm.ps
        saved = {"seq": self._current.seq, "path": cmd["path"], "tool": cmd["prog"], "level": level,
                 "format": cmd.get("format", "elf"), "compress": cmd.get("compress", "none"),
                 "generation": self.vmcore["generation"], "kept": kept,
                 "excluded": excluded, "unreadable": unreadable}
        out, err = "", ""
        comp = cmd.get("compress", "none")
        if comp not in ("none", "zlib"):
            from fadumpsim.dumpfile import compression_available
            if not compression_available(comp):
                return "", (f"makedumpfile: {comp} compression is not supported in this build "
                            f"(its Python binding is not installed); use -c\n\n"
                            "makedumpfile Failed.\n"), 1
        if unreadable:
            err += (f"readmem: Can't read the dump memory(/proc/vmcore): {unreadable // ps} pages "
                    "of ranges no longer in the partition were skipped\n")
        self.saved_dumps.append(saved)
        self.dump_status = "saved"
        self.write_dump_file(saved)  # host file only with --dump-dir: never changes the output
        if cmd["prog"] == "makedumpfile":
            # the stats of the very file makedumpfile writes (computed without writing it,
            # so the output never depends on --dump-dir): "Write bytes" is its size
            stats = self.makedumpfile_stats(saved)
            out = makedumpfile_output(stats, MAKEDUMPFILE_OFFLINE_LINE.get(self.cfg.profile, True))
        return out, err, 0


def makedumpfile_output(stats: Any, offline_line: bool) -> str:
    """What makedumpfile prints on success (the report names the path in the capture kernel)."""
    from fadumpsim.dumpfile import makedumpfile_report
    lines = ["Copying data                                      : [100.0 %] |", ""]
    lines += makedumpfile_report(stats, offline_line=offline_line)
    return "\n".join(lines) + "\n"
