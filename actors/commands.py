"""Parsing the shell commands scripts may run (contract: 'Commands a script may run').

The scenario loader parses every command up front, so a typo is an input error
(exit 2) rather than a surprise mid-run; actors parse the same text again when the
command is delivered. The result is a msgpack-native dict.
"""
from __future__ import annotations

import shlex
from functools import lru_cache
from typing import Any

from fadumpsim.actors.sizes import SizeError, parse_size

REGISTERED = ("/sys/kernel/fadump_registered", "/sys/kernel/fadump/registered")
ENABLED = ("/sys/kernel/fadump_enabled", "/sys/kernel/fadump/enabled")
RELEASE_MEM = ("/sys/kernel/fadump_release_mem", "/sys/kernel/fadump/release_mem")
MEM_RESERVED = "/sys/kernel/fadump/mem_reserved"      # mainline only
HOTPLUG_READY = "/sys/kernel/fadump/hotplug_ready"    # mainline 2024 only
REGION = "/sys/kernel/debug/powerpc/fadump_region"
SYSRQ = "/proc/sysrq-trigger"
VMCORE = "/proc/vmcore"
ACTORS = ("kernel", "hotplug", "firmware", "capture")


class CommandError(ValueError):
    pass


def _int(text: str, what: str, lo: int = -(1 << 31), hi: int = (1 << 31) - 1) -> int:
    """A C `int` argument (strtol base 0): anything outside lo..hi is refused, as the
    real tools' range checks would, and never reaches an event payload."""
    try:
        n = int(text, 0) if len(text) <= 24 else None
    except ValueError:
        n = None
    if n is None:
        raise CommandError(f"{what} must be an integer, got {text[:40]!r}")
    if not lo <= n <= hi:
        raise CommandError(f"{what} {text!r} is out of range ({lo}..{hi})")
    return n


def parse_command(actor: str, text: str) -> dict[str, Any]:
    """Parse one command for `actor`; raise CommandError naming what is wrong."""
    return dict(_parse_cached(actor, text))


@lru_cache(maxsize=4096)
def _parse_cached(actor: str, text: str) -> dict[str, Any]:
    """Scripts repeat their commands in every explored schedule: parse each text once."""
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise CommandError(f"cannot parse {text!r}: {e}") from None
    if not argv:
        raise CommandError("empty command")
    prog = argv[0]
    if actor in ("kernel", "capture"):
        return _kernel_command(actor, prog, argv, text)
    if actor == "hotplug":
        return _drmgr(argv, text)
    if actor == "firmware":
        return _inject(argv, text)
    raise CommandError(f"unknown actor {actor!r} (expected one of {', '.join(ACTORS)})")


def _kernel_command(actor: str, prog: str, argv: list[str], text: str) -> dict[str, Any]:
    if prog == "echo":
        if len(argv) != 4 or argv[2] != ">":
            raise CommandError(f"expected 'echo VALUE > FILE', got {text!r}")
        value, path = argv[1], argv[3]
        # the path is kept: whether it exists is the kernel's business (actors/kernel/sysfs.py)
        if path in REGISTERED:
            return {"prog": "write", "file": "registered", "value": value, "path": path}
        if path in RELEASE_MEM:
            return {"prog": "write", "file": "release_mem", "value": value, "path": path}
        if path == SYSRQ:
            return {"prog": "write", "file": "sysrq", "value": value, "path": path}
        raise CommandError(f"cannot write {path!r} (writable: {REGISTERED[0]}, "
                           f"{RELEASE_MEM[0]}, {SYSRQ})")
    if prog == "cat":
        if len(argv) != 2:
            raise CommandError(f"expected 'cat FILE', got {text!r}")
        path = argv[1]
        if path in REGISTERED:
            return {"prog": "cat", "file": "registered", "path": path}
        if path in ENABLED:
            return {"prog": "cat", "file": "enabled", "path": path}
        if path in (MEM_RESERVED, HOTPLUG_READY):
            return {"prog": "cat", "file": path.rsplit("/", 1)[1], "path": path}
        if path == REGION:
            return {"prog": "cat", "file": "region", "path": path}
        if path == VMCORE:
            raise CommandError("cat /proc/vmcore would print the whole dump; use cp or makedumpfile")
        raise CommandError(f"cannot read {path!r}")
    if prog == "free":
        if argv[1:] not in ([], ["-m"]):
            raise CommandError(f"only 'free -m' is supported, got {text!r}")
        return {"prog": "free"}
    if prog == "lsmem":
        if len(argv) != 1:
            raise CommandError(f"lsmem takes no options here, got {text!r}")
        return {"prog": "lsmem"}
    if prog == "dmesg":
        if len(argv) != 1:
            raise CommandError(f"dmesg takes no options here, got {text!r}")
        return {"prog": "dmesg"}
    if prog == "sim":
        if len(argv) != 4 or argv[1] not in ("alloc", "free") or \
                argv[2] not in ("kernel", "user", "cache"):
            raise CommandError(f"expected 'sim alloc|free kernel|user|cache SIZE', got {text!r}")
        try:
            size = parse_size(argv[3])
        except SizeError as e:
            raise CommandError(str(e)) from None
        return {"prog": "sim", "verb": argv[1], "klass": argv[2], "size": size}
    if prog in ("makedumpfile", "cp"):
        if actor != "capture":
            raise CommandError(f"{prog} runs in the capture kernel (actor 'capture'), not {actor!r}")
        return _dump_tool(prog, argv, text)
    raise CommandError(f"unknown command {prog!r} for actor {actor!r}")


