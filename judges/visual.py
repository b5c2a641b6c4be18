"""Visual rewards (as described in the Kimi K2.5 report): grounding, points, polygons, OCR, counting.

Every function takes a prediction of *any* shape (malformed, wrong type, NaN, huge) and returns a float in
[0, 1]; a perfect prediction scores 1; scores do not depend on the order of predicted items.

- :func:`box_f1` — boxes ``[x1, y1, x2, y2]``: F1 whose true positives are soft, the IoU of each pair in an
  optimal one-to-one matching (so a box 80% overlapping counts 0.8 of a hit).
- :func:`point_f1` — points ``[x, y]``: F1 with soft hits ``exp(−d² / 2σ²)`` under optimal matching.
- :func:`polygon_iou` — a predicted polygon rasterised to a mask, IoU with the gold mask (or, for a gold
  polygon without an image size, the exact area IoU of the two polygons).
- :func:`ocr_score` — ``1 − normalised edit distance`` (rapidfuzz Levenshtein) of NFC-normalised text.
- :func:`count_reward` — ``max(0, 1 − |pred − truth| / max(|truth|, 1))``: falls linearly with the error;
  :func:`parse_count` says which number in a sentence is the count.

Predictions are read in the shapes models write: lists of ``[x1, y1, x2, y2]``, dicts with ``bbox`` /
``bbox_2d`` (Qwen-VL) / ``box`` / ``point_2d`` …, or a dict of parallel lists such as
``{"boxes": […], "labels": […]}`` (labels are not compared: the rewards are geometric).

scipy, shapely and rapidfuzz are imported on first use.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..wire import JudgeResult, Task, Trajectory
from .base import JudgeContext
from .extract import extract_json, extract_tag
from .rules import parse_number, response_text

__all__ = [
    "VisualJudge",
    "box_f1",
    "count_reward",
    "ocr_score",
    "parse_boxes",
    "parse_count",
    "parse_points",
    "point_f1",
    "polygon_iou",
    "polygon_mask",
]

MAX_ITEMS = 1_000
"""Polygons with more vertices than ``4 * MAX_ITEMS`` are rejected (a real outline is far shorter)."""
MAX_PARSE = 100_000
"""At most this many predicted items are parsed (memory bound); every item still counts in the total, so a
spam of boxes is a spam of false positives however long it is."""

# keys under which a dict holds one item's coordinates, and keys under which a dict holds the item list
_COORD_KEYS = ("bbox_2d", "bbox", "box", "box_2d", "point_2d", "point", "xy", "coords")
_LIST_KEYS = ("boxes", "bboxes", "bbox_2d", "points", "point_2d", "objects", "detections", "predictions",
              "results", "answer")


def _finite(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def _coords(item: Any, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats from a list/tuple, or from a dict's ``bbox``/``box``/``box_2d``/``point``."""
    if isinstance(item, Mapping):
        for k in _COORD_KEYS:
            if k in item:
                return _coords(item[k], n)
        if n == 2 and "x" in item and "y" in item:
            item = [item["x"], item["y"]]
        else:
            return None
    if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != n:
        return None
    vals = tuple(_finite(v) for v in item)
    if any(v is None for v in vals):
        return None
    return vals  # type: ignore[return-value]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _items(pred: Any) -> list[Any]:
    """The list of predicted items, however it was wrapped (text, dict of lists, one bare item)."""
    if isinstance(pred, str):
        v = extract_json(pred)
        pred = v if v is not None else []
    if isinstance(pred, Mapping):
        key = next((k for k in _LIST_KEYS if isinstance(pred.get(k), list)), None)
        if key is not None and not (key in _COORD_KEYS and all(_is_number(v) for v in pred[key])):
            # {"boxes": [...], "labels": [...]} (a coordinate key holding numbers is one item, not a list)
            pred = pred[key]
        elif any(k in pred for k in _COORD_KEYS) or ("x" in pred and "y" in pred):
            pred = [pred]  # one item given as a dict
        else:
            lists = [v for v in pred.values() if isinstance(v, list)]
            pred = lists[0] if len(lists) == 1 else [pred]
    if not isinstance(pred, Sequence) or isinstance(pred, str):
        return []
    items = list(pred)
    # a single box/point given bare ([1, 2, 3, 4]) rather than as a list of one
    if items and all(_is_number(v) for v in items):
        return [items]
    return items


