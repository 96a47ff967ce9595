"""A scenario script: a shell session that sends one command at a time to its actor.

Scripts are event sources (design note 3): the next command is sent only when the
previous result arrives, and a script with `after` waits for `script.done` from
each script it names. A script starts when its actor is up (`script.start`).
"""
from __future__ import annotations

from typing import Any

from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import SimActor


class Script(SimActor):
    def __init__(self, name: str, actor: str, commands: list[str], after: list[str],
                 dependents: list[str]) -> None:
        super().__init__(name)
        self.actor = actor
        self.commands = list(commands)
        self.waiting = list(after)
        self.dependents = list(dependents)
        self.started = False
        self.next = 0
        self.results: list[dict[str, Any]] = []
        self.finished = False

    def on_script_start(self, ev: Event) -> None:
        if not self.started:
            self.started = True
            self._maybe_begin()

    def on_script_done(self, ev: Event) -> None:
        name = ev.payload["script"]
        if name in self.waiting:
            self.waiting.remove(name)
        self._maybe_begin()

    def _maybe_begin(self) -> None:
        if self.started and not self.waiting and self.next == 0 and not self.finished:
            self._send_next()

    def _send_next(self) -> None:
        if self.next >= len(self.commands):
            self.finished = True
            for d in self.dependents:
                self.send(d, "script.done", {"script": self.name})
            return
        cmd = self.commands[self.next]
        self.results.append({"command": cmd, "stdout": "", "stderr": "", "exit": None,
                             "sent": self._current.seq if self._current else 0, "done": 0})
        self.next += 1
        self.send(self.actor, "cmd.run", {"index": self.next - 1, "command": cmd})

    def on_cmd_result(self, ev: Event) -> None:
        p = ev.payload
        r = self.results[p["index"]]
        r.update(stdout=p["stdout"], stderr=p["stderr"], exit=p["exit"], done=ev.seq)
        self._send_next()

    def snapshot(self) -> dict[str, Any]:
        return {"actor": self.actor, "next": self.next, "waiting_for": list(self.waiting),
                "started": self.started, "finished": self.finished,
                "results": [{k: v for k, v in r.items()} for r in self.results]}