def _dump_tool(prog: str, argv: list[str], text: str) -> dict[str, Any]:
    if prog == "cp":
        if len(argv) != 3 or argv[1] != VMCORE:
            raise CommandError(f"expected 'cp /proc/vmcore PATH', got {text!r}")
        return {"prog": "cp", "path": argv[2]}
    level, fmt, rest = 0, "kdump", []
    compress = "none"
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-d":
            if i + 1 >= len(argv):
                raise CommandError("makedumpfile: -d needs a dump level")
            level = _int(argv[i + 1], "dump level")
            if not 0 <= level <= 31:
                raise CommandError(f"makedumpfile: dump level {level} is not in 0..31")
            i += 2
            continue
        if a == "-c":
            compress = "zlib"
        elif a == "-l":
            compress = "lzo"
        elif a == "-p":
            compress = "snappy"
        elif a == "-z":
            compress = "zstd"
        elif a == "-E":
            fmt = "elf"
        elif a.startswith("-"):
            raise CommandError(f"makedumpfile: unsupported option {a!r}")
        else:
            rest.append(a)
        i += 1
    if len(rest) != 2 or rest[0] != VMCORE:
        raise CommandError(f"expected 'makedumpfile [-d LEVEL] [-c|-l|-E] /proc/vmcore PATH', got {text!r}")
    if fmt == "elf" and compress != "none":
        raise CommandError("makedumpfile: -E cannot be combined with -c/-l/-p/-z")
    return {"prog": "makedumpfile", "level": level, "format": fmt, "compress": compress,
            "path": rest[1]}


def _drmgr(argv: list[str], text: str) -> dict[str, Any]:
    usage = f"expected 'drmgr -c mem -r -q N', 'drmgr -c mem -r -s DRC_INDEX' or 'drmgr -c mem -a -q N', got {text!r}"
    if argv[0] != "drmgr":
        raise CommandError(f"unknown command {argv[0]!r} for actor 'hotplug' ({usage})")
    if len(argv) != 6 or argv[1:3] != ["-c", "mem"] or argv[3] not in ("-r", "-a") \
            or argv[4] not in ("-q", "-s"):
        raise CommandError(usage)
    action = "remove" if argv[3] == "-r" else "add"
    if argv[4] == "-q":
        n = _int(argv[5], "LMB count")
        if n <= 0:
            raise CommandError(f"drmgr: LMB count must be positive, got {n}")
        return {"prog": "drmgr", "action": action, "count": n, "drc_index": -1}
    if action == "add":
        raise CommandError("drmgr: -a takes -q N here (add by count)")
    drc = _int(argv[5], "DRC index", 0, 0xFFFFFFFF)
    if drc < 0x80000000 or drc > 0xFFFFFFFF:
        raise CommandError(f"drmgr: DRC index {argv[5]} is not an LMB index (0x80000000 + LMB number)")
    return {"prog": "drmgr", "action": action, "count": 0, "drc_index": drc}


COPY_SIDES = ("source", "destination", "hardware")
COPY_SECTIONS = ("cpu", "hpte", "rmr")
COPY_USAGE = "inject copy-error source|destination|hardware [cpu|hpte|rmr] [at chunk N]"


def _inject(argv: list[str], text: str) -> dict[str, Any]:
    if argv[0] != "inject" or len(argv) < 3:
        raise CommandError(f"expected 'inject rtas RC [COUNT]' or '{COPY_USAGE}', got {text!r}")
    if argv[1] == "rtas":
        if len(argv) not in (3, 4):
            raise CommandError(f"expected 'inject rtas RC [COUNT]', got {text!r}")
        rc = _int(argv[2], "RTAS return code")
        # a simulator knob (how many calls answer RC), not a C int: up to int64 for msgpack
        count = _int(argv[3], "count", 0, (1 << 63) - 1) if len(argv) == 4 else 1
        if count <= 0:
            raise CommandError("inject: count must be positive")
        return {"prog": "inject", "what": "rtas", "rc": rc, "count": count}
    if argv[1] == "copy-error":
        return _copy_error(argv[2:], text)
    raise CommandError(f"unknown injection {argv[1]!r} (expected rtas or copy-error)")


def _copy_error(words: list[str], text: str) -> dict[str, Any]:
    """SIDE [SECTION] [at chunk N]: no SECTION means every section the copy reaches."""
    bad = CommandError(f"expected '{COPY_USAGE}', got {text!r}")
    if not words or words[0] not in COPY_SIDES:
        raise bad
    side, rest, section, chunk = words[0], words[1:], "", 0
    if rest and rest[0] in COPY_SECTIONS:
        section, rest = rest[0], rest[1:]
    if rest:
        if len(rest) != 3 or rest[:2] != ["at", "chunk"]:
            raise bad
        chunk = _int(rest[2], "chunk")
        if chunk < 0:
            raise CommandError(f"inject: chunk must be 0 or more, got {chunk}")
    return {"prog": "inject", "what": "copy-error", "side": side, "section": section,
            "chunk": chunk}
