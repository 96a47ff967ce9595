"""Firmware (PHYP + RTAS): partition memory, ibm,configure-kernel-dump, os-term, boot.

Owns which LMBs are assigned to the partition and the RAM across a reset. On
`ibm,os-term` while a dump is registered it copies each section (source or
destination outside the partition sets that section's error flag, bytes_dumped 0),
keeps RAM, clears the registration and boots the capture kernel with
`ibm,kernel-dump` in its device tree.
"""
from __future__ import annotations

import copy
from typing import Any

from fadumpsim.actors.kernel.fwdump import (CPU_STATE_DATA, DST_ERROR, ERROR_FLAG, HPTE_REGION, INVALIDATE,
                                  REGISTER, SRC_ERROR, UNREGISTER)
from fadumpsim.actors.lmbs import assigned_ranges, flag_runs
from fadumpsim.actors.machine import Machine
from fadumpsim.actors.pagemap import PageMap
from fadumpsim.actors.commands import parse_command
from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import SimActor

CPU_STATE_PER_CPU = 0x400   # ibm,configure-kernel-dump-sizes: CPU state data per thread
CPU_STATE_HEADER = 0x1000
HPTE_SIZE = 0               # as QEMU reports it


class Firmware(SimActor):
    def __init__(self, name: str, machine: Machine, cmdline: str,
                 scripts: list[str] | None = None) -> None:
        super().__init__(name)
        self.machine = machine
        self.cmdline = cmdline
        self.scripts = list(scripts or [])
        self.assigned = bytearray(machine.n_lmbs)
        self.assigned[:machine.boot_lmbs] = b"\x01" * machine.boot_lmbs
        for n in machine.unassigned:
            self.assigned[n] = 0
        self.registered: dict[str, Any] | None = None
        self.dump_active: dict[str, Any] | None = None
        self.inject_rtas: list[list[int]] = []  # [[rc, remaining], ...]
        self.copy_error: list[str] = []
        self.boots = 0
        self.crashes = 0
        self.calls: list[list[Any]] = []  # [seq, cmd, rc]: a short history for humans

    @property
    def cpu_state_size(self) -> int:
        return CPU_STATE_HEADER + CPU_STATE_PER_CPU * self.machine.cpus

    # -- boot -------------------------------------------------------------------------------
    def lmb_runs(self) -> list[list[int]]:
        return flag_runs(self.assigned)

    def device_tree(self) -> dict[str, Any]:
        m = self.machine
        return {"lmb_size": m.lmb_size, "lmbs": self.lmb_runs(), "rma_size": m.rma_size,
                "page_size": m.page_size, "cpus": m.cpus, "nodes": m.nodes,
                "cmdline": self.cmdline,
                "fadump": {"supported": True, "cpu_state_size": self.cpu_state_size,
                           "hpte_size": HPTE_SIZE},
                "kernel_dump": copy.deepcopy(self.dump_active)}

    def on_sim_power_on(self, ev: Event) -> None:
        self.boots += 1
        for s in self.scripts:
            self.send(s, "script.start", {})
        self.send("kernel", "fw.boot", {"dt": self.device_tree(),
                                        "ram": {"extents": [], "blobs": []}, "boot": self.boots})

    # -- RTAS -----------------------------------------------------------------------------------
    def in_partition(self, start: int, length: int) -> bool:
        if length == 0:
            return True
        lmb = self.machine.lmb_size
        first, last = start // lmb, (start + length - 1) // lmb
        if last >= len(self.assigned):
            return False
        return all(self.assigned[first:last + 1])

    def on_rtas_configure_kernel_dump(self, ev: Event) -> None:
        p = ev.payload
        rc = self.configure_kernel_dump(p["cmd"], p["fdm"])
        self.calls.append([ev.seq, p["cmd"], rc])
        self.send(ev.src, "rtas.return", {"op": p["op"], "status": rc})

    def configure_kernel_dump(self, cmd: int, fdm: dict[str, Any] | None) -> int:
        if self.inject_rtas:
            rc, left = self.inject_rtas[0]
            if left <= 1:
                self.inject_rtas.pop(0)
            else:
                self.inject_rtas[0][1] = left - 1
            return rc
        if cmd == REGISTER:
            if self.registered is not None:
                return -9
            if self.dump_active is not None:
                return -10
            if not valid_fdm(fdm):
                return -3
            for s in fdm["sections"]:
                if not self.in_partition(s["source"], s["length"]) or \
                        not self.in_partition(s["destination"], s["length"]):
                    return -3
            self.registered = copy.deepcopy(fdm)
            return 0
        if cmd == UNREGISTER:
            self.registered = None
            return 0
        if cmd == INVALIDATE:
            if self.dump_active is None:
                return -3
            self.dump_active = None
            return 0
        return -3

    # -- DLPAR -------------------------------------------------------------------------------------
    def on_dlpar_acquire_drc(self, ev: Event) -> None:
        idx = ev.payload["drc_index"]
        lmb = idx - 0x80000000
        rc = 0
        if not 0 <= lmb < len(self.assigned) or self.assigned[lmb]:
            rc = -1
        else:
            self.assigned[lmb] = 1
        self.send(ev.src, "dlpar.drc_result", {"op": ev.payload["op"], "drc_index": idx, "rc": rc})

    def on_dlpar_release_drc(self, ev: Event) -> None:
        idx = ev.payload["drc_index"]
        lmb = idx - 0x80000000
        rc = 0
        if not 0 <= lmb < len(self.assigned) or not self.assigned[lmb]:
            rc = -1
        else:
            self.assigned[lmb] = 0
        self.send(ev.src, "dlpar.drc_result", {"op": ev.payload["op"], "drc_index": idx, "rc": rc})

    # -- crash ---------------------------------------------------------------------------------------
    def on_rtas_os_term(self, ev: Event) -> None:
        self.crashes += 1
        if self.crashes > 1:
            return  # a second crash ends the story (see docs/limitations)
        ram = PageMap.from_list(self.machine.page_size, ev.payload["ram"]["extents"])
        blobs = {a: (size, b) for a, size, b in ev.payload["ram"]["blobs"]}
        fdm = self.registered
        if fdm is not None:
            fdm = copy.deepcopy(fdm)
            self.copy_sections(fdm, ram, blobs)
            self.registered = None
            self.dump_active = fdm
        # reset keeping RAM; what is not in the partition is gone
        kept = PageMap(self.machine.page_size)
        for lo, hi in assigned_ranges(self.assigned, self.machine.lmb_size):
            for a, z, k, t, b in ram.pieces(lo, hi):
                kept.assign(a, z, k, t, b)
        self.boots += 1
        self.send("capture", "fw.boot", {
            "dt": self.device_tree(),
            "ram": {"extents": kept.to_list(),
                    "blobs": [[a, sz, b] for a, (sz, b) in sorted(blobs.items())
                              if self.in_partition(a, sz)]},
            "boot": self.boots})

    def copy_sections(self, fdm: dict[str, Any], ram: PageMap, blobs: dict[int, Any]) -> None:
        for s in fdm["sections"]:
            src_ok = self.in_partition(s["source"], s["length"]) and "source" not in self.copy_error
            dst_ok = self.in_partition(s["destination"], s["length"]) and \
                "destination" not in self.copy_error
            if not src_ok or not dst_ok:
                s["error"] = (0 if src_ok else SRC_ERROR) | (0 if dst_ok else DST_ERROR)
                s["dumped"] = 0
                continue
            d, n = s["destination"], s["length"]
            if s["type"] in (CPU_STATE_DATA, HPTE_REGION):
                if n:
                    ram.assign(d, d + n, "reserved", f"fadump:section{s['type']:#x}", 0)
            else:
                pieces = list(ram.pieces(s["source"], s["source"] + n))
                ram.assign(d, d + n, "free")
                for a, b, k, t, base in pieces:
                    off = a - s["source"]
                    ram.assign(d + off, d + off + (b - a), k, t, base)
                for a in [a for a in blobs if d <= a < d + n]:
                    del blobs[a]
            s["dumped"] = n
        if self.copy_error and all(s["error"] == 0 for s in fdm["sections"]):
            fdm["status"] = ERROR_FLAG

    # -- scripts ------------------------------------------------------------------------------------
    def on_cmd_run(self, ev: Event) -> None:
        cmd = parse_command("firmware", ev.payload["command"])
        if cmd["what"] == "rtas":
            self.inject_rtas.append([cmd["rc"], cmd["count"]])
            out = f"next {cmd['count']} ibm,configure-kernel-dump call(s) will return {cmd['rc']}\n"
        else:
            self.copy_error.append(cmd["side"])
            out = f"the next dump copy will fail on the {cmd['side']} side\n"
        self.send(ev.src, "cmd.result", {"index": ev.payload["index"], "stdout": out,
                                         "stderr": "", "exit": 0})

    def snapshot(self) -> dict[str, Any]:
        return {"assigned_lmbs": self.assigned.count(1), "lmb_runs": self.lmb_runs(),
                "registered": self.registered, "dump_active": self.dump_active,
                "inject_rtas": self.inject_rtas, "copy_error": self.copy_error,
                "boots": self.boots, "crashes": self.crashes, "calls": self.calls[-20:]}


def valid_fdm(fdm: Any) -> bool:
    """Structure check of a dump memory structure (version, sections, fields)."""
    if not isinstance(fdm, dict) or fdm.get("version") != 1:
        return False
    secs = fdm.get("sections")
    if not isinstance(secs, list) or not secs:
        return False
    keys = {"type", "request", "error", "source", "length", "dumped", "destination"}
    return all(isinstance(s, dict) and s.keys() == keys for s in secs)
