"""PageMap against a page-by-page model: splits, merges and base offsets."""
from hypothesis import given, settings, strategies as st

from fadumpsim.actors.pagemap import PageMap

PS = 4


def model_of(pm: PageMap, npages: int):
    out = [None] * npages
    for s, e, k, t, b in pm.all():
        for a in range(s, e, PS):
            out[a // PS] = (k, t, b + (a - s) // PS if t else 0)
    return out


ops = st.lists(st.tuples(st.sampled_from(["assign", "remove"]), st.integers(0, 40),
                         st.integers(1, 12), st.sampled_from(["free", "user", "kernel"]),
                         st.sampled_from(["", "a", "b"]), st.integers(0, 5)), max_size=30)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(ops)
def test_matches_per_page_model(seq):
    pm = PageMap(PS)
    model = [None] * 64
    for op, start, n, k, t, base in seq:
        s, e = start * PS, (start + n) * PS
        if op == "assign":
            pm.assign(s, e, k, t, base)
            for i in range(start, start + n):
                model[i] = (k, t, base + i - start if t else 0)
        else:
            pm.remove(s, e)
            for i in range(start, start + n):
                model[i] = None
    assert model_of(pm, 64) == model
    # extents are sorted, disjoint and maximal (no two mergeable neighbours)
    ext = list(pm.all())
    for (s1, e1, k1, t1, b1), (s2, e2, k2, t2, b2) in zip(ext, ext[1:]):
        assert e1 <= s2
        if e1 == s2 and k1 == k2 and t1 == t2:
            assert t1 and b1 + (e1 - s1) // PS != b2


def test_pieces_clip_and_rebase():
    pm = PageMap(PS)
    pm.assign(0, 40, "user", "u", 100)
    assert list(pm.pieces(8, 16)) == [(8, 16, "user", "u", 102)]
    assert list(pm.pieces_reversed(0, 40)) == [(0, 40, "user", "u", 100)]
    pm.assign(12, 20, "free")
    assert [p[:2] for p in pm.all()] == [(0, 12), (12, 20), (20, 40)]
    assert list(pm.all())[2][4] == 105
    assert pm.bytes_by_class() == {"user": 32, "free": 8}


def test_large_partition_is_cheap():
    pm = PageMap(65536)
    pm.assign(0, 64 << 40, "free")
    for i in range(100):
        pm.assign(i << 30, (i << 30) + (1 << 29), "user", f"u{i}", 0)
    assert len(pm) == 200  # 100 allocations and the 100 free gaps after them
    assert pm.covered(0, 64 << 40) == 64 << 40
