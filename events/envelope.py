"""The envelope every delivered event travels in.

An `Event` is immutable once delivered; its `payload` holds only msgpack-native
values (int, str, bytes, bool, None, list, dict with str keys) so that the log
round-trips it unchanged. Tuples are not allowed: msgpack would turn them into lists
and replay would see a different payload.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Field order of an event record in the log (see docs/log-format.md).
RECORD_FIELDS = ("seq", "time", "src", "dst", "type", "cause", "chan_seq", "payload")


@dataclass(slots=True)
class Event:
    """One message between two endpoints (actor or script).

    `seq` and `time` are assigned at delivery; `cause` is the seq of the delivery
    during which the event was sent (0 for events injected before the run starts);
    `chan_seq` numbers events on the (src, dst) channel from 1, and `due` is the
    virtual time before which a timer must not fire (0 for ordinary messages).
    """

    src: str
    dst: str
    type: str
    payload: dict[str, Any]
    cause: int = 0
    chan_seq: int = 0
    due: int = 0
    seq: int = 0
    time: int = 0
    send_order: int = 0  # runtime bookkeeping for FIFO; never logged

    def record(self) -> list[Any]:
        """The log record of this delivered event, in RECORD_FIELDS order."""
        return [self.seq, self.time, self.src, self.dst, self.type, self.cause,
                self.chan_seq, self.payload]

    def signature(self) -> list[Any]:
        """What replay compares: everything the sender decided (not seq/time)."""
        return [self.src, self.dst, self.type, self.cause, self.chan_seq, self.payload]

    @classmethod
    def from_record(cls, rec: list[Any]) -> "Event":
        seq, time, src, dst, typ, cause, chan_seq, payload = rec
        return cls(src=src, dst=dst, type=typ, payload=payload, cause=cause,
                   chan_seq=chan_seq, seq=seq, time=time)

    def short(self) -> str:
        return f"#{self.seq} {self.src}->{self.dst} {self.type}"
