"""benchmarks/probe_decode_stages.py: its stages see the same frames as the log reader
(so the per-stage figures it prints are about the real work), and it runs end to end."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from fadumpsim.events.logfile import LogWriter, iter_frames

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("probe_decode_stages",
                                               ROOT / "benchmarks" / "probe_decode_stages.py")
probe = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = probe  # msgspec resolves the Struct's annotations through it
_spec.loader.exec_module(probe)


def _toy_log(tmp_path: Path, n: int) -> tuple[Path, list]:
    import bench_logfile as bl
    recs = bl.toy(n)
    path = tmp_path / "toy.fadlog"
    w = LogWriter(path, bl.HEADER, durable=False)
    for r in recs:
        w.append(r)
    w.close({"events": n})
    return path, recs


def test_walk_and_crcs_match_iter_frames(tmp_path: Path) -> None:
    path, recs = _toy_log(tmp_path, 700)
    frames = [(off, body) for off, kind, body in iter_frames(path) if kind == b"E"]
    buf = path.read_bytes()
    first = probe.first_event(buf)
    starts, bodies, stop = probe.walk(buf, first)
    assert list(zip(starts, bodies)) == frames
    assert buf[stop:stop + 1] == b"X"  # stopped at the end frame, not before
    stored = [int.from_bytes(buf[s + 2:s + 6], "little") for s in starts]
    assert probe.crcs(bodies) == stored


def test_probe_runs_and_reports_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = probe.main(300)
    stages = {"floor", "reader", "walk", "crc_stored", "crc_rebuilt", "unpackb_each", "build",
              "upper_bound"}
    if probe.msgspec is not None:
        stages |= {"msgspec_each", "msgspec_tuple", "msgspec_struct", "reader_msgspec"}
    assert stages == set(res)
    assert all(v > 0 for v in res.values())
    # the bound is a sum of stages, so it is slower than each of them
    assert res["upper_bound"] < min(res["walk"], res["build"])
    assert "upper bound" in capsys.readouterr().out
