"""One line per event: the payload fields a kernel engineer looks for.

Shared by the timelines (fadumpsim/render.py) and the explanations
(fadumpsim/explain.py), which would otherwise import each other.
"""
from __future__ import annotations

from typing import Any


RTAS_CMDS = {1: "REGISTER", 2: "UNREGISTER", 3: "INVALIDATE"}
DRC_BASE = 0x80000000


def summarize_payload(typ: str, p: dict[str, Any], width: int = 90) -> str:
    """The fields of an event a kernel engineer looks for, short enough for one line."""
    if typ == "cmd.run":
        return repr(p["command"])
    if typ == "cmd.result":
        out = (p["stdout"] or p["stderr"]).strip().splitlines()
        return f"exit={p['exit']} {out[0][:50]!r}" if out else f"exit={p['exit']}"
    if typ == "script.done":
        return f"{p['script']} finished"
    if typ == "rtas.configure_kernel_dump":
        return f"op={p['op']} cmd={RTAS_CMDS.get(p['cmd'], p['cmd'])}"
    if typ == "rtas.return":
        return f"op={p['op']} status={p['status']}"
    if typ == "fw.boot":
        kd = "ibm,kernel-dump" if p["dt"].get("kernel_dump") else "no dump"
        return f"boot={p['boot']} {kd}"
    if typ == "rtas.os_term":
        return f"crash on cpu {p['crash']['cpu']}, {len(p['ram']['extents'])} RAM extents"
    if typ == "hp.sysfs_write":
        return f"'echo {p['value']} > {p['path']}' op={p['op']}"
    if typ == "uevent":
        return f"memory{p['lmb']} {p['action']}"
    if typ == "udev.rebuild":
        return f"kdumpctl start step {p['step']} (check_rebuild/mkdumprd) op={p['op']}"
    if typ == "hp.printk":
        return repr(p["msg"][:width])
    if typ.startswith("dlpar.") and "drc_index" in p:
        rc = f" rc={p['rc']}" if "rc" in p else ""
        return f"LMB {p['drc_index'] - DRC_BASE} (drc index {p['drc_index']:#x}){rc} op={p['op']}"
    parts = []
    for k, v in p.items():
        if isinstance(v, (dict, list)):
            v = f"<{len(v)}>"
        parts.append(f"{k}={v}")
    s = " ".join(parts)
    return s if len(s) <= width else s[: width - 3] + "..."


def describe(typ: str, p: dict[str, Any]) -> str:
    """Event type and its key fields, for stories and divergence reports."""
    detail = summarize_payload(typ, p)
    return f"{typ} {detail}" if detail else typ
