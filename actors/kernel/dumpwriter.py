"""Turn the capture kernel's /proc/vmcore into real files (makedumpfile, cp).

Only used with `run --dump-dir DIR`; the verdict never depends on it. Files are
written to a temporary sibling and renamed into place, so nothing half-written is
ever left at the target path.
"""
from __future__ import annotations

import errno
import os
import posixpath
from pathlib import Path
from typing import Any

from fadumpsim.actors.kernel.crash import crash_regs, not_dumped, page_class_for_dump

OSRELEASE = "4.18.0-fadumpsim"
SYMBOLS = {"swapper_pg_dir": 0xC000000001A10000, "init_task": 0xC000000001A40000,
           "_stext": 0xC000000000000000, "mem_section": 0xC000000001B80000}


def vmcore_image(kernel: Any, vmcore: dict[str, Any]) -> Any:
    """The dump-file library's VmcoreImage for one /proc/vmcore."""
    from fadumpsim.dumpfile import ContentExtent, CpuState, LoadRange, VmcoreImage
    ranges = []
    for ld in vmcore["loads"]:
        ext = []
        for a, b, k, t, base in ld["extents"]:
            # tag "" is never-used memory: all-zero content, whatever its class
            ext.append(ContentExtent(a, b, page_class_for_dump(k, t), t, base if t else 0))
        ranges.append(LoadRange(ld["start"], ld["end"] - ld["start"], tuple(ext)))
    online = vmcore["online"] or [max(vmcore["cpu"], 0)]
    cpus = tuple(CpuState(c, tuple(vmcore["regs"] if c == vmcore["cpu"] and vmcore["regs"]
                                   else crash_regs(c))) for c in online)
    return VmcoreImage(osrelease=OSRELEASE, page_size=kernel.machine.page_size,
                       crash_time=vmcore.get("time", 0) // 1_000_000_000, symbols=dict(SYMBOLS),
                       cpus=cpus, crashing_cpu=max(vmcore["cpu"], 0), ranges=tuple(ranges))


def dump_stats(kernel: Any, saved: dict[str, Any]) -> Any:
    """WriteStats of the file `saved` names, computed by the writer without writing it."""
    import dataclasses
    from fadumpsim.dumpfile import write_elf_vmcore, write_kdump_compressed
    image = vmcore_image(kernel, kernel.vmcore)
    if saved["tool"] == "cp" or saved["format"] == "elf":
        stats = write_elf_vmcore(image, None, dump_level=saved["level"])
    else:
        stats = write_kdump_compressed(image, None, dump_level=saved["level"],
                                       compression=saved["compress"])
    return dataclasses.replace(stats, path=saved["path"])


def host_target(dump_dir: str, path: str) -> Path:
    """Where `path` of the capture kernel lands under `dump_dir`, its directories made.

    Refuses (OSError, the host's problem) a directory that resolves outside `dump_dir`
    through a symlink, before anything is created there."""
    os.makedirs(dump_dir, exist_ok=True)  # what the user named: created as given
    root = os.path.realpath(dump_dir)
    target = Path(root) / posixpath.normpath("/" + path).lstrip("/")
    anc = target.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    _inside(root, anc, dump_dir)  # before mkdir: never create a directory elsewhere
    target.parent.mkdir(parents=True, exist_ok=True)
    _inside(root, target.parent, dump_dir)
    return target


def _inside(root: str, d: Path, dump_dir: str) -> None:
    real = os.path.realpath(d)
    if real != root and not real.startswith(root + os.sep):
        raise OSError(errno.EPERM, f"resolves outside --dump-dir {dump_dir} (to {real}); "
                      "refusing to write there", str(d))


def write_saved_dump(kernel: Any, saved: dict[str, Any]) -> None:
    """Write what makedumpfile/cp saved under the run's --dump-dir.

    Writes `NAME.partial` (a new file, never through a symlink) and renames it into
    place, so nothing half-written is left at NAME. Raises OSError for host problems."""
    from fadumpsim.dumpfile import write_elf_vmcore, write_kdump_compressed
    target = host_target(kernel.dump_dir, saved["path"])
    tmp = target.with_name(target.name + ".partial")
    image = vmcore_image(kernel, kernel.vmcore)
    created = False
    try:
        if saved["tool"] == "cp" or saved["format"] == "elf":
            write_elf_vmcore(image, tmp, dump_level=saved["level"], exclusive=True)
        else:
            write_kdump_compressed(image, tmp, dump_level=saved["level"],
                                   compression=saved["compress"], exclusive=True)
        created = True
        os.replace(tmp, target)
    except OSError as e:
        created = created or e.errno != errno.EEXIST
        raise
    finally:
        if created and os.path.lexists(tmp):
            tmp.unlink()


def truth_image(kernel: Any) -> Any:
    """The crashed kernel's memory at the crash as a VmcoreImage (what a perfect dump holds)."""
    truth = kernel.crash_truth
    loads: list[dict[str, Any]] = []
    for s, e, k, t, b in truth.all():
        if not_dumped(k, t):
            continue  # the fadump area (by design) and memory beyond mem= are never dumped
        if loads and loads[-1]["end"] == s:
            loads[-1]["end"] = e
            loads[-1]["extents"].append([s, e, k, t, b])
        else:
            loads.append({"start": s, "end": e, "extents": [[s, e, k, t, b]]})
    hdr = kernel.blobs.get(kernel.fw.fadumphdr_addr, {})
    cpu = hdr.get("crashing_cpu", 0)
    return vmcore_image(kernel, {"loads": loads, "cpu": cpu if cpu >= 0 else 0,
                                 "regs": hdr.get("regs", []), "online": hdr.get("online", []),
                                 "time": hdr.get("time", 0)})
