import textwrap

import pytest

from fadumpsim import scenario, sim
from fadumpsim import api
from fadumpsim.replay import replayer


def run_toml(text: str, **kw):
    sc = scenario.loads(textwrap.dedent(text), "<test>")
    return sim.run(sc, **kw)


@pytest.fixture
def run():
    return run_toml


@pytest.fixture(autouse=True)
def every_recorded_log_replays(monkeypatch):
    """Every log a test records in-process is replayed and verified right after (issue:
    'replay of every log produced by the test suite reproduces it')."""
    original = replayer.record

    def record_and_verify(sc, path, **kw):
        res = original(sc, path, **kw)
        if not res.failure:  # a run that ended in an actor failure replays only its prefix
            again, _lg = api.replay(path)
            assert again.events == res.events, f"{path}: replay gave {again.events} events"
        return res
    monkeypatch.setattr(replayer, "record", record_and_verify)
