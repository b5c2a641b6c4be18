"""Visual rewards against an independent reference written here from the definitions (K2.5 report, as
stated in :mod:`swarmgym.judges.visual`), in plain Python: no numpy, scipy, shapely or rapidfuzz, and no
call into the code under test.

- box IoU = |A ∩ B| / |A ∪ B| from corner coordinates;
- F1 over matched items: the true-positive mass is the best total similarity over one-to-one matchings
  (brute force over every injective assignment), precision = tp / #predicted (malformed items included),
  recall = tp / #gold;
- point similarity exp(−d² / 2σ²);
- polygon raster: pixel (row y, col x) is in when its centre (x+.5, y+.5) is inside or on the boundary
  (crossing-number test plus an on-segment test);
- exact polygon IoU: Sutherland–Hodgman clipping of convex polygons and the shoelace formula;
- OCR: 1 − Levenshtein(pred, gold) / max(len) after NFC and whitespace collapsing (dynamic programming).
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from swarmgym.judges.visual import (
    box_f1,
    count_reward,
    ocr_score,
    parse_count,
    point_f1,
    polygon_iou,
    polygon_mask,
)

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------ reference code

def ref_box_iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, ax2, ay2 = min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3])
    bx1, by1, bx2, by2 = min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def ref_best_matching(sim: list[list[float]]) -> float:
    """Largest total similarity of a one-to-one matching (every injective assignment tried)."""
    n_p = len(sim)
    n_g = len(sim[0]) if sim else 0
    best = 0.0
    if n_p >= n_g:
        for rows in itertools.permutations(range(n_p), n_g):
            best = max(best, sum(sim[r][c] for c, r in enumerate(rows)))
    else:
        for cols in itertools.permutations(range(n_g), n_p):
            best = max(best, sum(sim[r][c] for r, c in enumerate(cols)))
    return best


def ref_f1(tp: float, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 and n_gold == 0:
        return 1.0
    if n_pred == 0 or n_gold == 0 or tp <= 0:
        return 0.0
    p, r = tp / n_pred, tp / n_gold
    return 2 * p * r / (p + r)


def ref_on_segment(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> bool:
    cross = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])
    if abs(cross) > 1e-9:
        return False
    return min(a[0], b[0]) - 1e-9 <= px <= max(a[0], b[0]) + 1e-9 and min(a[1], b[1]) - 1e-9 <= py <= max(a[1], b[1]) + 1e-9


def ref_inside_closed(px: float, py: float, poly: list[tuple[float, float]]) -> bool:
    n = len(poly)
    for i in range(n):
        if ref_on_segment(px, py, poly[i], poly[(i + 1) % n]):
            return True
    inside = False
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        if (y1 > py) != (y2 > py):
            xc = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            if px < xc:
                inside = not inside
    return inside


def ref_mask(poly: list[tuple[float, float]], h: int, w: int) -> list[list[bool]]:
    return [[ref_inside_closed(x + 0.5, y + 0.5, poly) for x in range(w)] for y in range(h)]


def ref_mask_iou(a: list[list[bool]], b: list[list[bool]]) -> float:
    inter = sum(p and q for ra, rb in zip(a, b) for p, q in zip(ra, rb))
    union = sum(p or q for ra, rb in zip(a, b) for p, q in zip(ra, rb))
    return 1.0 if union == 0 else inter / union


def ref_area(poly: list[tuple[float, float]]) -> float:
    n = len(poly)
    return abs(sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n))) / 2


def ref_convex_hull(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = sorted(set(pts))
    if len(pts) < 3:
        return pts

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]  # counter-clockwise


def ref_clip(subject: list[tuple[float, float]], clip: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sutherland–Hodgman: ``subject`` ∩ convex counter-clockwise ``clip``."""
    out = list(subject)
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        side = lambda p: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])  # noqa: E731
        inp, out = out, []
        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        if not out:
            return []
    return out


def ref_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ref_ocr(pred: str, gold: str) -> float:
    p = " ".join(unicodedata.normalize("NFC", pred).split())
    g = " ".join(unicodedata.normalize("NFC", gold).split())
    if not p and not g:
        return 1.0
    return 1.0 - ref_levenshtein(p, g) / max(len(p), len(g))


# ------------------------------------------------------------------------------------ strategies

coord = st.integers(min_value=0, max_value=60).map(float)


@st.composite
def a_box(draw: st.DrawFn) -> list[float]:
    x, y = draw(coord), draw(coord)
    return [x, y, x + draw(st.integers(1, 30)), y + draw(st.integers(1, 30))]


half = st.integers(min_value=0, max_value=40).map(lambda v: v / 2)  # half-pixel grid: edges hit pixel centres


