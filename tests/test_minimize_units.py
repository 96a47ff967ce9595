"""The minimizer's parts pinned on the toy of tests/test_minimize_causal.py (whose
minimal answer is known): the constraint strategy's holding rule, the located
constraints' seqs and flip verdicts, the deviation story. Fast (toy runs only);
each test fails on a plausible one-line change (`tools/mutation.py --area minimize`).
"""
from __future__ import annotations

import pytest

from fadumpsim.events.envelope import Event
from fadumpsim.replay.constraints import Constraint, ConstraintStrategy, delivery_ids
from fadumpsim.replay.minimize import (Deviation, DeviationStrategy, causal_minimize, constraint_signature,
                                       initial_constraints, story_lines)
from tests.test_minimize_causal import Toy, tag, toy_run

X = ("x", "x|dump=-|expect=-")


def _ev(src: str, n: int, send_order: int) -> Event:
    return Event(src=src, dst="r", type="toy.tag", payload={"tag": src}, chan_seq=n,
                 send_order=send_order)


def test_constraint_strategy_holds_back_b_until_a_then_both_hold():
    a, b = _ev("a", 1, 2), _ev("b", 1, 1)
    st = ConstraintStrategy([Constraint(tag("a"), tag("b"))])
    # FIFO would pick b (sent first); b is held until a is delivered
    assert st.choose([("b", "r"), ("a", "r")], [b, a], 1) == 1
    assert st.choose([("b", "r")], [b], 2) == 0
    assert st.overridden == [] and st.satisfied() and st.unmet() == []
    assert st.delivered == {tag("a"): 1, tag("b"): 2}


def test_a_constraint_of_a_delivery_with_itself_never_holds():
    # "A before A" cannot be met: the strategy overrides it and says so
    a = _ev("a", 1, 1)
    c = Constraint(tag("a"), tag("a"))
    st = ConstraintStrategy([c])
    assert st.choose([("a", "r")], [a], 1) == 0
    assert st.overridden == [1]
    assert not st.holds(c) and not st.satisfied() and st.unmet() == [c]


def test_the_nth_message_of_a_channel_is_named_by_its_type_count():
    # a sends two tags: the 2nd delivery of a->r toy.tag is ("a", "r", "toy.tag", 2)
    _out, recs, _st = toy_run([])
    assert delivery_ids(recs)[-2:] == [tag("a", 1), tag("a", 2)]
    st = ConstraintStrategy([Constraint(tag("a", 2), tag("b"))])
    out = Toy().run(strategy=st)
    assert out.order == "caAb" and st.satisfied()


def test_located_constraints_carry_the_seqs_of_the_minimized_run_and_their_flips():
    strong = [Constraint(tag("a", 2), tag("c")), Constraint(tag("a", 2), tag("b")),
              Constraint(tag("b"), tag("c"))]
    _out, recs, _st = toy_run(strong)
    found, mrecs, mres, _runs = causal_minimize(Toy(), recs, X)
    ids = delivery_ids(mrecs)
    assert [(fc.constraint.before, fc.constraint.after) for fc in found] == [
        (tag("a", 2), tag("b")), (tag("b"), tag("c"))]
    for fc in found:
        assert ids[fc.before_seq - 1] == fc.constraint.before
        assert ids[fc.after_seq - 1] == fc.constraint.after
        assert f"(#{fc.before_seq})" in fc.text and f"(#{fc.after_seq})" in fc.text
    # reversing a2<b while b<c still holds: b before c without x is the other failure y;
    # reversing b<c while a2<b holds: c before b passes. Checked independently by running:
    first, second = found
    o1, _r, _s = toy_run([first.constraint.flipped(), second.constraint])
    o2, _r, _s = toy_run([first.constraint, second.constraint.flipped()])
    assert [v["invariant"] for v in o1.violations] == ["y"] and o2.ok
    assert first.flipped == "fails as y (y|dump=-|expect=-)" and first.necessary
    assert (first.before_what, first.after_what) == ("toy.tag a2", "toy.tag b")
    assert first.text == "r handled toy.tag b from b (#6) after toy.tag a2 from a (#5)"
    assert second.flipped == "passes" and second.necessary
    assert mres.violations[0]["invariant"] == "x"


def test_a_constraint_against_channel_fifo_is_overridden_not_obeyed():
    # a1 < a2 holds by FIFO on one channel; reversed it cannot be forced
    c = Constraint(tag("a", 1), tag("a", 2))
    st = ConstraintStrategy([c.flipped()])
    assert Toy().run(strategy=st).order == "cbaA"
    assert st.overridden and not st.holds(c.flipped()) and st.holds(c)


