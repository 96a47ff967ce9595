"""Firmware (PHYP + RTAS): partition memory, ibm,configure-kernel-dump, os-term, boot.

Owns which LMBs are assigned to the partition and the RAM across a reset. The rules of
`ibm,configure-kernel-dump` depend on the flavour (actors/flavours.py: PowerVM or QEMU);
on `ibm,os-term` while a dump is registered it copies the sections as firmware does
(actors/firmware_copy.py: in order, 32 MiB chunks, one error flag per section), keeps
RAM, clears the registration and boots the capture kernel with `ibm,kernel-dump` in
its device tree.
"""
from __future__ import annotations

import copy
from typing import Any

from fadumpsim.actors import flavours
from fadumpsim.actors.commands import parse_command
from fadumpsim.actors.firmware_copy import Copier, CopyFault
from fadumpsim.actors.lmbs import assigned_ranges, flag_runs
from fadumpsim.actors.machine import Machine
from fadumpsim.actors.pagemap import PageMap
from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import SimActor

HPTE_SIZE = 0               # as QEMU reports it


class Firmware(SimActor):
    def __init__(self, name: str, machine: Machine, cmdline: str,
                 scripts: list[str] | None = None,
                 flavour: str = flavours.DEFAULT_FLAVOUR) -> None:
        super().__init__(name)
        self.machine = machine
        self.cmdline = cmdline
        self.scripts = list(scripts or [])
        self.flavour = flavours.check_flavour(flavour)
        self.assigned = bytearray(machine.n_lmbs)
        self.assigned[:machine.boot_lmbs] = b"\x01" * machine.boot_lmbs
        for n in machine.unassigned:
            self.assigned[n] = 0
        self.registered: dict[str, Any] | None = None
        self.dump_active: dict[str, Any] | None = None
        self.inject_rtas: list[list[int]] = []  # [[rc, remaining], ...]
        self.copy_faults: list[list[Any]] = []   # [[side, section, chunk], ...] (CopyFault)
        self.written: list[list[int]] = []       # [start, end, type]: what os-term overwrote
        self.boots = 0
        self.crashes = 0
        self.calls: list[list[Any]] = []  # [seq, cmd, rc]: a short history for humans

    @property
    def cpu_state_size(self) -> int:
        return flavours.cpu_state_size(self.flavour, self.machine.cpus)

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

    # -- partition memory ------------------------------------------------------------------------
    def first_hole(self, start: int, length: int) -> int | None:
        """The first address of [start, start+length) not backed by an assigned LMB."""
        if length <= 0:
            return None
        lmb = self.machine.lmb_size
        first, last = start // lmb, (start + length - 1) // lmb
        n = len(self.assigned)
        if first >= n:
            return start
        i = self.assigned.find(b"\x00", first, min(last, n - 1) + 1)
        if i < 0:
            return None if last < n else n * lmb
        return max(start, i * lmb)

    def in_partition(self, start: int, length: int) -> bool:
        return self.first_hole(start, length) is None

    def present_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) backed by assigned LMBs (a chunk spans a few LMBs)."""
        lmb = self.machine.lmb_size
        out: list[tuple[int, int]] = []
        for i in range(start // lmb, min((end - 1) // lmb + 1, len(self.assigned))):
            if self.assigned[i]:
                a, b = max(start, i * lmb), min(end, (i + 1) * lmb)
                if out and out[-1][1] == a:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
        return out

    # -- RTAS -----------------------------------------------------------------------------------
    def on_rtas_configure_kernel_dump(self, ev: Event) -> None:
        p = ev.payload
        rc = self.configure_kernel_dump(p["cmd"], p["fdm"])
        self.calls.append([ev.seq, p["cmd"], rc])
        self.send(ev.src, "rtas.return", {"op": p["op"], "status": rc})

    def rtas_state(self) -> flavours.FirmwareState:
        return flavours.FirmwareState(self.registered is not None, self.dump_active is not None,
                                      self.machine.rma_size, self.in_partition)

    def configure_kernel_dump(self, cmd: int, fdm: dict[str, Any] | None) -> int:
        if self.inject_rtas:
            rc, left = self.inject_rtas[0]
            if left <= 1:
                self.inject_rtas.pop(0)
            else:
                self.inject_rtas[0][1] = left - 1
            return rc
        rc, action = flavours.configure_kernel_dump(self.flavour, self.rtas_state(), cmd, fdm)
        if action == "register":
            self.registered = copy.deepcopy(fdm)
            self.registered["status"] = 0     # QEMU: "Reset dump status flags"
        elif action in ("unregister", "invalidate"):
            self.registered = None
            self.dump_active = None
        return rc

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
        if self.registered is not None:
            fdm = copy.deepcopy(self.registered)
            faults = [CopyFault(*f) for f in self.copy_faults]
            self.copy_faults = []
            res = Copier(self.flavour, self.machine.cpus, ram, blobs, self, faults).run(fdm["sections"])
            self.written = res.written
            if res.aborted:
                return  # QEMU: os-term fails with a hardware error and the guest is powered off
            fdm["status"] = flavours.final_status(self.flavour, res.hardware_error)
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

    # -- scripts ------------------------------------------------------------------------------------
    def on_cmd_run(self, ev: Event) -> None:
        cmd = parse_command("firmware", ev.payload["command"])
        if cmd["what"] == "rtas":
            self.inject_rtas.append([cmd["rc"], cmd["count"]])
            out = f"next {cmd['count']} ibm,configure-kernel-dump call(s) will return {cmd['rc']}\n"
        else:
            self.copy_faults.append([cmd["side"], cmd["section"], cmd["chunk"]])
            where = f"the {cmd['section']} section" if cmd["section"] else "every section"
            out = (f"the next dump copy will fail on the {cmd['side']} side of "
                   f"{where} at chunk {cmd['chunk']}\n")
        self.send(ev.src, "cmd.result", {"index": ev.payload["index"], "stdout": out,
                                         "stderr": "", "exit": 0})

    def snapshot(self) -> dict[str, Any]:
        return {"flavour": self.flavour, "assigned_lmbs": self.assigned.count(1),
                "lmb_runs": self.lmb_runs(),
                "registered": self.registered, "dump_active": self.dump_active,
                "inject_rtas": self.inject_rtas, "copy_faults": self.copy_faults,
                "written": self.written,
                "boots": self.boots, "crashes": self.crashes, "calls": self.calls[-20:]}
