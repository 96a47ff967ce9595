"""Real dump files (ELF vmcore, kdump-compressed) from a simulated crashed kernel's memory.

A pure library: build a :class:`VmcoreImage` (extents with content identities), write it
with :func:`write_elf_vmcore` or :func:`write_kdump_compressed`, read it back with
:func:`read_elf_vmcore` / :func:`read_kdump_compressed`, or check it against the truth
with :func:`inspect_dump`.  drgn, readelf, pyelftools and crash can open the files.
"""

from .elfcore import (
    DumpFormatError,
    ElfDump,
    LoadSegment,
    ParsedDump,
    PrStatus,
    WriteStats,
    makedumpfile_report,
    read_elf_vmcore,
    write_elf_vmcore,
)
from .image import (
    DUMP_LEVEL_BITS,
    PAGE_CLASSES,
    REG_NAMES,
    ContentExtent,
    CpuState,
    LoadRange,
    PageRun,
    VmcoreImage,
    classify_extent,
    plan_range,
)
from .inspect import (
    InspectReport,
    RangeInfo,
    TruthComparison,
    inspect_dump,
    open_dump,
    render_inspect,
)
from .kdump import (
    CompressionUnavailable,
    KdumpDump,
    PageDesc,
    compression_available,
    read_kdump_compressed,
    write_kdump_compressed,
)
from .pages import PageStamp, decode_page, decode_stamp, is_zero, page_bytes

__all__ = [
    "DUMP_LEVEL_BITS", "PAGE_CLASSES", "REG_NAMES",
    "CompressionUnavailable", "ContentExtent", "CpuState", "DumpFormatError", "ElfDump",
    "InspectReport", "KdumpDump", "LoadRange", "LoadSegment", "PageDesc", "PageRun",
    "PageStamp", "ParsedDump", "PrStatus", "RangeInfo", "TruthComparison", "VmcoreImage",
    "WriteStats",
    "classify_extent", "compression_available", "decode_page", "decode_stamp",
    "inspect_dump", "is_zero", "makedumpfile_report", "open_dump", "page_bytes",
    "plan_range", "read_elf_vmcore", "read_kdump_compressed", "render_inspect",
    "write_elf_vmcore", "write_kdump_compressed",
]
