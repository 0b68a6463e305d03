"""The head analysis's own statistics: the causal test's interval and `summary.json` (the
correlations of each reuse metric with the gap, the top-k overlap, the causal test). The
generic ones (correlations, bootstrap intervals, Jaccard) live in `lgtransfer.analysis.stats`."""

from __future__ import annotations

import numpy as np

from lgtransfer.analysis.stats import correlations, json_number, mean_ci


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

REUSE_METRICS = ("attn_diff", "importance_diff")  # the reuse metrics correlated with the gap
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
        elif r["metric"] in REUSE_METRICS:
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


def summarize_reuse(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
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
        per_run[run] = {"final_step": last, "final_gap": json_number(s["gap"][last]),
                        "learned_steps": sorted(learned), "over_checkpoints": corr["all"],
                        "over_learned_checkpoints": corr["learned"],
                        **_last_step_facts(rows, run, last)}
    causal_runs: dict[str, dict] = {}
    for band in ("in_dist", "transfer"):
        drops = [r["causal"][band]["extra_drop"] for r in per_run.values()
                 if band in r["causal"] and r["causal"][band].get("extra_drop") is not None]
        if drops:
            lo, hi = mean_ci(drops, n_boot, seed)
            causal_runs[band] = {"n": len(drops),
                                 "mean_extra_drop": json_number(float(np.mean(drops))),
                                 "ci": [json_number(lo), json_number(hi)]}

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
                json_number(r["value"])
        elif r["metric"].startswith("causal_"):
            causal.setdefault(r["band"], {})[r["metric"][len("causal_"):]] = json_number(r["value"])
    for c in causal.values():
        c["ci"] = [c.pop("extra_drop_lo", None), c.pop("extra_drop_hi", None)]
    return {"topk_overlap": overlap, "causal": causal, "causal_topk_heads": heads}
