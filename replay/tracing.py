"""Structured logging of a run (structlog): one line per delivery, for people or machines.

    from fadumpsim.replay import tracing
    tracing.configure("json", stream=sys.stderr)       # or "console", or "off"
    sim.run(sc, observers=tracing.observers(run_id="r1"))

* ``off`` (the default): nothing is logged and `delivery_logger` returns None, so
  the scheduler's observer list is not even touched: tracing costs nothing.
* ``console``: structlog's ConsoleRenderer, aligned and readable (colours only when
  the stream is a terminal).
* ``json``: one JSON object per line, keys in a fixed order, for tools (jq, log
  shippers).

Every delivery line carries ``run_id``, ``seq``, ``actor`` (the receiver), ``src``,
``type`` (the event type) and ``time_ns`` (the *virtual* time of the delivery).
The wall clock is never read: there is deliberately no structlog TimeStamper, so a
run's trace is as deterministic as its log (the same run gives the same lines).

`configure` sets structlog's global configuration (it replaces structlog's
default, which would stamp wall-clock times), so ``structlog.get_logger()``
anywhere in fadumpsim follows the chosen mode.

structlog is imported only when logging is turned on (or when it is already
loaded): importing it costs ~90 ms, which the CLI's start-up should not pay while
tracing is off.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, TextIO

__all__ = ["MODES", "configure", "configure_from_env", "mode", "get_logger",
           "delivery_logger", "observers"]

MODES = ("off", "console", "json")
#: Environment variable read by configure_from_env().
ENV_VAR = "FADUMPSIM_LOG"

Observer = Callable[[Any, Any], None]

_mode = "off"
_silenced = False  # structlog has been configured to drop everything


def _drop(_logger: Any, _name: str, _event: dict[str, Any]) -> dict[str, Any]:
    import structlog
    raise structlog.DropEvent


def configure(mode: str = "off", stream: TextIO | None = None, *, level: str = "info") -> None:
    """Choose how fadumpsim logs: "off", "console" (people) or "json" (machines).

    `stream` defaults to sys.stderr (stdout stays free for the CLI's own output);
    `level` is the least severe level written ("debug", "info", ...).
    """
    global _mode, _silenced
    if mode not in MODES:
        raise ValueError(f"unknown log mode {mode!r} (expected one of {', '.join(MODES)})")
    out = sys.stderr if stream is None else stream
    if mode == "off" and "structlog" not in sys.modules:
        _mode = mode  # nothing to silence yet; structlog stays unloaded
        return
    import structlog
    if mode == "off":
        processors: list[Any] = [_drop]
        wrapper = structlog.make_filtering_bound_logger(logging.CRITICAL)
    else:
        wrapper = structlog.make_filtering_bound_logger(level)
        processors = [structlog.processors.add_log_level]
        if mode == "json":
            processors += [structlog.processors.format_exc_info,
                           structlog.processors.JSONRenderer(sort_keys=False)]
        else:
            isatty = getattr(out, "isatty", None)
            colors = bool(isatty and isatty())
            processors.append(structlog.dev.ConsoleRenderer(
                colors=colors, sort_keys=False,
                exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(processors=processors, wrapper_class=wrapper,
                        logger_factory=structlog.WriteLoggerFactory(file=out),
                        context_class=dict, cache_logger_on_first_use=False)
    _mode = mode
    _silenced = mode == "off"


def configure_from_env(default: str = "off", stream: TextIO | None = None) -> str:
    """configure() from $FADUMPSIM_LOG (off, console or json); returns the mode."""
    m = os.environ.get(ENV_VAR, default).strip().lower() or default
    configure(m, stream)
    return m


def mode() -> str:
    """The mode last configured ("off" until configure() says otherwise)."""
    return _mode


def get_logger(name: str = "fadumpsim", **bind: Any) -> Any:
    """A structlog logger (bound to `bind`) that follows the configured mode."""
    import structlog
    if _mode == "off" and not _silenced:
        configure("off")
    log = structlog.get_logger(name)
    return log.bind(**bind) if bind else log


def delivery_logger(run_id: str) -> Observer | None:
    """A scheduler observer logging every delivery; None when logging is off.

    The observer is read-only (design note 4): it reads the delivered event and
    never touches actor state, so it cannot perturb the run.
    """
    if _mode == "off":
        return None
    import structlog
    info = structlog.get_logger("fadumpsim.delivery").bind(run_id=run_id).info

    def log_delivery(_sched: Any, ev: Any) -> None:
        info("deliver", seq=ev.seq, actor=ev.dst, src=ev.src, type=ev.type, time_ns=ev.time)

    return log_delivery


def observers(run_id: str) -> list[Observer]:
    """[delivery_logger(run_id)] when logging is on, [] when off (for sim.run(observers=))."""
    ob = delivery_logger(run_id)
    return [] if ob is None else [ob]
