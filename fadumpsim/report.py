"""One self-contained HTML page about a run (`fadumpsim report`) or an exploration
(`fadumpsim explore --report`).

No network, no JavaScript: inline CSS and inline SVG only, so the file opens offline
in any browser and reads the same with scripts disabled. A run's page holds

* the verdict, each violation with the deliveries behind it (fadumpsim/explain.py);
* the minimized story: the few "A before B" constraints the failure needs;
* an SVG sequence diagram, one lane per actor, the failure and the constraints'
  deliveries highlighted, every event linked to the kernel-log lines it printed
  (or to its row in the event table);
* the memory map over time (boot, registration, DLPAR steps, crash, capture);
* the transcript, the kernel log and every event.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

from fadumpsim.memmap import Row, memory_map
from fadumpsim.render import summarize_payload, transcript_lines, verdict_lines

Rec = Sequence[Any]
ROW_H, LANE_W, TOP, LEFT = 20, 132, 46, 96
#: deliveries after which the memory map is drawn (besides boot, crash and the end)
MAP_TYPES = ("rtas.configure_kernel_dump", "dlpar.release_drc", "dlpar.acquire_drc",
             "hp.remove_memory", "hp.add_memory", "hp.offline", "rtas.os_term", "fw.boot")
MAX_DIAGRAM = 1500

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1200px;
color:#1d2330;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccd}
.verdict{font-weight:bold;font-size:1.15em;padding:.4em .7em;border-radius:4px;display:inline-block}
.fail{background:#fde2e2;color:#8b0000}.pass{background:#e0f4e4;color:#14532d}
pre{background:#f6f7fa;border:1px solid #dde;padding:.6em;overflow-x:auto;font-size:.85em}
ol.constraints li{margin:.4em 0;padding:.3em .5em;background:#fff4e0;border-left:4px solid #e07b00}
ul.because li{margin:.2em 0}.seq{font-family:monospace;color:#555}
table{border-collapse:collapse;font-size:.82em}td,th{border:1px solid #dde;padding:2px 6px;text-align:left}
tr:target,div:target{background:#fff3a0}.klog div{font-family:monospace;font-size:.85em;white-space:pre}
.diagram{overflow-x:auto;border:1px solid #dde;background:#fff}
svg text{font-family:system-ui,sans-serif}
.legend span{display:inline-block;padding:0 .5em;margin-right:.5em;border-radius:3px;font-size:.85em}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


# -- the sequence diagram ----------------------------------------------------------------------
def lanes_of(records: Sequence[Rec], scripts: Sequence[str]) -> list[str]:
    seen = {r[2] for r in records} | {r[3] for r in records}
    order = ["sim", *scripts, "kernel", "hotplug", "firmware", "capture"]
    return [n for n in order if n in seen] + sorted(seen - set(order))


def sequence_svg(records: Sequence[Rec], scripts: Sequence[str], *, failure: set[int],
                 constraints: Sequence[tuple[int, int, int]] = (),
                 links: dict[int, str] | None = None, id_prefix: str = "") -> str:
    """SVG: one lane per actor, one arrow per delivery (y = seq). `failure` seqs are red;
    each constraint (n, before seq, after seq) marks both deliveries orange and joins
    them with a dashed bracket labelled n."""
    recs = list(records)[:MAX_DIAGRAM]
    lanes = lanes_of(recs, scripts)
    x = {n: LEFT + LANE_W // 2 + i * LANE_W for i, n in enumerate(lanes)}
    width = LEFT + LANE_W * len(lanes) + 160
    height = TOP + ROW_H * (len(recs) + 1)
    marked = {s for _n, a, b in constraints for s in (a, b)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="seqdiagram" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="sequence diagram">',
           '<defs><marker id="ah" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" refX="7" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#444"/></marker>'
           '<marker id="ahr" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
           '<path d="M0,0 L8,4 L0,8 z" fill="#c00"/></marker>'
           '<marker id="aho" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
           '<path d="M0,0 L8,4 L0,8 z" fill="#e07b00"/></marker></defs>']
    for n in lanes:
        out.append(f'<g class="lane" data-actor="{_e(n)}"><text x="{x[n]}" y="20" '
                   f'text-anchor="middle" font-weight="bold" font-size="13">{_e(n)}</text>'
                   f'<line x1="{x[n]}" y1="28" x2="{x[n]}" y2="{height - 6}" stroke="#99a" '
                   f'stroke-dasharray="3,3"/></g>')
    for r in recs:
        seq, src, dst, typ = r[0], r[2], r[3], r[4]
        y = TOP + ROW_H * (seq - 1) + ROW_H // 2
        cls, col, mk = "event", "#444", "ah"
        if seq in failure:
            cls, col, mk = "event failure", "#c00", "ahr"
        elif seq in marked:
            cls, col, mk = "event constraint", "#e07b00", "aho"
        label = f"#{seq} {typ} {summarize_payload(typ, r[7], 34)}"
        href = (links or {}).get(seq, f"#{id_prefix}ev-{seq}")
        x1, x2 = x.get(src, LEFT), x.get(dst, LEFT)
        sw = 2.5 if cls != "event" else 1.2
        out.append(f'<a href="{_e(href)}"><g class="{cls}" data-seq="{seq}">'
                   f'<title>{_e(label)} ({_e(src)} -&gt; {_e(dst)})</title>')
        if x1 == x2:
            out.append(f'<path d="M{x1},{y - 6} h24 v10 h-22" fill="none" stroke="{col}" '
                       f'stroke-width="{sw}" marker-end="url(#{mk})"/>')
            tx = x1 + 28
        else:
            out.append(f'<line x1="{x1}" y1="{y}" x2="{x2 + (-4 if x2 > x1 else 4)}" y2="{y}" '
                       f'stroke="{col}" stroke-width="{sw}" marker-end="url(#{mk})"/>')
            tx = min(x1, x2) + 6
        weight = ' font-weight="bold"' if cls != "event" else ""
        out.append(f'<text x="{tx}" y="{y - 3}" font-size="10" fill="{col}"{weight}>'
                   f'{_e(label)}</text></g></a>')
        out.append(f'<text x="6" y="{y + 4}" font-size="10" fill="#889">#{seq}</text>')
    for n, a, b in constraints:      # brackets in the left margin, beside the seq numbers
        ya = TOP + ROW_H * (a - 1) + ROW_H // 2
        yb = TOP + ROW_H * (b - 1) + ROW_H // 2
        xx = 44 + 12 * (n - 1)
        out.append(f'<g class="constraint-bracket" data-constraint="{n}"><title>constraint {n}: '
                   f'#{a} before #{b}</title><path d="M{LEFT - 8},{ya} H{xx} V{yb} '
                   f'H{LEFT - 8}" fill="none" stroke="#e07b00" stroke-width="2" '
                   f'stroke-dasharray="5,3" marker-end="url(#aho)"/><text x="{xx - 11}" '
                   f'y="{(ya + yb) // 2 + 4}" font-size="12" font-weight="bold" '
                   f'fill="#e07b00">{n}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


# -- the memory map over time -------------------------------------------------------------------
def map_moments(records: Sequence[Rec]) -> list[int]:
    """Seqs after which to draw the map: boot, registration, DLPAR steps, crash, capture."""
    want: list[int] = []
    for r in records:
        if r[4] in MAP_TYPES or (r[4] == "rtas.return" and r[3] == "kernel"):
            want.append(r[0])
    if records:
        want.append(records[-1][0])
    out = sorted(set(want))
    if len(out) > 18:
        step = len(out) / 17
        out = sorted({out[int(i * step)] for i in range(17)} | {out[-1]})
    return out


def _color(row: Row) -> str:
    if not row.assigned:
        return "#e4e4e8"
    if not row.present:
        return "#f6c6c6"
    return "#9fd8a8" if row.zone == "Movable" else "#a9c8ec"


def address_scale(moments: Sequence[tuple[int, str, list[Row]]], width: float
                  ) -> Any:
    """Address -> x, piecewise linear between every boundary any moment has, each piece
    at least 1/50 of the bar: a 576MB fadump area stays visible next to 8GB of RAM."""
    cuts = sorted({c for _s, _l, rows in moments for r in rows for c in (r.start, r.end)})
    if len(cuts) < 2:
        return lambda a: 0.0, cuts
    total = cuts[-1] - cuts[0]
    weights = [max(b - a, total / 50) for a, b in zip(cuts, cuts[1:])]
    scale = width / sum(weights)
    xs = [0.0]
    for w in weights:
        xs.append(xs[-1] + w * scale)

    def f(addr: int) -> float:
        import bisect
        i = min(max(bisect.bisect_right(cuts, addr) - 1, 0), len(cuts) - 2)
        a, b = cuts[i], cuts[i + 1]
        return xs[i] + (xs[i + 1] - xs[i]) * (addr - a) / (b - a)
    return f, cuts


def memory_svg(moments: Sequence[tuple[int, str, list[Row]]]) -> str:
    """One bar per moment, address left to right (boundaries labelled in hex below);
    reserved, fadump area and registration overlaid."""
    bar_w, bar_x, bar_h, gap = 760, 330, 18, 10
    xof, cuts = address_scale(moments, bar_w)
    h = 30 + (bar_h + gap) * len(moments) + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="memmap" width="{bar_x + bar_w + 40}" '
           f'height="{h}" role="img" aria-label="memory map over time">']
    ybase = 20 + (bar_h + gap) * len(moments)
    last_x = -99.0
    for c in cuts:
        cx = bar_x + xof(c)
        out.append(f'<line x1="{cx:.1f}" y1="14" x2="{cx:.1f}" y2="{ybase}" stroke="#ccd" '
                   f'stroke-width="0.5"/>')
        if cx - last_x >= 11:
            out.append(f'<text transform="translate({cx + 3:.1f},{ybase + 4}) rotate(60)" '
                       f'font-size="9" fill="#556">{c:#x}</text>')
            last_x = cx
    for i, (seq, label, rows) in enumerate(moments):
        y = 20 + i * (bar_h + gap)
        out.append(f'<g class="moment" data-seq="{seq}"><text x="4" y="{y + 13}" font-size="11">'
                   f'{_e(label[:60])}</text>')
        for r in rows:
            x0 = bar_x + xof(r.start)
            w = max(1.0, xof(r.end) - xof(r.start))
            tip = (f"{r.lmbs()} {r.start:#x}-{r.end - 1:#x}: "
                   f"{'assigned' if r.assigned else 'not assigned'}, "
                   f"{'present' if r.present else 'absent'}, zone {r.zone}, "
                   f"memblock {r.reserved or '-'}, {', '.join(r.areas) or '-'}")
            out.append(f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                       f'fill="{_color(r)}"><title>{_e(tip)}</title></rect>')
            if r.reserved:
                out.append(f'<rect x="{x0:.1f}" y="{y + bar_h - 5}" width="{w:.1f}" height="5" '
                           f'fill="#555"/>')
            if "registered" in r.areas:
                out.append(f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="4" fill="#c00"/>')
            elif "fadump area" in r.areas:
                out.append(f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="4" '
                           f'fill="#e07b00"/>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


MAP_LEGEND = ('<p class="legend"><span style="background:#a9c8ec">ZONE_NORMAL</span>'
              '<span style="background:#9fd8a8">ZONE_MOVABLE</span>'
              '<span style="background:#f6c6c6">assigned, not present</span>'
              '<span style="background:#e4e4e8">not assigned</span>'
              '<span style="border-bottom:4px solid #555">memblock reserved</span>'
              '<span style="border-top:4px solid #e07b00">fadump area</span>'
              '<span style="border-top:4px solid #c00">covered by the registration</span></p>')


# -- gathering a run ------------------------------------------------------------------------------
def gather(path: str, *, minimize: bool = True) -> dict[str, Any]:
    """Replay the log once (snapshots at the map moments), explain, and minimize."""
    from fadumpsim.api import replay
    from fadumpsim.render import explained_violations
    from fadumpsim.replay.explore import failure_of
    from fadumpsim.replay.minimize import causal_minimize
    from fadumpsim.events.logfile import LogReader
    records = LogReader(path).records()
    moments = set(map_moments(records))
    snaps: dict[int, dict[str, Any]] = {}

    def observe(sched: Any, ev: Any) -> None:
        if ev.seq in moments:
            snaps[ev.seq] = {n: a.snapshot() for n, a in sched.actors.items()}

    res, lg = replay(path, keep_sched=True, observers=[observe])
    klog = sorted(res.sched.actors["kernel"].log + res.sched.actors["capture"].log,
                  key=lambda x: x[0])
    lmb = lg.scenario.machine.lmb_size
    from fadumpsim.render import describe
    maps = [(s, f"#{s} {records[s - 1][4]} {summarize_payload(records[s - 1][4], records[s - 1][7], 30)}",
             memory_map(snaps[s], lmb)) for s in sorted(snaps)]
    constraints: list[Any] = []
    crecs = records
    f = failure_of(res)
    if f is not None and minimize:
        found, mrecs, _mres, _runs = causal_minimize(lg.system, records, (f[0], f[1]),
                                                     max_runs=400)
        # the constraints hold in this run too (they come from its races, A only moved
        # earlier): tell them with this run's seqs, the ones the diagram shows
        from fadumpsim.explain import constraint_text
        from fadumpsim.replay.constraints import delivery_ids
        pos = {d: i + 1 for i, d in enumerate(delivery_ids(records))}
        for c in found:
            a, b = pos.get(c.constraint.before), pos.get(c.constraint.after)
            if a and b and a < b:
                c.before_seq, c.after_seq, c.text = a, b, constraint_text(records, a, b)
            else:
                c.text = constraint_text(mrecs, c.before_seq, c.after_seq) + " (minimized run)"
        constraints, crecs = found, mrecs
    return {"path": path, "result": res, "records": records, "klog": klog, "maps": maps,
            "violations": explained_violations(res, records), "constraints": constraints,
            "constraint_records": crecs, "failure": f, "describe": describe,
            "scripts": [s.name for s in lg.scenario.scripts]}


def _constraint_seqs(g: dict[str, Any]) -> list[tuple[int, int, int]]:
    """Constraint deliveries as seqs of the *shown* run (the log's own records)."""
    from fadumpsim.replay.constraints import delivery_ids
    pos = {d: i + 1 for i, d in enumerate(delivery_ids(g["records"]))}
    out = []
    for n, c in enumerate(g["constraints"], 1):
        a, b = pos.get(c.constraint.before), pos.get(c.constraint.after)
        if a and b:
            out.append((n, a, b))
    return out


# -- pages ----------------------------------------------------------------------------------------
def run_section(g: dict[str, Any], id_prefix: str = "", heading: int = 2) -> str:
    res, recs = g["result"], g["records"]
    h = f"h{heading}"
    ok = res.ok
    failure = {v["seq"] for v in g["violations"]}
    cseqs = _constraint_seqs(g)
    klinks: dict[int, str] = {}
    for i, (s, _t, _line) in enumerate(g["klog"]):
        klinks.setdefault(s, f"#{id_prefix}klog-{i + 1}")
    parts = [f'<p class="verdict {"pass" if ok else "fail"}" id="{id_prefix}verdict">'
             f'{"PASS" if ok else "FAIL"}: {_e(g["failure"][0] if g["failure"] else "ok")}'
             f'{" - " + _e(g["failure"][5]) if g["failure"] else ""}</p>']
    parts.append(f"<{h}>Verdict</{h}><pre>{_e(chr(10).join(verdict_lines(res, recs)))}</pre>")
    if g["violations"]:
        parts.append(f"<{h}>Why</{h}>")
        for v in g["violations"]:
            parts.append(f'<p><b>{_e(v["invariant"])}</b> (event <a href="#{id_prefix}ev-'
                         f'{v["seq"]}">#{v["seq"]}</a>): {_e(v["message"])}</p><ul class="because">')
            for b in v.get("because", []):
                parts.append(f'<li><a class="seq" href="#{id_prefix}ev-{b["seq"]}">#{b["seq"]}</a>'
                             f' {_e(b["text"])}</li>')
            parts.append("</ul>")
    if g["constraints"]:
        parts.append(f"<{h}>Minimized story: the orderings the failure needs</{h}>"
                     "<p>FIFO order under these constraints fails the same way; reversing any "
                     "one of them (checked by running) makes the failure go away. Seqs are "
                     "this run's; the diagram marks the same deliveries.</p><ol class=\"constraints\" id=\"" + id_prefix + "constraints\">")
        for c in g["constraints"]:
            parts.append(f'<li class="constraint">{_e(c.text)}'
                         + ("" if c.necessary else f" <i>(reversed alone: {_e(c.flipped)})</i>")
                         + "</li>")
        parts.append("</ol>")
    parts.append(f"<{h}>Sequence diagram</{h}><p>One lane per actor; "
                 '<b style="color:#c00">red</b>: where an invariant broke; '
                 '<b style="color:#e07b00">orange</b>: the deliveries of the minimized '
                 "constraints (numbered brackets). Every arrow links to the kernel-log lines "
                 "it printed, else to its row in the event table.</p>")
    if len(recs) > MAX_DIAGRAM:
        parts.append(f"<p>(first {MAX_DIAGRAM} of {len(recs)} events)</p>")
    parts.append('<div class="diagram">' + sequence_svg(
        recs, g["scripts"], failure=failure, constraints=cseqs, links=klinks,
        id_prefix=id_prefix) + "</div>")
    parts.append(f"<{h}>Memory map over time</{h}>" + MAP_LEGEND + '<div class="diagram">'
                 + memory_svg(g["maps"]) + "</div>")
    parts.append(f"<{h}>Transcript</{h}><pre>{_e(chr(10).join(transcript_lines(res)))}</pre>")
    parts.append(f'<{h}>Kernel log</{h}><div class="klog">')
    for i, (s, t, line) in enumerate(g["klog"]):
        parts.append(f'<div id="{id_prefix}klog-{i + 1}"><a href="#{id_prefix}ev-{s}">'
                     f'#{s}</a> [{t / 1e9:12.6f}] {_e(line)}</div>')
    parts.append(f"</div><{h}>Events</{h}><table><tr><th>#</th><th>time</th><th>from</th>"
                 "<th>to</th><th>type</th><th>what</th><th>cause</th></tr>")
    for r in recs:
        parts.append(f'<tr id="{id_prefix}ev-{r[0]}"><td>{r[0]}</td><td>{r[1] / 1e9:.6f}</td>'
                     f"<td>{_e(r[2])}</td><td>{_e(r[3])}</td><td>{_e(r[4])}</td>"
                     f"<td>{_e(summarize_payload(r[4], r[7], 70))}</td><td>{r[5] or ''}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n{body}\n</body></html>\n")


def run_report(path: str, *, minimize: bool = True) -> str:
    """The HTML page of the run in the log at `path`."""
    g = gather(path, minimize=minimize)
    res = g["result"]
    sub = (f"<p>{_e(path)}: scenario <b>{_e(res.scenario.name)}</b>, {res.events} events, "
           f"seed {res.seed}</p>")
    return page(f"fadumpsim report: {res.scenario.name}", sub + run_section(g))


def explore_report(result: Any) -> str:
    """The HTML page of an exploration: the summary, then each failure group with its
    minimized story and sequence diagram."""
    body = [f"<pre>{_e(chr(10).join(result.summary_lines()))}</pre>"]
    if not result.failures:
        body.append('<p class="verdict pass">no failure found</p>')
    for i, f in enumerate(result.failures, 1):
        body.append(f'<section class="failure-group" id="group-{i}"><h2>Failure group {i}: '
                    f'{_e(f.invariant)} ({f.count}x, first at schedule {f.first_schedule})</h2>'
                    f"<p>signature <code>{_e(f.signature)}</code>; log {_e(f.log)}</p>")
        if f.log:
            body.append(run_section(gather(f.log), id_prefix=f"g{i}-", heading=3))
        body.append("</section>")
    return page(f"fadumpsim explore report: {result.scenario}", "\n".join(body))
