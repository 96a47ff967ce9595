"""The HTML report (fadumpsim/report.py), checked in a real browser: Debian's chromium,
headless. The DOM it builds must hold the lanes, the failure and the constraint
highlights, the verdict and the story; the screenshot must show the highlight colours.
"""
from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from fadumpsim.api import record
from fadumpsim.cli import cli
from fadumpsim.events.logfile import LogReader
from fadumpsim.replay.constraints import Constraint, ConstraintStrategy
from fadumpsim.scenario import load

from tests.test_explore import protect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed here (apt-get install chromium; "
                             ".ci/run installs it, so CI runs this test)")
ORANGE, RED = (0xE0, 0x7B, 0x00), (0xCC, 0x00, 0x00)


class Dom(HTMLParser):
    """Every element as (tag, attrs) with the text inside it (for the browser's DOM)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self.stack: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        text: list[str] = []
        self.elements.append((tag, dict((k, v or "") for k, v in attrs), text))
        if tag not in ("br", "meta", "line", "path", "rect", "img", "input"):
            self.stack.append(text)

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "meta", "line", "path", "rect", "img", "input"):
            self.stack.pop()

    def handle_data(self, data):
        for t in self.stack:
            t.append(data)

    def find(self, tag=None, **attrs):
        out = []
        for t, a, text in self.elements:
            if tag and t != tag:
                continue
            if all((v in a.get(k.rstrip("_"), "").split()) if k.endswith("_") else
                   a.get(k) == v for k, v in attrs.items()):
                out.append((t, a, "".join(text)))
        return out


def browser_dom(path: Path) -> Dom:
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--dump-dom", path.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    d = Dom()
    d.feed(p.stdout)
    return d


def screenshot_pixels(html: Path, png: Path) -> set[tuple[int, int, int]]:
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1280,2200",
                        f"--screenshot={png}", html.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and png.exists(), p.stderr[-2000:]
    return png_colours(png.read_bytes())


def png_colours(data: bytes) -> set[tuple[int, int, int]]:
    """The RGB colours of a screenshot (Pillow decodes it)."""
    import io
    from PIL import Image
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return {c for _n, c in img.getcolors(maxcolors=1 << 24)}


def udev_failing_log(tmp_path: Path) -> Path:
    log = tmp_path / "udev.fadlog"
    record(load("udev-reload-race"), str(log), strategy=ConstraintStrategy([Constraint(
        ("hotplug", "kernel", "hp.sysfs_write", 1), ("crash", "kernel", "cmd.run", 2))]))
    return log


def test_report_is_self_contained_and_links_events_to_the_kernel_log(tmp_path):
    log = udev_failing_log(tmp_path)
    r = CliRunner().invoke(cli, ["report", str(log)])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "udev.html").read_text()
    assert "<script" not in html and "src=" not in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    d = Dom()
    d.feed(html)
    crash = next(x[0] for x in LogReader(str(log)).records() if x[4] == "cmd.run"
                 and "sysrq" in x[7]["command"])
    link = next(a["href"] for t, a, _ in d.find("a") if any(
        e[1].get("data-seq") == str(crash) for e in d.elements
        if e[0] == "g" and e[1].get("class", "").startswith("event"))
        and a.get("href", "").startswith("#klog-"))
    assert d.find(id=link[1:]), f"{link} has no target"
    ok = tmp_path / "ok.fadlog"
    record(load("udev-reload-race"), str(ok))          # FIFO: the crash comes first, passes
    assert CliRunner().invoke(cli, ["report", str(ok), "--no-minimize"]).exit_code == 0
    p = Dom()
    p.feed((tmp_path / "ok.html").read_text())
    assert p.find(id="verdict")[0][2].startswith("PASS") and not p.find("li", class_="constraint")
    assert not p.find("g", class_="failure") and p.find("g", class_="lane")
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "nope.fadlog")])
    assert r.exit_code == 2 and "nope.fadlog" in r.stderr


@needs_chromium
def test_udev_report_in_a_real_browser(tmp_path):
    log = udev_failing_log(tmp_path)
    out = tmp_path / "r.html"
    assert CliRunner().invoke(cli, ["report", str(log), "-o", str(out)]).exit_code == 0
    d = browser_dom(out)
    lanes = [a["data-actor"] for _t, a, _x in d.find("g", class_="lane")]
    assert {"kernel", "hotplug", "firmware", "capture", "crash", "kdump"} <= set(lanes)
    recs = LogReader(str(log)).records()
    echo0 = next(x[0] for x in recs if x[4] == "hp.sysfs_write" and x[7]["value"] == "0")
    crash = next(x[0] for x in recs if x[4] == "cmd.run" and "sysrq" in x[7]["command"])
    cons = {a["data-seq"] for _t, a, _x in d.find("g", class_="constraint")}
    fail = {a["data-seq"] for _t, a, _x in d.find("g", class_="failure")}
    assert cons == {str(echo0)} and fail == {str(crash)}   # the crash is where it broke
    assert len(d.find("g", class_="constraint-bracket")) == 1
    verdict = d.find(id="verdict")[0][2]
    assert verdict.startswith("FAIL: dump-armed")
    story = [x for _t, _a, x in d.find("li", class_="constraint")]
    assert len(story) == 1 and "echo 0 > /sys/kernel/fadump_registered" in story[0] \
        and "the crash (`echo c > /proc/sysrq-trigger`" in story[0]
    assert d.find("svg", class_="memmap") and len(d.find("g", class_="moment")) >= 5
    colours = screenshot_pixels(out, tmp_path / "r.png")
    assert ORANGE in colours and RED in colours


@needs_chromium
def test_explore_report_groups_with_their_stories_in_a_browser(tmp_path):
    f = tmp_path / "p.toml"
    from tests.test_explore import PROTECT
    f.write_text(PROTECT % ("[]", ""))   # full series, registration || hot-remove
    out = tmp_path / "x.html"
    r = CliRunner().invoke(cli, ["explore", str(f), "--strategy", "exhaustive", "--schedules",
                                 "300", "--out", str(tmp_path / "o"), "--report", str(out), "-q"])
    assert r.exit_code == 1, r.output
    d = browser_dom(out)
    groups = d.find("section", class_="failure-group")
    assert len(groups) == 1 and "reserved-area-intact" in groups[0][2]
    story = [x for _t, _a, x in d.find("li", class_="constraint")]
    assert len(story) == 1 and "lmb_is_removable(LMB 3)" in story[0] \
        and "answer to REGISTER" in story[0]
    assert d.find("g", class_="lane") and d.find("g", class_="constraint-bracket")
    assert "g1-verdict" in {a.get("id") for _t, a, _x in d.find("p")}
