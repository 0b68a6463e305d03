"""Statistics for the head analysis, in numpy alone (scipy is not a dependency).

Correlations come with percentile-bootstrap 95 % intervals: pairs (x_i, y_i) are resampled with
replacement and the statistic recomputed; resamples where it is undefined (a constant sample)
are dropped. With the few points head analysis has (10 checkpoints, 3-5 seeds) the intervals are
wide, and they should be: that is the honest statement of what 10 points can show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Stat = Callable[[np.ndarray, np.ndarray], float]
# Fewer points than this give no interval: with 4 points a resample has only 256 possible
# values, many of them degenerate, and a percentile interval of those means little.
MIN_BOOTSTRAP = 5


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given the average of the ranks they span (scipy's 'average')."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; nan when there are fewer than 2 points or either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    # a relative threshold: a "constant" series with rounding noise must not give +-1
    scale = max(float(np.abs(x).max()), 1e-300) * max(float(np.abs(y).max()), 1e-300) * len(x)
    if denom <= 1e-12 * scale:
        return math.nan
    return float(np.clip((dx * dy).sum() / denom, -1.0, 1.0))


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation: Pearson on average-tie ranks."""
    return pearson(rankdata(x), rankdata(y))


def bootstrap_ci(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, stat: Stat,
                 n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `stat(x, y)` over paired resamples (nan, nan if undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_BOOTSTRAP:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    values = np.array([stat(x[i], y[i]) for i in idx])
    values = values[np.isfinite(values)]
    if len(values) < n_boot // 2:  # mostly undefined: no interval worth the name
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def correlations(x: Sequence[float], y: Sequence[float], n_boot: int = 2000,
                 seed: int = 0) -> dict:
    """Spearman and Pearson of x against y with bootstrap intervals, as JSON-ready numbers
    (None where undefined: fewer than 3 points, where any correlation is +-1, or a constant)."""
    out: dict = {"n": len(x)}
    for name, stat in (("spearman", spearman), ("pearson", pearson)):
        value = stat(np.asarray(x), np.asarray(y)) if len(x) >= 3 else math.nan
        lo, hi = bootstrap_ci(x, y, stat, n_boot, seed)
        out[name] = {"value": _num(value), "ci": [_num(lo), _num(hi)]}
    return out


def mean_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0,
            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (nan, nan for fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def top_k(values: np.ndarray, k: int) -> set[int]:
    """Flat indices of the k largest entries (ties broken by the lower index)."""
    flat = np.asarray(values, dtype=float).ravel()
    return {int(i) for i in np.argsort(-flat, kind="stable")[:k]}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1 for two empty sets."""
    return len(a & b) / len(a | b) if a | b else 1.0


def _num(v: float) -> float | None:
    """A float for JSON: None where undefined."""
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def causal_interval(correct: np.ndarray, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of mean(acc under random ablations) - acc(top-k ablation).

    `correct` is (2 + R, B) exact match: row 0 clean, row 1 the top-k ablation, rows 2.. the R
    random draws, all on the same B examples. Examples and draws are resampled together, so the
    interval covers both the finite evaluation set and the luck of the random heads.
    """
    rng = np.random.default_rng(seed)
    n_draws, n = correct.shape[0] - 2, correct.shape[1]
    examples = rng.integers(0, n, (n_boot, n))
    draws = rng.integers(0, n_draws, (n_boot, n_draws))
    per_cond = np.stack([correct[:, e].mean(axis=1) for e in examples])  # (n_boot, 2 + R)
    random = np.take_along_axis(per_cond[:, 2:], draws, axis=1).mean(axis=1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(random - per_cond[:, 1], [tail, 100 - tail])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- summary.json

METRICS = ("attn_diff", "importance_diff")  # the reuse metrics correlated with the gap
# A checkpoint counts as "learned" when the main task's in-distribution exact match reaches this.
# Before that the gap is near 0 only because neither task works past L_main yet, which would
# make any metric that changes with training correlate with the gap for that reason alone.
LEARNED = 0.5


def scalar_series(rows: list[dict]) -> dict[str, dict[str, dict[int, float]]]:
    """run -> key -> step -> value, for `gap`, `main_acc` (the main task's in-distribution exact
    match) and each `metric/band` scalar (the mean over heads, averaged over the aux tasks)."""
    main = {r["run"]: r["task"] for r in rows if r["metric"] == "gap"}
    acc: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        if r["layer"] is not None or r["value"] is None:
            continue
        if r["metric"] == "gap":
            key = "gap"
        elif r["metric"] in METRICS:
            key = f"{r['metric']}/{r['band']}"
        elif (r["metric"], r["band"], r["task"]) == ("accuracy", "in_dist", main.get(r["run"])):
            key = "main_acc"
        else:
            continue
        acc.setdefault((r["run"], key, r["step"]), []).append(r["value"])
    out: dict[str, dict[str, dict[int, float]]] = {}
    for (run, key, step), values in acc.items():
        out.setdefault(run, {}).setdefault(key, {})[step] = float(np.mean(values))
    return out


def summarize(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """What summary.json holds, from the rows of heads.jsonl:

    - per run: Spearman/Pearson of each metric against the gap over its checkpoints
      (`over_checkpoints`) and over its learned checkpoints only (`LEARNED`); the top-k overlap
      and the causal test at its last checkpoint;
    - `pooled_over_checkpoints`, `pooled_over_learned_checkpoints`: the same over every
      (run, checkpoint) point;
    - `over_runs`: each run's metric at its last checkpoint against its final gap;
    - `causal_over_runs`: the mean extra drop over runs, with an interval over runs.
    """
    series = scalar_series(rows)
    keys = sorted({k for s in series.values() for k in s if k not in ("gap", "main_acc")})
    views = ("all", "learned", "final")
    points = {v: {k: ([], []) for k in keys} for v in views}
    per_run: dict[str, dict] = {}
    for run, s in series.items():
        learned = {t for t, a in s.get("main_acc", {}).items() if a >= LEARNED}
        corr: dict[str, dict] = {"all": {}, "learned": {}}
        for k in keys:
            steps = sorted(set(s.get(k, {})) & set(s["gap"]))
            for view, chosen in (("all", steps), ("learned", [t for t in steps if t in learned]),
                                 ("final", steps[-1:])):
                x, y = [s[k][t] for t in chosen], [s["gap"][t] for t in chosen]
                points[view][k][0].extend(x)
                points[view][k][1].extend(y)
                if view != "final":
                    corr[view][k] = correlations(x, y, n_boot, seed)
        last = max(s["gap"])
        per_run[run] = {"final_step": last, "final_gap": _num(s["gap"][last]),
                        "learned_steps": sorted(learned), "over_checkpoints": corr["all"],
                        "over_learned_checkpoints": corr["learned"],
                        **_last_step_facts(rows, run, last)}
    causal_runs: dict[str, dict] = {}
    for band in ("in_dist", "transfer"):
        drops = [r["causal"][band]["extra_drop"] for r in per_run.values()
                 if band in r["causal"] and r["causal"][band].get("extra_drop") is not None]
        if drops:
            lo, hi = mean_ci(drops, n_boot, seed)
            causal_runs[band] = {"n": len(drops), "mean_extra_drop": _num(float(np.mean(drops))),
                                 "ci": [_num(lo), _num(hi)]}

    def corr_of(view: str) -> dict:
        return {k: correlations(*points[view][k], n_boot, seed) for k in keys}

    return {"runs": per_run, "learned_threshold": LEARNED,
            "pooled_over_checkpoints": corr_of("all"),
            "pooled_over_learned_checkpoints": corr_of("learned"),
            "over_runs": corr_of("final"), "causal_over_runs": causal_runs}


def _last_step_facts(rows: list[dict], run: str, step: int) -> dict:
    """The top-k overlap and the causal test of one run at one step, from its rows."""
    overlap: dict[str, dict] = {}
    causal: dict[str, dict] = {}
    heads = []
    names = {"topk_jaccard": "jaccard", "importance_spearman": "spearman"}
    for r in rows:
        if r["run"] != run or r["step"] != step:
            continue
        if r["metric"] == "causal_topk_head":
            heads.append([r["layer"], r["head"]])
        elif r["layer"] is not None:
            continue
        elif r["metric"] in names:
            overlap.setdefault(r["task"], {}).setdefault(r["band"], {})[names[r["metric"]]] = \
                _num(r["value"])
        elif r["metric"].startswith("causal_"):
            causal.setdefault(r["band"], {})[r["metric"][len("causal_"):]] = _num(r["value"])
    for c in causal.values():
        c["ci"] = [c.pop("extra_drop_lo", None), c.pop("extra_drop_hi", None)]
    return {"topk_overlap": overlap, "causal": causal, "causal_topk_heads": heads}
