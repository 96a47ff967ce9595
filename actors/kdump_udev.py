"""The kdump-utils udev rules of the mainline era, as the hotplug manager runs them.

`98-kexec.rules` decides what a memory online/offline uevent does to fadump:

- `reload-throttled-2018` (kdump-utils 2018-10-24 to 2023): the rule runs
  `kdump-udev-throttler`: `flock -n` on its lock (a second event of the burst prints
  `Throttling kdump restart for concurrent udev event` and exits), `sleep 1 &&
  udevadm settle`, release the lock, then `kdumpctl reload`. For fadump, reload is
  `echo 1 > fadump_registered`; when the kernel refuses re-registration (2018 and
  any kernel without the one-write re-registration) it falls back to stop/start,
  `echo 0` then `echo 1`: the window where a crash gives no dump.
- `hotplug-ready-2024` (kdump-utils 2024): the rule first reads
  `/sys/kernel/fadump_enabled` and `/sys/kernel/fadump/hotplug_ready` and exits at
  once when fadump is enabled and hotplug_ready reads 1; otherwise it runs the
  throttler as above.

The 2018 `systemctl try-restart kdump.service` rule stays in actors/hotplug.py.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors.ops import Call, Step

REGISTERED = "/sys/kernel/fadump_registered"
SETTLE_NS = 1_000_000_000  # sleep 1 && udevadm settle


class MainlineUdevRules:
    """Mixed into the Hotplug actor: the rule state lives there (one udev daemon)."""

    throttle_held: bool = False
    reload_running: bool = False
    reload_again: bool = False

    def _sysfs_read(self, path: str) -> Generator[Any, Any, str | None]:
        r = yield Call("kernel", "hp.sysfs_read", {"path": path}, "hp.sysfs_value")
        return r["value"] if r["rc"] == 0 else None

    def _echo(self, value: str) -> Generator[Any, Any, int]:
        r = yield Call("kernel", "hp.sysfs_write", {"path": REGISTERED, "value": value},
                       "hp.sysfs_result")
        self.udev_log.append([self._current.seq, f"kdumpctl: echo {value} -> {r['rc']}"])
        return r["rc"]

    def rule_hotplug_ready(self) -> Generator[Any, Any, None]:
        """98-kexec.rules.ppc64 (2024): skip the reload when hotplug_ready reads 1."""
        enabled = yield from self._sysfs_read("/sys/kernel/fadump_enabled")
        if enabled is not None and enabled.strip() != "0":
            ready = yield from self._sysfs_read("/sys/kernel/fadump/hotplug_ready")
            if ready is not None and ready.strip() != "0":
                self.udev_log.append([self._current.seq, "udev: hotplug_ready is 1, exit 0"])
                return
        yield from self.rule_reload_throttled()

    def rule_reload_throttled(self) -> Generator[Any, Any, None]:
        """kdump-udev-throttler: one reload per burst of uevents."""
        if self.throttle_held:
            self.udev_log.append([self._current.seq,
                                  "Throttling kdump restart for concurrent udev event"])
            return
        self.throttle_held = True
        yield Step("udev.settle", {}, delay=SETTLE_NS)
        self.throttle_held = False
        if self.reload_running:  # kdumpctl's own flock: run once more after it
            self.reload_again = True
            return
        self.reload_running = True
        while True:
            self.reloads += 1
            rc = yield from self._echo("1")
            if rc != 0:  # no one-write re-registration: stop_fadump, start_fadump
                if (yield from self._echo("0")) == 0:
                    yield from self._echo("1")
            if not self.reload_again:
                break
            self.reload_again = False
        self.reload_running = False

    def on_udev_settle(self, ev: Any) -> None:
        self.resume(ev)
