"""Boot-time fadump sizing: fadump=, crashkernel=, boot_memory_size, area size.

Mirrors fadump_calculate_reserve_size() and get_fadump_area_size() of the 2018
kernel (arch/powerpc/kernel/fadump.c) plus the RFC v6 16MB alignment.
"""
from __future__ import annotations

from dataclasses import dataclass

from fadumpsim.actors.sizes import MB

PAGEBLOCK = 16 * MB  # FADUMP_PAGEBLOCK_ALIGNMENT: 64K << max(MAX_ORDER-1, pageblock_order)
MAX_BOOT_MEM_RATIO = 4  # crashkernel= is capped at 25% of RAM

# sizeof() of the structures the reserved area holds besides the copies
CRASH_INFO_HDR_SIZE = 8 + 8 + 4 + 4 + 384 + 256  # magic, elfcorehdr_addr, cpu, pad, pt_regs, cpumask
ELF_HDR_SIZE = 64
ELF_PHDR_SIZE = 56


@dataclass(frozen=True)
class FadumpParams:
    """What the 2018 kernel takes from its command line for fadump's sizing."""
    enabled: bool
    nonmovable: bool
    crashkernel: int | None  # bytes; None if absent or malformed (parse_crashkernel failed)
    reserve_bootvar: int = 0  # fadump_reserve_mem= (deprecated in favour of crashkernel=)
    memory_limit: int = 0     # mem=, page aligned; 0 = no limit
    messages: tuple[str, ...] = ()  # what parsing printed (crashkernel: ... warnings)


def memparse(text: str) -> tuple[int, str]:
    """lib/cmdline.c memparse(): simple_strtoull(base 0), an optional K/M/G/T/P/E
    suffix (either case); returns (value, the unparsed rest)."""
    s = text
    base, i = 10, 0
    if s[:2].lower() == "0x" and s[2:3] and s[2] in "0123456789abcdefABCDEF":
        base, i = 16, 2
    elif s[:1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < len(s) and s[j].lower() in digits:
        j += 1
    value = int(s[i:j], base) if j > i else 0
    if j == i and base != 8:
        return 0, text  # nothing parsed: the caller sees rest == text
    shift = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}.get(s[j:j + 1].lower())
    if shift is not None:
        value <<= shift
        j += 1
    return value, s[j:]


def kernel_params(cmdline: str) -> list[tuple[str, str | None]]:
    """kernel/params.c next_arg(): (name, value or None), double quotes grouping."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(cmdline)
    while i < n:
        while i < n and cmdline[i].isspace():
            i += 1
        if i >= n:
            break
        j, quoted = i, False
        while j < n and (quoted or not cmdline[j].isspace()):
            if cmdline[j] == '"':
                quoted = not quoted
            j += 1
        word = cmdline[i:j].replace('"', "")
        i = j
        name, eq, val = word.partition("=")
        out.append((name, val if eq else None))
    return out


def parameq(a: str, b: str) -> bool:
    """kernel/params.c parameq(): '-' and '_' are the same in parameter names."""
    return a.replace("-", "_") == b.replace("-", "_")


def parse_cmdline(cmdline: str, system_ram: int) -> FadumpParams:
    """The 2018 kernel's view of the command line, for fadump.

    early_fadump_param (prefix match of on/off/nonmovable; a bare `fadump` is an error and
    changes nothing), fadump_reserve_mem= and mem= (memparse), and parse_crashkernel() of
    the last crashkernel= (simple, ranges, @offset; a malformed value prints the kernel's
    warning and gives no crashkernel). Unknown parameters (`fadumb=on`) are not the
    kernel's: they go to init, and nothing here changes.
    """
    enabled, nonmovable = False, False
    reserve, limit = 0, 0
    last_ck: str | None = None
    for name, val in kernel_params(cmdline):
        if parameq(name, "fadump"):
            if val is None:
                continue
            if val.startswith("on"):
                enabled = True
            elif val.startswith("off"):
                enabled = False
            elif val.startswith("nonmovable"):
                enabled, nonmovable = True, True
        elif parameq(name, "fadump_reserve_mem") and val is not None:
            reserve = memparse(val)[0]
        elif parameq(name, "mem") and val is not None:
            limit = align_up(memparse(val)[0], 1 << 16)
        elif name == "crashkernel" and val is not None:
            if not (val.endswith(",high") or val.endswith(",low")):
                last_ck = val
    messages: list[str] = []
    ck = _crashkernel(last_ck, system_ram, messages) if last_ck is not None else None
    return FadumpParams(enabled, nonmovable, ck, reserve, limit, tuple(messages))


def _crashkernel(val: str, ram: int, log: list[str]) -> int | None:
    """kernel/crash_core.c __parse_crashkernel(); the base (@offset) is ignored by fadump."""
    if ":" in val:
        return _crashkernel_ranges(val, ram, log)
    size, rest = memparse(val)
    if rest == val:
        log.append("crashkernel: memory value expected")
        return None
    if rest and rest[0] != "@":
        log.append(f"crashkernel: unrecognized char: {rest[0]}")
        return None
    return size or None


def _crashkernel_ranges(val: str, ram: int, log: list[str]) -> int | None:
    """parse_crashkernel_mem(): <start>-[<end>]:<size>[,...][@offset]."""
    cur = val
    while True:
        start, rest = memparse(cur)
        if rest == cur:
            log.append("crashkernel: Memory value expected")
            return None
        if not rest.startswith("-"):
            log.append("crashkernel: '-' expected")
            return None
        cur = rest[1:]
        end = None
        if not cur.startswith(":"):
            end, rest = memparse(cur)
            if rest == cur:
                log.append("crashkernel: Memory value expected")
                return None
            cur = rest
            if end <= start:
                log.append("crashkernel: end <= start")
                return None
        if not cur.startswith(":"):
            log.append("crashkernel: ':' expected")
            return None
        cur = cur[1:]
        size, rest = memparse(cur)
        if rest == cur:
            log.append("Memory value expected")
            return None
        cur = rest
        if size >= ram:
            log.append("crashkernel: invalid size")
            return None
        if ram >= start and (end is None or ram < end):
            return size or None
        if not cur.startswith(","):
            break
        cur = cur[1:]
    return None


def calculate_reserve_size(params: FadumpParams, system_ram: int, rma_size: int,
                           log: list[str], end_of_dram: int | None = None) -> int:
    """fadump_calculate_reserve_size() (2018): crashkernel= wins (capped at 25% of RAM),
    else fadump_reserve_mem=, else 5% of the end of DRAM in 256MB steps (truncated to
    mem=), at least MIN_BOOT_MEM. `log` gets the pr_* lines (without pr_fmt)."""
    if params.reserve_bootvar:
        log.append("'fadump_reserve_mem=' parameter is deprecated in favor of "
                   "'crashkernel=' parameter.")
    if params.crashkernel:
        if params.reserve_bootvar:
            log.append("Using 'crashkernel=' parameter for memory reservation.")
        size = params.crashkernel
        max_size = system_ram // MAX_BOOT_MEM_RATIO
        if size > max_size:
            size = max_size
            log.append(f"Adjusted boot memory size to {size >> 20}MB")
        return size
    if params.reserve_bootvar:
        return params.reserve_bootvar
    size = (system_ram if end_of_dram is None else end_of_dram) // 20
    size &= ~0x0FFFFFFF
    if params.memory_limit and size > params.memory_limit:
        size = params.memory_limit
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


