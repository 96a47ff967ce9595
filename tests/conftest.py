import textwrap

import pytest

from fadumpsim import scenario, sim


def run_toml(text: str, **kw):
    sc = scenario.loads(textwrap.dedent(text), "<test>")
    return sim.run(sc, **kw)


@pytest.fixture
def run():
    return run_toml