def parse_boxes(pred: Any) -> list[tuple[float, float, float, float]]:
    """Valid boxes in ``pred`` (corners re-ordered so x1 ≤ x2, y1 ≤ y2); malformed entries dropped."""
    out = []
    for it in _items(pred)[:MAX_PARSE]:
        c = _coords(it, 4)
        if c is not None:
            x1, y1, x2, y2 = c
            out.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return out


def parse_points(pred: Any) -> list[tuple[float, float]]:
    """Valid points in ``pred``; malformed entries dropped."""
    out = []
    for it in _items(pred)[:MAX_PARSE]:
        c = _coords(it, 2)
        if c is not None:
            out.append((c[0], c[1]))
    return out


def _soft_f1(sim: Any, n_pred: int, n_gold: int) -> float:
    """F1 whose true-positive count is the total similarity of an optimal one-to-one matching."""
    if n_pred == 0 and n_gold == 0:
        return 1.0
    if n_pred == 0 or n_gold == 0:
        return 0.0
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    k = sim.shape[1]
    if sim.shape[0] > max(MAX_ITEMS, k * k):
        # Many predictions: some optimal matching uses only each gold item's k best predictions (if a gold
        # item were matched outside its top k, one of those k is free and at least as good), so the
        # O(n^3) assignment runs on at most k^2 rows. n_pred still counts every prediction.
        top = np.argpartition(-sim, k - 1, axis=0)[:k] if sim.shape[0] > k else np.arange(sim.shape[0])
        sim = sim[np.unique(top.ravel())]
    ri, ci = linear_sum_assignment(sim, maximize=True)
    tp = float(sim[ri, ci].sum())
    p, r = tp / n_pred, tp / n_gold
    if p + r <= 0:
        return 0.0
    return min(1.0, max(0.0, 2 * p * r / (p + r)))


