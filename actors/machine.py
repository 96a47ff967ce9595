"""The partition and kernel configuration every actor is built from.

These are plain, immutable values derived from the scenario; each actor gets its own
copy at construction (they are configuration, not shared state).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fadumpsim.actors.sizes import MB, parse_size

PROFILES = ("rfc-v6", "classic", "upstream")

#: The architecture's limits (docs/scenario-format.md, "Limits"): ppc64 book3s
#: MAX_PHYSMEM_BITS is 51 (2PB) since commit 4ffe713b7587 (2019; 46, 64TB, before) --
#: the largest any profile (upstream included) can address; pseries_defconfig NR_CPUS=2048.
MAX_PHYSMEM = 1 << 51
MIN_LMB = 16 * MB
MAX_CPUS = 2048
MAX_NODES = 64  # the model's own cap, below the kernel's MAX_NUMNODES (256)
RFC_PATCHES = ("zone-movable", "hole-message", "hotplug-protect")
#: mainline steps after 2018 that profile `upstream` can revert one by one (docs/profiles.md)
UPSTREAM_STEPS = ("cma", "reregister", "boot-register", "hotplug-ready")
#: what `[kernel] revert` may name, per profile
REVERTABLE = {"rfc-v6": RFC_PATCHES, "classic": (), "upstream": UPSTREAM_STEPS}
HOTPLUG_LOCK_WHAT_IF = ("what-if: registration takes the device-hotplug lock "
                        "([kernel] hotplug_lock = true; no real kernel does: fadump_register_store() "
                        "takes only fadump_mutex)")


@dataclass(frozen=True)
class Machine:
    memory: int = 8 << 30
    max_memory: int = 16 << 30
    lmb_size: int = 256 * MB
    page_size: int = 64 << 10
    rma_size: int = 512 * MB
    cpus: int = 8
    nodes: int = 1
    #: LMB numbers within `memory` that are not assigned at boot (an extension:
    #: a partition whose memory has holes, e.g. after earlier DLPAR).
    unassigned: tuple[int, ...] = ()

    @property
    def n_lmbs(self) -> int:
        """drmem table size: every LMB up to max_memory."""
        return self.max_memory // self.lmb_size

    @property
    def boot_lmbs(self) -> int:
        return self.memory // self.lmb_size

    def node_of(self, addr: int) -> int:
        """Memory is split evenly over nodes; memory above `memory` is the last node's."""
        per = self.memory // self.nodes
        return min(addr // per, self.nodes - 1) if per else 0

    def node_range(self, nid: int) -> tuple[int, int]:
        per = self.memory // self.nodes
        end = self.max_memory if nid == self.nodes - 1 else (nid + 1) * per
        return nid * per, end

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Machine":
        mem = parse_size(d.get("memory", "8G"))
        kw: dict[str, Any] = {"memory": mem}
        # default: twice memory (the contract), but never beyond what the kernel addresses
        kw["max_memory"] = parse_size(d["max_memory"]) if "max_memory" in d else \
            max(mem, min(2 * mem, MAX_PHYSMEM))
        for k in ("lmb_size", "page_size", "rma_size"):
            if k in d:
                kw[k] = parse_size(d[k])
        for k in ("cpus", "nodes"):
            if k in d:
                kw[k] = int(d[k])
        if "unassigned" in d:
            kw["unassigned"] = tuple(sorted(int(x, 0) if isinstance(x, str) else int(x)
                                            for x in d["unassigned"]))
        return cls(**kw)

    def validate(self) -> list[tuple[str, str]]:
        """(key, problem) pairs; empty when the machine is sane."""
        out = []
        ps, lmb = self.page_size, self.lmb_size
        if ps not in (4096, 65536):
            out.append(("page_size", f"must be 4K or 64K, got {ps}"))
        if lmb < MIN_LMB or lmb & (lmb - 1) or lmb > MAX_PHYSMEM:
            out.append(("lmb_size", "must be a power of two from 16M to 2P"))
            return out  # every other check divides by it
        for key in ("memory", "max_memory"):
            if getattr(self, key) > MAX_PHYSMEM:
                out.append((key, f"{getattr(self, key)} bytes exceeds the 2P a ppc64 kernel can "
                                 "address (MAX_PHYSMEM_BITS 51)"))
                return out
        if self.memory <= 0 or self.memory % lmb:
            out.append(("memory", f"must be a positive multiple of lmb_size ({lmb // MB}M)"))
        if self.max_memory < self.memory or self.max_memory % lmb:
            out.append(("max_memory", "must be >= memory and a multiple of lmb_size"))
        if self.rma_size <= 0 or self.rma_size % lmb or self.rma_size > self.memory:
            out.append(("rma_size", "must be a multiple of lmb_size within memory"))
        if not 1 <= self.cpus <= MAX_CPUS:
            out.append(("cpus", f"must be 1..{MAX_CPUS} (NR_CPUS)"))
        if not 1 <= self.nodes <= MAX_NODES or (self.memory // lmb) % self.nodes:
            out.append(("nodes", f"must be 1..{MAX_NODES} and divide the LMB count evenly"))
        for n in self.unassigned:
            if not 0 <= n < self.boot_lmbs or n * lmb < self.rma_size:
                out.append(("unassigned", f"LMB {n} is not a boot LMB above the RMA"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"memory": self.memory, "max_memory": self.max_memory, "lmb_size": self.lmb_size,
                "page_size": self.page_size, "rma_size": self.rma_size, "cpus": self.cpus,
                "nodes": self.nodes, "unassigned": list(self.unassigned)}


@dataclass(frozen=True)
class KernelConfig:
    profile: str = "rfc-v6"
    cmdline: str = "fadump=on"
    revert: tuple[str, ...] = ()
    hotplug_lock: bool = False
    udev_reload: bool = False
    workload: dict[str, int] = field(default_factory=dict)

    def what_ifs(self) -> list[str]:
        """Counterfactual knobs this configuration turns on: behaviour no real kernel had.

        Both the 2018 kernel and mainline take only fadump_mutex in fadump_register_store();
        DLPAR takes the device-hotplug lock. `hotplug_lock = true` asks what would happen
        if registration took it too.
        """
        return [HOTPLUG_LOCK_WHAT_IF] if self.hotplug_lock else []

    def has(self, patch: str) -> bool:
        """Is RFC patch `patch` applied in this kernel?"""
        return self.profile == "rfc-v6" and patch not in self.revert

    def mainline(self, step: str) -> bool:
        """Is mainline step `step` (UPSTREAM_STEPS) in this kernel? Only profile upstream."""
        return self.profile == "upstream" and step not in self.revert