def test_a_deviation_rule_applies_only_to_the_message_with_its_channel_sequence():
    # rule: deliver a's 2nd message where FIFO wants c's 1st
    c1, a1, a2 = _ev("c", 1, 1), _ev("a", 1, 2), _ev("a", 2, 3)
    st = DeviationStrategy([(("a", "r", 2), ("c", "r", 1))])
    cands = [("c", "r"), ("a", "r")]
    assert st.choose(cands, [c1, a1], 1) == 0        # a's head is its 1st: FIFO stands
    assert st.devs == [] and st.used == [False]
    st2 = DeviationStrategy([(("a", "r", 2), ("c", "r", 1))])
    assert st2.choose(cands, [c1, a2], 1) == 1       # a's head is its 2nd: it goes first
    assert st2.used == [True] and [(d.fwd, d.over) for d in st2.devs] == [
        (("a", "r", 2), ("c", "r", 1))]
    assert st2.choose(cands, [c1, _ev("a", 3, 4)], 2) == 0   # a rule is used once


def test_initial_constraints_are_ordered_by_the_later_delivery():
    strong = [Constraint(tag("a", 2), tag("c")), Constraint(tag("a", 2), tag("b")),
              Constraint(tag("b"), tag("c"))]
    _out, recs, _st = toy_run(strong)   # order a1 a2 b c
    assert initial_constraints(recs) == [Constraint(tag("a", 2), tag("b")),
                                         Constraint(tag("a", 2), tag("c")),
                                         Constraint(tag("b"), tag("c"))]


def test_initial_constraints_pin_each_delivery_after_the_latest_of_every_other_channel():
    _out, recs, _st = toy_run([])   # FIFO: c b a1 a2
    # a2 races c and b (not a1: same channel); a1's pins make a2's redundant but the
    # rule is per delivery: the latest earlier delivery of each other channel into r
    assert initial_constraints(recs) == [
        Constraint(tag("c"), tag("b")), Constraint(tag("c"), tag("a", 1)),
        Constraint(tag("b"), tag("a", 1)), Constraint(tag("c"), tag("a", 2)),
        Constraint(tag("b"), tag("a", 2))]


def test_constraint_signature_of_plain_constraints_and_of_none():
    assert constraint_signature([]) == ""
    assert constraint_signature([Constraint(tag("b"), tag("c")), Constraint(tag("a", 2), tag("b"))]) \
        == "a>r:toy.tag#2<b>r:toy.tag#1;b>r:toy.tag#1<c>r:toy.tag#1"


def _dev(step: int, fwd: tuple, over: tuple, fwd_text: str, over_text: str) -> Deviation:
    return Deviation(step, fwd, over, "t.f", fwd_text, "t.o", over_text)


def test_deviation_json_names_both_messages():
    d = _dev(4, ("a", "r", 2), ("c", "r", 1), "tag a2", "tag c")
    assert d.to_json() == {
        "step": 4,
        "delivered": {"src": "a", "dst": "r", "chan_seq": 2, "type": "t.f", "what": "tag a2"},
        "overtook": {"src": "c", "dst": "r", "chan_seq": 1, "type": "t.o", "what": "tag c"}}
    assert d.line() == "#4 r received tag a2 from a before r received tag c from c"


def test_story_groups_deviations_that_held_back_the_same_message():
    c1 = ("c", "r", 1)
    devs = [_dev(1, ("b", "r", 1), ("x", "r", 1), "tag b", "tag x"),
            _dev(2, ("a", "r", 1), c1, "tag a1", "tag c"),
            _dev(3, ("a", "r", 2), c1, "tag a2", "tag c"),
            _dev(5, ("b", "q", 1), ("y", "q", 1), "tag b", "tag y")]
    assert story_lines(devs) == [
        "#1 r received tag b from b before r received tag x from x",
        "#2..#3: r received tag c from c only after 2 other deliveries went first; the last: "
        "#3 r received tag a2 from a",
        "#5 q received tag b from b before q received tag y from y"]
    assert story_lines([]) == []


def test_deviation_phase_reaches_the_brute_force_minimum_in_fewer_runs_than_brute_force():
    from itertools import combinations

    from fadumpsim.replay.minimize import _Shrinker
    go = lambda d: ("sim", d, "toy.go", 1)  # noqa: E731
    # a failing run with one deviation too many: the go of b and of a both overtake c's
    strong = [Constraint(go("a"), go("c")), Constraint(go("b"), go("c")),
              Constraint(tag("a", 2), tag("b")), Constraint(tag("b"), tag("c"))]
    out, recs, _st = toy_run(strong)
    assert out.order == "aAbc"
    probe = DeviationStrategy(forced=[(r[2], r[3]) for r in recs], describe=Toy().describe)
    Toy().run(strategy=probe)
    rules = [(d.fwd, d.over) for d in probe.devs]
    assert len(rules) == 4
    sh = _Shrinker(Toy(), "x", 5000)
    ok, _s, r0 = sh.test(rules)
    assert ok
    best, bstrat, bres = sh.shrink(rules, r0.events)
    # independent: every subset of the rules, run; the fewest deviations that give x
    bf = _Shrinker(Toy(), "x", 5000)
    fewest = min(len(s.devs) for k in range(len(rules) + 1) for sub in combinations(rules, k)
                 for ok2, s, _r in [bf.test(list(sub))] if ok2)
    assert len(best) == fewest == 3 and len(bstrat.devs) == 3
    assert bres.violations[0]["invariant"] == "x"
    assert sh.runs < 2 ** len(rules)   # cheaper than trying every subset