@st.composite
def convex_polygon(draw: st.DrawFn) -> list[tuple[float, float]]:
    pts = draw(st.lists(st.tuples(half, half), min_size=3, max_size=7))
    hull = ref_convex_hull(pts)
    if len(hull) < 3 or ref_area(hull) < 0.5:
        hull = [(1.0, 1.0), (9.5, 1.0), (9.5, 6.5)]
    rot = draw(st.integers(0, len(hull) - 1))
    return hull[rot:] + hull[:rot]


# ------------------------------------------------------------------------------------ boxes and points

@PROPS
@given(st.lists(a_box(), max_size=4), st.lists(a_box(), min_size=1, max_size=4),
       st.integers(0, 2), st.sampled_from([0.0, 0.3, 0.7]))
def test_box_f1_matches_reference(pred: list[list[float]], gold: list[list[float]], junk: int, min_iou: float) -> None:
    items: list[object] = [*pred, *(["junk"] * junk)]
    random.Random(len(pred)).shuffle(items)
    sim = [[(v if (v := ref_box_iou(p, g)) >= min_iou else 0.0) for g in gold] for p in pred]
    expect = ref_f1(ref_best_matching(sim) if pred else 0.0, len(items), len(gold))
    assert box_f1(items, gold, min_iou=min_iou) == pytest.approx(expect, abs=1e-9)


@PROPS
@given(st.lists(st.tuples(coord, coord), max_size=4), st.lists(st.tuples(coord, coord), min_size=1, max_size=4),
       st.sampled_from([2.0, 10.0, 25.0]))
def test_point_f1_matches_reference(pred: list[tuple[float, float]], gold: list[tuple[float, float]],
                                    sigma: float) -> None:
    sim = [[math.exp(-((p[0] - g[0]) ** 2 + (p[1] - g[1]) ** 2) / (2 * sigma**2)) for g in gold] for p in pred]
    expect = ref_f1(ref_best_matching(sim) if pred else 0.0, len(pred), len(gold))
    assert point_f1([list(p) for p in pred], [list(g) for g in gold], sigma=sigma) == pytest.approx(expect, abs=1e-9)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_box(), min_size=1, max_size=2), st.integers(1001, 2500), st.integers(0, 10**6))
def test_box_spam_beyond_a_thousand_counts_every_false_positive(gold: list[list[float]], n: int, seed: int) -> None:
    rnd = random.Random(seed)
    spam = [[float(x), float(y), float(x + rnd.randint(1, 20)), float(y + rnd.randint(1, 20))]
            for x, y in ((rnd.randint(0, 80), rnd.randint(0, 80)) for _ in range(n))]
    pred = spam + [list(g) for g in gold]  # the right answers come last, after > 1,000 spam boxes
    rnd.shuffle(pred)
    # best matching for 1 or 2 gold boxes over many predictions, without enumerating pairs
    s0 = [ref_box_iou(p, gold[0]) for p in pred]
    if len(gold) == 1:
        tp = max(s0)
    else:
        s1 = [ref_box_iou(p, gold[1]) for p in pred]
        order = sorted(range(len(pred)), key=lambda j: -s1[j])[:2]
        tp = max(s0[i] + max(s1[j] for j in order if j != i) for i in range(len(pred)))
    assert box_f1(pred, gold) == pytest.approx(ref_f1(tp, len(pred), len(gold)), abs=1e-9)


def test_box_formats_models_write() -> None:
    gold = [[0, 0, 10, 10], [20, 20, 40, 40]]
    qwen = '```json\n[{"bbox_2d": [20, 20, 40, 40], "label": "dog"}, {"bbox_2d": [0, 0, 10, 10], "label": "cat"}]\n```'
    assert box_f1(qwen, gold) == 1.0
    assert box_f1({"boxes": [[0, 0, 10, 10], [20, 20, 40, 40]], "labels": ["cat", "dog"]}, gold) == 1.0
    assert box_f1('{"boxes": [[0, 0, 10, 10]], "labels": ["cat"]}', gold) == pytest.approx(ref_f1(1.0, 1, 2))
    assert box_f1({"bbox_2d": [0, 0, 10, 10], "label": "cat"}, [[0, 0, 10, 10]]) == 1.0  # one object, bare
    assert point_f1('[{"point_2d": [3, 4], "label": "x"}]', [[3, 4]]) == 1.0
    assert point_f1({"points": [[3, 4]], "labels": ["x"]}, [[3, 4]]) == 1.0


# ------------------------------------------------------------------------------------ polygons

