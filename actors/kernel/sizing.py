"""Boot-time fadump sizing: fadump=, crashkernel=, boot_memory_size, area size.

Mirrors fadump_calculate_reserve_size() and get_fadump_area_size() of the 2018
kernel (arch/powerpc/kernel/fadump.c) plus the RFC v6 16MB alignment.
"""
from __future__ import annotations

from dataclasses import dataclass

from fadumpsim.actors.sizes import MB, SizeError, parse_size

PAGEBLOCK = 16 * MB  # FADUMP_PAGEBLOCK_ALIGNMENT: 64K << max(MAX_ORDER-1, pageblock_order)
MAX_BOOT_MEM_RATIO = 4  # crashkernel= is capped at 25% of RAM

# sizeof() of the structures the reserved area holds besides the copies
CRASH_INFO_HDR_SIZE = 8 + 8 + 4 + 4 + 384 + 256  # magic, elfcorehdr_addr, cpu, pad, pt_regs, cpumask
ELF_HDR_SIZE = 64
ELF_PHDR_SIZE = 56


@dataclass(frozen=True)
class FadumpParams:
    enabled: bool
    nonmovable: bool
    crashkernel: int | None  # bytes, None if absent or not parseable


def parse_cmdline(cmdline: str, system_ram: int) -> FadumpParams:
    """early_fadump_param (prefix match) and parse_crashkernel (simple, range, @offset)."""
    enabled, nonmovable, ck = False, False, None
    for word in cmdline.split():
        key, _, val = word.partition("=")
        if key == "fadump":
            if val.startswith("on"):
                enabled = True
            elif val.startswith("off"):
                enabled = False
            elif val.startswith("nonmovable"):
                enabled, nonmovable = True, True
        elif key == "crashkernel":
            ck = _crashkernel(val, system_ram)
    return FadumpParams(enabled, nonmovable, ck)


def _crashkernel(val: str, ram: int) -> int | None:
    val = val.split("@", 1)[0]  # base is ignored by fadump
    try:
        if ":" in val:  # crashkernel=<range1>:<size1>[,<range2>:<size2>,...]
            for part in val.split(","):
                rng, _, size = part.partition(":")
                lo, _, hi = rng.partition("-")
                lo_b = parse_size(lo)
                hi_b = parse_size(hi) if hi else None
                if ram >= lo_b and (hi_b is None or ram < hi_b):
                    return parse_size(size)
            return None
        return parse_size(val)
    except SizeError:
        return None


def calculate_reserve_size(params: FadumpParams, system_ram: int, rma_size: int,
                           log: list[str]) -> int:
    """fadump_calculate_reserve_size(): crashkernel= wins, else 5% in 256MB steps, min."""
    if params.crashkernel:
        size = params.crashkernel
        max_size = system_ram // MAX_BOOT_MEM_RATIO
        if size > max_size:
            size = max_size
            log.append(f"Adjusted boot memory size to {size >> 20}MB")
        return size
    size = system_ram // 20
    size &= ~0x0FFFFFFF
    min_boot_mem = max(256 * MB, rma_size) + 64 * MB
    return size if size > min_boot_mem else min_boot_mem


def align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def area_size(boot_memory_size: int, cpu_state_size: int, hpte_size: int,
              memblock_regions: int, page_size: int) -> int:
    """get_fadump_area_size(): what the reserved area must hold, page aligned."""
    size = cpu_state_size + hpte_size + boot_memory_size
    size += CRASH_INFO_HDR_SIZE + ELF_HDR_SIZE + ELF_PHDR_SIZE
    size += (memblock_regions + 2) * ELF_PHDR_SIZE
    return align_up(size, page_size)


