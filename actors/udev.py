"""What userspace does on a memory uevent: the kdump-utils udev rule, systemd, kdumpctl.

A rule is a small object living in the hotplug actor (udev, systemd and kdumpctl are
userspace of the production kernel and die with it). `RULES` maps a scenario's
`[hotplug] udev_rule` name to its class; `DEFAULT_RULE` maps a profile to the rule
`udev_reload = true` means.

To add a rule (for example the 2018-10 throttled `kdumpctl reload`, or the 2024
`hotplug_ready` check of the upstream profile):

1. subclass `UdevRule`, set `name` and `era`, implement `on_uevent(action, lmb)`; start
   multi-step work with `self.hp.start_op(kind, generator)`, where the generator yields
   `Call`/`Step`/`Acquire` as every operation does (actors/ops.py), and reuse
   `kdumpctl_stop` / `kdumpctl_start` below if the rule runs kdumpctl;
2. decorate it with `@register` (the name must be new);
3. if a profile should use it for `udev_reload = true`, add it to `DEFAULT_RULE`.

The scenario loader accepts every registered name, and docs/scenarios.md names the
era of each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator

from fadumpsim.actors.ops import Acquire, Call, Step

REGISTERED = "/sys/kernel/fadump_registered"
MS = 1_000_000  # ns

#: `kdumpctl start` duration by default (ms). Quick: check_rebuild finds the fadump
#: initrd current (stat() of the kernel, kdump.conf, the modules, plus one `lsinitrd`
#: of the initrd): about a second. Rebuild: mkdumprd/dracut of a host-only initrd,
#: tens of seconds. Order-of-magnitude values; the scenario knob `kdumpctl_start_ms`
#: sets them. Memory hotplug changes none of the files check_rebuild looks at, so the
#: real default is the quick start.
START_MS_QUICK = 1_000
START_MS_REBUILD = 30_000
REBUILD_STEPS = ("mkdumprd: collect modules", "mkdumprd: dracut --hostonly",
                 "mkdumprd: install initrd")


@dataclass(frozen=True)
class UdevConfig:
    """`[hotplug]` of a scenario, resolved: the rule and kdumpctl start's knobs."""
    rule: str = "none"
    initrd_stale: bool = False
    start_ms: int | None = None

    def start_ns(self, rebuild: bool) -> int:
        if self.start_ms is not None:
            return self.start_ms * MS
        return (START_MS_REBUILD if rebuild else START_MS_QUICK) * MS


RULES: dict[str, type["UdevRule"]] = {}
#: profile -> the rule `udev_reload = true` stands for
DEFAULT_RULE: dict[str, str] = {"rfc-v6": "try-restart-2018", "classic": "try-restart-2018"}


def register(cls: type["UdevRule"]) -> type["UdevRule"]:
    if cls.name in RULES:
        raise ValueError(f"udev rule {cls.name!r} registered twice")
    RULES[cls.name] = cls
    return cls


def resolve(profile: str, udev_reload: bool | None, udev_rule: str | None) -> str:
    """The rule a scenario runs: `udev_rule` when given, else the profile's default
    for `udev_reload = true`, else "none". Raises ValueError on a contradiction."""
    if udev_rule is not None:
        if udev_rule not in RULES:
            raise ValueError(f"unknown udev rule {udev_rule!r} (known: {', '.join(RULES)})")
        if udev_reload is False and udev_rule != "none":
            raise ValueError(f"udev_reload = false contradicts udev_rule = {udev_rule!r}")
        if udev_reload is True and udev_rule == "none":
            raise ValueError("udev_reload = true contradicts udev_rule = \"none\"")
        return udev_rule
    if udev_reload:
        if profile not in DEFAULT_RULE:
            raise ValueError(f"profile {profile!r} has no default udev rule; name one with udev_rule")
        return DEFAULT_RULE[profile]
    return "none"


def make_rule(hp: Any, cfg: UdevConfig) -> "UdevRule":
    return RULES[cfg.rule](hp, cfg)


class UdevRule:
    """What udev runs for one memory block uevent."""
    name = "?"
    era = ""

    def __init__(self, hp: Any, cfg: UdevConfig) -> None:
        self.hp, self.cfg = hp, cfg

    def note(self, text: str) -> None:
        """One line of the userspace log (the hotplug actor's `udev_log`)."""
        hp = self.hp
        cur = hp._current
        hp.udev_log.append([cur.seq if cur is not None else 0, text])

    def on_uevent(self, action: str, lmb: int) -> None:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        return {"rule": self.name}


