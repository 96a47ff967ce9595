"""What `free -m`, `lsmem`, `dmesg` and the fadump debugfs file print.

Formats follow procps-ng 3.3 `free -m`, util-linux 2.32 `lsmem` and the 2018
fadump_region_show(); they read the kernel's state and never change it.
"""
from __future__ import annotations

from typing import Any

from fadumpsim.actors.kernel.fwdump import CPU_STATE_DATA, HPTE_REGION, REAL_MODE_REGION, section
from fadumpsim.actors.sizes import MB, human


def free_m(info: dict[str, int]) -> str:
    mb = lambda n: str(n // MB)  # noqa: E731 - procps truncates kB/1024
    head = "              total        used        free      shared  buff/cache   available"
    mem = "Mem:   " + "".join(f" {v:>11}" for v in (
        mb(info["total"]), mb(info["used"]), mb(info["free"]), "0", mb(info["cache"]),
        mb(info["available"])))
    swap = "Swap:  " + "".join(f" {v:>11}" for v in ("0", "0", "0"))
    return "\n".join((head, mem, swap)) + "\n"


def lsmem(blocks: list[dict[str, Any]], block_size: int) -> str:
    """`lsmem -o RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES` with lsmem's merging."""
    rows: list[list[Any]] = []
    for b in blocks:  # a run of blocks that read alike: index..last (memory_blocks)
        key = (b["state"], b["removable"], b["node"], b["zones"])
        last = b.get("last", b["index"])
        if rows and rows[-1][5] == key and rows[-1][1] == b["start"] and rows[-1][4] == b["index"] - 1:
            rows[-1][1] = b["end"]
            rows[-1][4] = last
        else:
            rows.append([b["start"], b["end"], b["index"], b, last, key])
    out = []
    hdr = ("RANGE", "SIZE", "STATE", "REMOVABLE", "BLOCK", "NODE", "ZONES")
    table = []
    online = offline = 0
    for start, end, first, b, last, (state, removable, node, zones) in rows:
        rng = f"0x{start:016x}-0x{end - 1:016x}"
        blk = str(first) if first == last else f"{first}-{last}"
        table.append((rng, human(end - start), state, "yes" if removable else "no", blk,
                      str(node), zones))
        if state == "online":
            online += end - start
        else:
            offline += end - start
    widths = [max(len(hdr[i]), *(len(r[i]) for r in table)) if table else len(hdr[i])
              for i in range(len(hdr))]
    right = {1, 3, 4, 5}

    def fmt(r: tuple[str, ...]) -> str:
        return " ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                        for i, c in enumerate(r)).rstrip()
    out.append(fmt(hdr))
    out.extend(fmt(r) for r in table)
    out.append("")
    out.append(f"Memory block size:{human(block_size):>16}")
    out.append(f"Total online memory:{human(online):>14}")
    out.append(f"Total offline memory:{human(offline):>13}")
    return "\n".join(out) + "\n"


def fadump_region(fdm: dict[str, Any] | None, active: bool, reserve_start: int) -> str:
    """fadump_region_show(): CPU/HPTE/DUMP lines (+ the reserved gap when a dump is active)."""
    if fdm is None:
        return ""
    out = []
    for label, typ in (("CPU ", CPU_STATE_DATA), ("HPTE", HPTE_REGION), ("DUMP", REAL_MODE_REGION)):
        s = section(fdm, typ)
        out.append("%s: [%#016x-%#016x] %#x bytes, Dumped: %#x" % (
            label, s["destination"], s["destination"] + s["length"] - 1, s["length"], s["dumped"]))
    cpu_dst = section(fdm, CPU_STATE_DATA)["destination"]
    if active and reserve_start != cpu_dst:
        out.append("    : [%#016x-%#016x] %#x bytes, Dumped: %#x" % (
            reserve_start, cpu_dst - 1, cpu_dst - reserve_start, cpu_dst - reserve_start))
    return "\n".join(out) + "\n"


def dmesg(log: list[list[Any]]) -> str:
    return "".join(f"[{t / 1e9:12.6f}] {line}\n" for _seq, t, line in log)