@PROPS
@given(convex_polygon(), convex_polygon())
def test_polygon_raster_matches_reference(pred: list[tuple[float, float]], gold: list[tuple[float, float]]) -> None:
    h = w = 22
    expect = ref_mask_iou(ref_mask(pred, h, w), ref_mask(gold, h, w))
    got_mask = polygon_mask([list(p) for p in pred], h, w)
    assert got_mask.tolist() == ref_mask(pred, h, w)
    assert polygon_iou([list(p) for p in pred], [list(g) for g in gold], height=h, width=w) == pytest.approx(expect)


@PROPS
@given(convex_polygon(), convex_polygon(), st.integers(1, 6))
def test_polygon_exact_iou_without_size_matches_reference(pred: list[tuple[float, float]],
                                                          gold: list[tuple[float, float]], scale: int) -> None:
    pred = [(x * scale, y * scale) for x, y in pred]  # predictions far larger than the gold region too
    inter_poly = ref_clip(pred, gold)
    inter = ref_area(inter_poly) if len(inter_poly) >= 3 else 0.0
    expect = inter / (ref_area(pred) + ref_area(gold) - inter)
    assert polygon_iou([list(p) for p in pred], [list(g) for g in gold]) == pytest.approx(expect, abs=1e-9)


def test_polygon_overshoot_scores_its_true_iou() -> None:
    gold = [[0, 0], [10, 0], [10, 10], [0, 10]]
    over = [[0, 0], [20, 0], [20, 20], [0, 20]]  # 4x the gold area, containing it: IoU 0.25
    assert polygon_iou(over, gold) == pytest.approx(0.25)
    assert polygon_iou(over, gold, height=30, width=30) == pytest.approx(0.25)


def test_polygon_pixel_centres_on_edges() -> None:
    # the right edge x = 10.5 and the bottom edge y = 4.5 run through pixel centres: those pixels are in
    m = polygon_mask([[0, 0], [10.5, 0], [10.5, 4.5], [0, 4.5]], 8, 14)
    assert m.sum() == 11 * 5 and m[4, 10] and not m[5, 0] and not m[0, 11]
    # the same holds for the mirrored edges (left x = 2.5, top y = 1.5): the rule does not depend on the side
    m2 = polygon_mask([[2.5, 1.5], [6, 1.5], [6, 5], [2.5, 5]], 8, 8)
    assert m2[1, 2] and m2.sum() == 4 * 4


def test_polygon_gold_mask_forms() -> None:
    gold_poly = [[2, 2], [8, 2], [8, 8], [2, 8]]
    as_int = polygon_mask(gold_poly, 12, 12).astype(int)
    assert set(np.unique(as_int)) == {0, 1}
    assert polygon_iou(gold_poly, as_int) == 1.0
    assert polygon_iou(gold_poly, as_int.tolist()) == 1.0  # JSON-stored 0/1 mask
    assert polygon_iou(gold_poly, {"mask": as_int.astype(float).tolist()}) == 1.0
    unit = [[0, 0], [1, 0], [1, 1], [0, 1]]  # n x 2 of 0/1 values: a polygon, not a 4 x 2 mask
    assert polygon_iou(unit, unit) == 1.0
    with pytest.raises(ValueError, match="0/1"):
        polygon_iou(gold_poly, {"mask": [[0, 2], [1, 0]]})


# ------------------------------------------------------------------------------------ OCR and counting

unicode_words = st.text(alphabet=st.sampled_from(list("abcé ëñ\u0301e\u0308ÅA\u030a\t\n日本")), max_size=20)


@PROPS
@given(unicode_words, unicode_words, st.sampled_from(["NFC", "NFD"]))
def test_ocr_matches_reference(pred: str, gold: str, form: str) -> None:
    assert ocr_score(unicodedata.normalize(form, pred), gold) == pytest.approx(ref_ocr(pred, gold))


def test_ocr_nfc_vs_nfd() -> None:
    assert ocr_score(unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")) == 1.0


@PROPS
@given(st.integers(0, 500), st.integers(0, 500))
def test_count_matches_reference(pred: int, gold: int) -> None:
    expect = max(0.0, 1.0 - abs(pred - gold) / max(gold, 1))
    assert count_reward(pred, gold) == pytest.approx(expect)
    assert count_reward(f"There are {pred} birds (I checked {pred + 7} times).", gold) == pytest.approx(expect)


def test_count_rule() -> None:
    assert parse_count("3 cats (checked 2 times)") == 3
    assert parse_count("I see 2 dogs and 3 cats.", "cat") == 3
    assert parse_count("I see 2 dogs and 3 cats.") == 2  # no noun given: the first number
    assert parse_count("There are three boxes", "box") == 3
    assert parse_count("1,204 stars") == 1204
    assert parse_count("B52 bombers: 4") == 4  # digits inside a word are not a count
    assert parse_count("none") is None