class _Needs:
    """A stand-in system whose run fails as x exactly when its constraints include
    `needed` (every constraint reported as held): a monotone test for the shrinker."""

    def __init__(self, needed: list[Constraint]) -> None:
        self.needed = set(needed)

    def run(self, *, strategy, sink=None, **_kw):
        from tests.test_minimize_causal import Outcome
        for c in strategy.constraints:
            strategy.delivered[c.before] = c.before[3]
            strategy.delivered[c.after] = c.after[3]
        v = [{"invariant": "x", "message": "", "seq": 1}] \
            if self.needed <= set(strategy.constraints) else []
        return Outcome(1, [], v, "")


def _numbered(i: int) -> Constraint:
    return Constraint(("s", "r", "t", 2 * i + 1), ("s", "r", "t", 2 * i + 2))


def _one_at_a_time(cs: list[Constraint], needed: set[Constraint]) -> tuple[list, int]:
    """Baseline: drop one constraint at a time while the failure stays (runs counted)."""
    best, runs, changed = list(cs), 0, True
    while changed:
        changed = False
        for k in range(len(best)):
            runs += 1
            if needed <= set(best[:k] + best[k + 1:]):
                best, changed = best[:k] + best[k + 1:], True
                break
    return best, runs


def test_constraint_ddmin_finds_the_needed_few_in_fewer_runs_than_one_at_a_time():
    from fadumpsim.replay.minimize import _ConstraintShrinker
    for n, need in ((16, (3, 12)), (32, (5, 6, 30))):
        cs = [_numbered(i) for i in range(n)]
        needed = [_numbered(i) for i in need]
        sh = _ConstraintShrinker(_Needs(needed), X, 10_000)
        assert sh.shrink(cs) == needed
        base, base_runs = _one_at_a_time(cs, set(needed))
        assert base == needed
        # ddmin drops chunks: on a sparse answer it must beat the one-at-a-time baseline
        assert sh.runs < base_runs, (n, need, sh.runs, base_runs)


def _reference_ddmin_runs(cs: list, needed: set) -> tuple[list, int]:
    """Zeller's ddmin, complements only (the variant the shrinkers use), written from the
    paper: granularity n starts at 2; a passing complement becomes the input and n drops
    to max(n - 1, 2); otherwise n doubles up to len; stop at n >= len. Then single
    removals to a fixpoint. Counts runs (the empty set is tried first)."""
    runs = 1
    if needed <= set():
        return [], runs
    best, n = list(cs), 2
    while len(best) >= 2:
        size = max(1, len(best) // n)
        chunks = [best[i:i + size] for i in range(0, len(best), size)]
        for k in range(len(chunks)):
            cand = [c for j, ch in enumerate(chunks) if j != k for c in ch]
            runs += 1
            if needed <= set(cand):
                best, n = cand, max(n - 1, 2)
                break
        else:
            if n >= len(best):
                break
            n = min(len(best), 2 * n)
    best, last = _one_at_a_time(best, needed)
    return best, runs + last


@pytest.mark.parametrize("n, need", [(16, (3, 12)), (32, (5, 6, 30)), (9, (0, 8)),
                                     (24, (1, 2, 3, 20)), (7, (6,))])
def test_constraint_ddmin_runs_exactly_as_many_tests_as_the_reference(n, need):
    from fadumpsim.replay.minimize import _ConstraintShrinker
    cs = [_numbered(i) for i in range(n)]
    needed = [_numbered(i) for i in need]
    sh = _ConstraintShrinker(_Needs(needed), X, 10_000)
    got = sh.shrink(cs)
    ref, ref_runs = _reference_ddmin_runs(cs, set(needed))
    assert got == ref == needed
    assert sh.runs == ref_runs


@pytest.mark.parametrize("n, need", [(16, (3, 12)), (9, (0, 8)), (24, (1, 2, 3, 20)), (7, (6,))])
def test_deviation_ddmin_runs_exactly_as_many_tests_as_the_reference(n, need):
    # the deviation phase's shrinker on a stand-in test: a candidate "fails the same way"
    # exactly when it keeps every needed rule (each rule is one deviation)
    from types import SimpleNamespace as NS

    from fadumpsim.replay.minimize import _Shrinker

    class Stand(_Shrinker):
        def __init__(self, needed):
            self.needed, self.runs, self.max_runs = set(needed), 0, 10_000

        def test(self, cand):
            self.runs += 1
            return (self.needed <= set(cand),
                    NS(devs=[NS(fwd=f, over=o) for f, o in cand]), NS(events=10))

    rules = [((i, "a"), (i, "b")) for i in range(n)]
    needed = [rules[i] for i in need]
    sh = Stand(needed)
    best, _strat, _res = sh.shrink(rules, 10)
    ref, ref_runs = _reference_ddmin_runs(rules, set(needed))
    assert best == ref == needed
    assert sh.runs == ref_runs