def _iou_matrix(a: list[tuple[float, ...]], b: list[tuple[float, ...]]) -> Any:
    import numpy as np

    A = np.asarray(a, dtype=float).reshape(-1, 4)
    B = np.asarray(b, dtype=float).reshape(-1, 4)
    ix1 = np.maximum(A[:, None, 0], B[None, :, 0])
    iy1 = np.maximum(A[:, None, 1], B[None, :, 1])
    ix2 = np.minimum(A[:, None, 2], B[None, :, 2])
    iy2 = np.minimum(A[:, None, 3], B[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (A[:, 2] - A[:, 0]) * (A[:, 3] - A[:, 1])
    area_b = (B[:, 2] - B[:, 0]) * (B[:, 3] - B[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    # two identical degenerate boxes (zero area) are the same box
    same = np.all(A[:, None, :] == B[None, :, :], axis=2)
    iou = np.where(same, 1.0, iou)
    return np.nan_to_num(np.clip(iou, 0.0, 1.0))


def box_f1(pred: Any, gold: Any, *, min_iou: float = 0.0) -> float:
    """Grounding reward: soft F1 of predicted vs gold boxes ``[x1, y1, x2, y2]``.

    Args:
        pred: boxes (list of 4-lists, dicts with ``bbox``, JSON text …); malformed boxes are dropped and
            still count against precision.
        gold: gold boxes.
        min_iou: matches with a lower IoU count 0 (0 = fully soft).
    """
    g = parse_boxes(gold)
    items = _items(pred)
    p = parse_boxes(items)
    n_pred = len(items)  # malformed entries are false positives, not free
    if not p:
        return 1.0 if (n_pred == 0 and not g) else 0.0
    if not g:
        return 0.0
    sim = _iou_matrix(p, g)
    if min_iou > 0:
        sim = sim * (sim >= min_iou)
    return _soft_f1(sim, n_pred, len(g))


def point_f1(pred: Any, gold: Any, *, sigma: float = 10.0) -> float:
    """Point reward: soft F1 with Gaussian-weighted distance ``exp(−d² / 2σ²)`` under optimal matching.

    Args:
        pred: points (``[[x, y], …]``, dicts with ``point``, JSON text …).
        gold: gold points.
        sigma: distance scale in the coordinates' unit (pixels, or 0–1000 normalised coordinates).
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number, got {sigma}")
    import numpy as np

    g = parse_points(gold)
    items = _items(pred)
    p = parse_points(items)
    n_pred = len(items)
    if not p:
        return 1.0 if (n_pred == 0 and not g) else 0.0
    if not g:
        return 0.0
    P, G = np.asarray(p, dtype=float), np.asarray(g, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        d2 = ((P[:, None, :] - G[None, :, :]) ** 2).sum(axis=2)
        sim = np.exp(-d2 / (2 * sigma**2))
    return _soft_f1(np.nan_to_num(sim), n_pred, len(g))


def _vertices(pts: Any) -> list[tuple[float, float]]:
    """Polygon vertices from ``[[x, y], …]``, a flat ``[x1, y1, x2, y2, …]``, a dict with ``polygon`` /
    ``points``, or JSON text; ``[]`` when any vertex is malformed (half a polygon is no polygon)."""
    if isinstance(pts, str):
        pts = extract_json(pts)
    if isinstance(pts, Mapping):
        pts = pts.get("polygon", pts.get("points"))
    if not isinstance(pts, Sequence) or isinstance(pts, str) or len(pts) > 4 * MAX_ITEMS:
        return []
    if pts and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pts):
        flat = [_finite(v) for v in pts]
        if len(flat) % 2 or any(v is None for v in flat):
            return []
        return list(zip(flat[0::2], flat[1::2]))  # type: ignore[arg-type]
    out: list[tuple[float, float]] = []
    for it in pts:
        c = _coords(it, 2)
        if c is None:
            return []
        out.append((c[0], c[1]))
    return out


def _polygon(pts: Any) -> Any:
    """A valid polygonal shapely geometry (self-intersections repaired, stray lines dropped), or None."""
    vs = _vertices(pts)
    if len(vs) < 3:
        return None
    import shapely
    from shapely.geometry import Polygon
    from shapely.validation import make_valid

    try:
        geom = make_valid(Polygon(vs))
        # make_valid may return a collection mixing polygons with lines/points (a spike, a repeated
        # vertex); overlay operations refuse mixed dimensions, and lines have no area anyway
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
        poly = shapely.union_all(parts) if parts else None
    except Exception:  # shapely/GEOS rejects some degenerate inputs outright
        return None
    return poly if poly is not None and not poly.is_empty and poly.area > 0 else None


def polygon_mask(polygon: Any, height: int, width: int) -> Any:
    """Rasterise a polygon (list of ``[x, y]`` in pixel units) to a ``height × width`` bool mask.

    Pixel ``(row y, column x)`` covers the square ``[x, x+1) × [y, y+1)``; it belongs to the mask when its
    centre ``(x + 0.5, y + 0.5)`` lies inside the polygon **or on its boundary** (the polygon is a closed
    set: a polygon whose edge runs through a row of pixel centres includes that row, on every side).
    Malformed polygons (fewer than 3 valid vertices, zero area) give an empty mask.
    """
    import numpy as np

    mask = np.zeros((int(height), int(width)), dtype=bool)
    poly = _polygon(polygon)
    if poly is None or height <= 0 or width <= 0:
        return mask
    import shapely

    x0, y0, x1, y1 = poly.bounds
    cx0, cy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    cx1, cy1 = min(int(width), int(math.ceil(x1)) + 1), min(int(height), int(math.ceil(y1)) + 1)
    if cx0 >= cx1 or cy0 >= cy1:
        return mask
    ys, xs = np.mgrid[cy0:cy1, cx0:cx1]
    inside = shapely.intersects_xy(poly, xs + 0.5, ys + 0.5)  # interior or boundary: a closed set
    mask[cy0:cy1, cx0:cx1] = inside
    return mask


def _gold_mask(gold: Any) -> Any:
    """``gold`` as a 2-D bool mask when it is one, else None (then it must be a polygon).

    A mask is a bool array, or a 2-D array of only 0s and 1s that is not ``n × 2`` (an ``n × 2`` array of
    0/1 values is a polygon with vertices at 0/1, e.g. the unit square), or ``{"mask": …}`` explicitly.
    """
    import numpy as np

    explicit = isinstance(gold, Mapping) and "mask" in gold
    if explicit:
        gold = gold["mask"]
    try:
        arr = np.asarray(gold)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.dtype == object:
        if explicit:
            raise ValueError(f"gold mask must be a 2-D array of 0/1 or bool, got {type(gold).__name__}")
        return None
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.number) and arr.size and np.isin(arr, (0, 1)).all():
        if explicit or arr.shape[1] != 2:
            return arr.astype(bool)
    if explicit:
        raise ValueError("gold mask must hold only 0/1 (or bool) values")
    return None


def polygon_iou(pred: Any, gold: Any, *, height: int | None = None, width: int | None = None) -> float:
    """Segmentation reward: IoU of the predicted polygon with the gold region.

    Args:
        pred: predicted polygon (``[[x, y], …]`` or flat ``[x1, y1, …]``, or JSON text).
        gold: gold mask (2-D bool or 0/1 array, or ``{"mask": …}``; see :func:`_gold_mask`) or gold polygon.
        height / width: the image size. With a gold polygon and a size, both polygons are rasterised
            (:func:`polygon_mask`) on the image and compared pixel by pixel; with a gold polygon and no
            size, the exact area IoU of the two polygons is used (the limit of the raster IoU as pixels
            shrink; no raster can be too small for a prediction that overshoots the gold region).
            A gold mask fixes the raster itself; the size arguments are then ignored.

    Raises:
        ValueError: the gold value is neither a mask nor a polygon with positive area.
    """
    import numpy as np

    gmask = _gold_mask(gold)
    if gmask is None:
        gpoly = _polygon(gold)
        if gpoly is None:
            raise ValueError("gold must be a 2-D bool/0-1 mask or a polygon with at least 3 vertices and area > 0")
        if height is None or width is None:
            ppoly = _polygon(pred)
            if ppoly is None:
                return 0.0
            union = ppoly.union(gpoly).area
            if not (union > 0 and math.isfinite(union)):
                return 0.0
            return float(min(1.0, max(0.0, ppoly.intersection(gpoly).area / union)))
        gmask = polygon_mask(gold, int(height), int(width))
    pmask = polygon_mask(pred, gmask.shape[0], gmask.shape[1])
    union = np.logical_or(pmask, gmask).sum()
    if union == 0:
        return 1.0  # both empty
    return float(np.logical_and(pmask, gmask).sum() / union)


def ocr_score(pred: Any, gold: Any, *, normalize_space: bool = True, unicode_form: str | None = "NFC") -> float:
    """OCR reward: ``1 − normalised Levenshtein distance`` (1 = identical, 0 = nothing in common).

    Args:
        normalize_space: collapse runs of whitespace and strip the ends first.
        unicode_form: Unicode normalisation applied to both texts first (``"NFC"``: a precomposed "é" and
            "e" + combining accent are the same reading; ``"NFKC"`` also folds compatibility forms such as
            ligatures and full-width letters; None: compare code points as given).
    """
    if not isinstance(pred, str):
        pred = ""  # no text read is an empty reading
    g = gold if isinstance(gold, str) else "" if gold is None else str(gold)
    if unicode_form:
        pred, g = unicodedata.normalize(unicode_form, pred), unicodedata.normalize(unicode_form, g)
    if normalize_space:
        pred, g = " ".join(pred.split()), " ".join(g.split())
    if not pred and not g:
        return 1.0
    from rapidfuzz.distance import Levenshtein

    return float(min(1.0, max(0.0, 1.0 - Levenshtein.normalized_distance(pred, g))))


_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_COUNT_TOKEN = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b",
                          re.IGNORECASE)


def _count_value(tok: str) -> float:
    t = tok.lower()
    return float(_NUMBER_WORDS[t]) if t in _NUMBER_WORDS else float(t)


def parse_count(text: Any, noun: str | None = None) -> float | None:
    """The count stated in ``text``, by a fixed rule.

    1. With ``noun`` (the counted object, e.g. ``"cat"``): the last number (digits or a number word up to
       twenty) *before* the first mention of the noun (plural "s"/"es" allowed), so "I see 2 dogs and 3
       cats" counts 3 cats.
    2. Otherwise, or when the noun is not mentioned after a number: the **first** number in the text.
       Answers state the count first and qualify it afterwards ("3 cats (checked 2 times)" → 3); a
       reasoning trace belongs outside the ``<answer>`` tags, which are read first.

    Thousands separators (``1,000``) are read as one number. Returns None when there is no number.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return _finite(text)
    if not isinstance(text, str):
        return None
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text[:MAX_SCAN])
    toks = list(_COUNT_TOKEN.finditer(s))
    if not toks:
        return None
    if noun and noun.strip():
        m = re.search(rf"\b{re.escape(noun.strip())}(?:e?s)?\b", s, flags=re.IGNORECASE)
        if m is not None:
            before = [t for t in toks if t.end() <= m.start()]
            if before:
                return _finite(_count_value(before[-1].group(0)))
    return _finite(_count_value(toks[0].group(0)))


MAX_SCAN = 20_000  # a count answer is a sentence; longer text is cut before scanning for numbers


def count_reward(pred: Any, gold: Any) -> float:
    """Counting reward ``max(0, 1 − |pred − gold| / max(|gold|, 1))``; unparseable predictions score 0.

    ``pred`` is a number or a text read with :func:`parse_count`.
    """
    g = parse_number(gold) if not isinstance(gold, (int, float)) else _finite(gold)
    if g is None:
        raise ValueError(f"gold count must be a number, got {gold!r}")
    p = parse_count(pred)
    if p is None:
        return 0.0
    return float(max(0.0, 1.0 - abs(p - g) / max(abs(g), 1.0)))


Kind = Literal["boxes", "points", "polygon", "ocr", "count"]


class VisualJudge:
    """Judge wrapping one visual reward; the prediction is read from the response text.

    The answer is taken from ``<answer>…</answer>`` when present, else the whole response (JSON found
    anywhere in it is used for boxes/points/polygons). ``task.answer`` holds the gold value;
    ``task.metadata`` may set ``height``/``width`` (polygon raster), ``sigma`` (points) and ``object``
    (the counted noun, see :func:`parse_count`).

    Args:
        kind: ``"boxes"``, ``"points"``, ``"polygon"``, ``"ocr"`` or ``"count"``.
        sigma / min_iou: passed to :func:`point_f1` / :func:`box_f1`.
    """

    KINDS = ("boxes", "points", "polygon", "ocr", "count")

    def __init__(self, kind: Kind, *, sigma: float = 10.0, min_iou: float = 0.0, name: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.sigma = sigma
        self.min_iou = min_iou
        self.name = name or kind

    def reward(self, pred: Any, task: Task) -> float:
        gold, md = task.answer, task.metadata
        if self.kind == "boxes":
            return box_f1(pred, gold, min_iou=self.min_iou)
        if self.kind == "points":
            return point_f1(pred, gold, sigma=float(md.get("sigma", self.sigma)))
        if self.kind == "polygon":
            return polygon_iou(pred, gold, height=md.get("height"), width=md.get("width"))
        if self.kind == "ocr":
            return ocr_score(pred, gold)
        return count_reward(pred, gold)

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        text = response_text(trajectory)
        ans = extract_tag(text, "answer")
        pred: Any = ans if ans is not None else text
        if self.kind == "count" and isinstance(pred, str):
            noun = task.metadata.get("object") or task.metadata.get("noun")
            pred = parse_count(pred, noun if isinstance(noun, str) else None)
        elif self.kind == "ocr" and ans is None:
            pred = text.strip()
        elif self.kind in ("boxes", "points", "polygon") and isinstance(pred, str):
            try:
                pred = json.loads(pred)
            except ValueError:
                pred = extract_json(pred)
        r = self.reward(pred, task)
        return JudgeResult(reward=r, facets={self.name: r})