@register
class NoRule(UdevRule):
    """No rule reacts to memory events (kdump-utils not installed, or the rule removed)."""
    name = "none"
    era = "-"

    def on_uevent(self, action: str, lmb: int) -> None:
        return


# -- kdumpctl --------------------------------------------------------------------------------------
def sysfs_write(value: str) -> Call:
    return Call("kernel", "hp.sysfs_write", {"path": REGISTERED, "value": value}, "hp.sysfs_result")


def kdumpctl_stop(rule: UdevRule) -> Generator[Any, Any, int]:
    """`kdumpctl stop` for fadump: echo 0 > fadump_registered."""
    r = yield sysfs_write("0")
    rule.note(f"kdumpctl stop: echo 0 > {REGISTERED} -> {r['rc']}")
    return r["rc"]


def kdumpctl_start(rule: UdevRule, state: dict[str, Any]) -> Generator[Any, Any, int]:
    """`kdumpctl start` for fadump: check_rebuild, check_current_status, echo 1.

    check_rebuild rebuilds the initrd only when it is stale (then it is current);
    check_current_status reads fadump_registered and, when it is already 1, prints
    "Kdump already running: [WARNING]" and writes nothing: kdumpctl never meets EEXIST.
    """
    cfg = rule.cfg
    rebuild = bool(state.get("initrd_stale"))
    total = cfg.start_ns(rebuild)
    steps = REBUILD_STEPS if rebuild else ("check_rebuild: initrd is current",)
    for i, what in enumerate(steps):
        yield Step("udev.rebuild", {"step": i + 1}, delay=total // len(steps))
        rule.note(f"kdumpctl start: {what}")
    state["initrd_stale"] = False
    r = yield Call("kernel", "hp.sysfs_read", {"path": REGISTERED}, "hp.sysfs_value")
    if (r["value"] or "").strip() == "1":
        rule.note("kdumpctl start: Kdump already running: [WARNING]")
        return 0
    r = yield sysfs_write("1")
    rule.note(f"kdumpctl start: echo 1 > {REGISTERED} -> {r['rc']}")
    return r["rc"]


# -- systemd: one job per unit -----------------------------------------------------------------------
@register
class TryRestart2018(UdevRule):
    """kdump-utils `98-kexec.rules` as shipped 2014 .. 2018-10-24:
    `SUBSYSTEM=="memory", ACTION=="online|offline", PROGRAM="/bin/systemctl try-restart kdump.service"`.

    systemd keeps at most one job per unit: a try-restart arriving while a restart runs
    is queued, and further ones merge into that queued job. So a burst of N uevents
    gives at most two restarts, one after the other. kdumpctl's single-instance flock
    (`kdumpctl` lock here) is taken by each run; only systemd runs it in this model, so
    it is never contended. The unit is active from boot (kdump.service is enabled; the
    scenario's scripts stand in for its first registration); a start whose echo 1 fails
    leaves it failed, and try-restart of an inactive unit does nothing.
    """
    name = "try-restart-2018"
    era = "kdump-utils 2014..2018-10-24"

    def __init__(self, hp: Any, cfg: UdevConfig) -> None:
        super().__init__(hp, cfg)
        self.active = True
        self.running = False
        self.pending = False
        self.restarts = 0
        self.merged = 0
        self.state: dict[str, Any] = {"initrd_stale": cfg.initrd_stale}

    def on_uevent(self, action: str, lmb: int) -> None:
        self.note(f"udev: memory{lmb} {action}: systemctl try-restart kdump.service")
        if self.running:
            if self.pending:
                self.merged += 1
                self.note("systemd: kdump.service try-restart merged into the queued job")
            else:
                self.pending = True
                self.note("systemd: kdump.service try-restart queued behind the running job")
            return
        if not self.active:
            self.note("systemd: kdump.service is not active: try-restart does nothing")
            return
        self.running = True
        self.hp.start_op("kdump.service", self.jobs())

    def jobs(self) -> Generator[Any, Any, None]:
        """The unit's job slot: run the restart, then the queued one (if any)."""
        yield Acquire("kdumpctl")
        while True:
            self.restarts += 1
            self.note(f"systemd: kdump.service restart #{self.restarts}")
            yield from kdumpctl_stop(self)
            rc = yield from kdumpctl_start(self, self.state)
            self.active = rc == 0
            if rc:
                self.note("systemd: kdump.service failed")
            if not self.pending:
                break
            self.pending = False
            if not self.active:
                self.note("systemd: kdump.service is not active: queued try-restart does nothing")
                break
        self.running = False

    def snapshot(self) -> dict[str, Any]:
        return {"rule": self.name, "active": self.active, "running": self.running,
                "pending": self.pending, "restarts": self.restarts, "merged": self.merged,
                "initrd_stale": self.state["initrd_stale"]}



# -- mainline-era rules (profile upstream; docs/profiles.md) --------------------------------------
SETTLE_NS = 1_000 * MS  # the throttler's `sleep 1 && udevadm settle`


def sysfs_read(path: str) -> Call:
    return Call("kernel", "hp.sysfs_read", {"path": path}, "hp.sysfs_value")


def kdumpctl_reload_fadump(rule: UdevRule) -> Generator[Any, Any, int]:
    """`kdumpctl reload` for fadump, under kdumpctl's flock: `echo 1` re-registers in one
    write; a kernel that refuses (EEXIST: 2018, or `reregister` reverted) gets the old
    stop/start, `echo 0` then `echo 1` -- the window."""
    yield Acquire("kdumpctl")
    r = yield sysfs_write("1")
    rule.note(f"kdumpctl reload: echo 1 > {REGISTERED} -> {r['rc']}")
    if r["rc"] == 0:
        return 0
    rc = yield from kdumpctl_stop(rule)
    if rc:
        return rc
    r = yield sysfs_write("1")
    rule.note(f"kdumpctl start: echo 1 > {REGISTERED} -> {r['rc']}")
    return r["rc"]


@register
class ReloadThrottled2018(UdevRule):
    """kdump-utils 2018-10-24 .. 2023: `98-kexec.rules` runs `kdump-udev-throttler`:
    `flock -n` on its lock (a later event of the burst prints "Throttling kdump restart
    for concurrent udev event" and exits 0), `sleep 1 && udevadm settle --timeout 3`,
    release the lock, then `kdumpctl reload` (kdumpctl_reload_fadump above)."""
    name = "reload-throttled-2018"
    era = "kdump-utils 2018-10-24..2023"

    def __init__(self, hp: Any, cfg: UdevConfig) -> None:
        super().__init__(hp, cfg)
        self.throttle_held = False
        self.reloads = 0

    def on_uevent(self, action: str, lmb: int) -> None:
        self.note(f"udev: memory{lmb} {action}: kdump-udev-throttler")
        self.throttle()

    def throttle(self) -> None:
        if self.throttle_held:
            self.note("Throttling kdump restart for concurrent udev event")
            return
        self.throttle_held = True
        self.hp.start_op("kdump-udev-throttler", self.settle_then_reload())

    def settle_then_reload(self) -> Generator[Any, Any, None]:
        yield Step("udev.settle", {}, delay=SETTLE_NS)
        self.throttle_held = False  # exec 9>&-: released before kdumpctl runs
        self.reloads += 1
        yield from kdumpctl_reload_fadump(self)

    def snapshot(self) -> dict[str, Any]:
        return {"rule": self.name, "throttle_held": self.throttle_held, "reloads": self.reloads}


@register
class HotplugReady2024(ReloadThrottled2018):
    """kdump-utils 2024 `98-kexec.rules.ppc64`: `! test -f /sys/kernel/fadump_enabled ||
    cat /sys/kernel/fadump_enabled | grep 0 || ! test -f /sys/kernel/fadump/hotplug_ready
    || cat /sys/kernel/fadump/hotplug_ready | grep 0 || exit 0` before the throttler: with
    fadump enabled and hotplug_ready 1 the event does nothing."""
    name = "hotplug-ready-2024"
    era = "kdump-utils 2024"

    def on_uevent(self, action: str, lmb: int) -> None:
        self.note(f"udev: memory{lmb} {action}: 98-kexec.rules.ppc64")
        self.hp.start_op("98-kexec.rules", self.check())

    def check(self) -> Generator[Any, Any, None]:
        enabled = (yield sysfs_read("/sys/kernel/fadump_enabled"))["value"]
        if enabled is not None and enabled.strip() != "0":
            ready = (yield sysfs_read("/sys/kernel/fadump/hotplug_ready"))["value"]
            if ready is not None and ready.strip() != "0":
                self.note("udev: hotplug_ready is 1, exit 0")
                return
        self.throttle()


DEFAULT_RULE["upstream"] = HotplugReady2024.name
