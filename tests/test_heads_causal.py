"""The causal test over k, torch-free: its statistic from heads.jsonl rows, saturation, the
verdicts and the control-at-floor rule, the report's section, and that its config fields leave
every existing run's key and config.yaml as they were."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgtransfer.analysis.heads_causal import (
    causal_k_verdict,
    control_contrast,
    curve_summary,
    curves,
    intact_level,
    run_curve,
    saturated,
    seed_statistic,
)
from lgtransfer.analysis.verdicts import FLOOR, NOT_APPLICABLE, settle
from lgtransfer.runtime import rundir

LENGTHS = (7, 8, 9)


def curve_rows(intact: list[float], topk: dict[int, list[float]],
               random: dict[int, list[list[float]]], step: int = 3500) -> list[dict]:
    """Rows as `causal_curve` writes them: per length (and band mean), intact, top-k per k,
    each random draw per k and their mean."""
    rows = []

    def add(metric, values, k=None, draw=None):
        for n, v in zip(LENGTHS, values, strict=True):
            rows.append({"step": step, "task": "m", "metric": metric, "band": "transfer_all",
                         "layer": None, "head": None, "value": v, "k": k, "length": n,
                         "draw": draw})
        rows.append({"step": step, "task": "m", "metric": metric, "band": "transfer_all",
                     "layer": None, "head": None, "value": float(np.mean(values)), "k": k,
                     "length": None, "draw": draw})

    add("kcausal_intact_acc", intact)
    for k in topk:
        add("kcausal_topk_acc", topk[k], k)
        for d, values in enumerate(random[k]):
            add("kcausal_random_acc", values, k, d)
        add("kcausal_random_acc", list(np.mean(random[k], axis=0)), k)
    return rows


def planted(seed: int, aux_matters: bool = True, floor_k2: bool = False) -> list[dict]:
    """Intact 0.8 at every length; at k = 1 the aux heads take it to 0.3 (or, when they do not
    matter, to the random heads' level) and random heads to about 0.6; at k = 2 both to 0
    where `floor_k2`, else to 0.2 and 0.5."""
    jitter = 0.01 * seed
    rand = [[0.6 + jitter, 0.6, 0.58], [0.62, 0.6 - jitter, 0.6]]
    top1 = [0.3, 0.3, 0.3] if aux_matters else list(np.mean(rand, axis=0) - jitter)
    top2 = [0.0] * 3 if floor_k2 else [0.2, 0.2, 0.2]
    rand2 = [[0.0] * 3, [0.01] * 3] if floor_k2 else [[0.5] * 3, [0.5] * 3]
    return curve_rows([0.8] * 3, {1: top1, 2: top2}, {1: rand, 2: rand2})


def table(seeds: dict[int, list[dict]], experiment: str = "g1") -> pd.DataFrame:
    return curves({f"{experiment}/r{s}": (experiment, s, rows) for s, rows in seeds.items()})


def test_the_statistic_is_the_band_mean_of_drop_aux_minus_drop_random():
    rows = curve_rows([0.9, 0.8, 0.4], {2: [0.5, 0.2, 0.0]},
                      {2: [[0.9, 0.6, 0.4], [0.7, 0.8, 0.2]]})
    rows += curve_rows([0.0] * 3, {2: [0.0] * 3}, {2: [[0.0] * 3] * 2}, step=100)  # earlier
    c = run_curve(rows).set_index("k")
    drop_aux = np.mean([0.4, 0.6, 0.4])
    drop_rand = np.mean([0.9 - 0.8, 0.8 - 0.7, 0.4 - 0.3])
    assert c.loc[2, "drop_aux"] == pytest.approx(drop_aux)
    assert c.loc[2, "drop_rand"] == pytest.approx(drop_rand)
    assert c.loc[2, "statistic"] == pytest.approx(drop_aux - drop_rand)
    assert c.loc[2, "lengths"] == 3 and not c.loc[2, "at_floor"]  # the last step's rows


def test_planted_aux_heads_give_a_positive_statistic_and_a_yes():
    t = table({s: planted(s) for s in range(10)})
    stats = seed_statistic(t, "g1", 1)
    assert len(stats) == 10 and all(v > 0.25 for v in stats.values())
    (v,) = settle([causal_k_verdict(t, "g1", 1)])
    assert v.outcome == "yes" and v.measured.n == 10 and v.p_adj == pytest.approx(2**-10)
    # where the aux heads matter no more than random ones: not a yes
    same = table({s: planted(s, aux_matters=False) for s in range(10)})
    assert settle([causal_k_verdict(same, "g1", 1)])[0].outcome != "yes"


def test_a_k_where_top_k_ablation_floors_the_main_task_is_saturated_and_n_a():
    """k is tested only where the main task is off the floor under top-k ablation on more
    than half of the seeds: at floor on 5 of 10 is saturated, on 4 of 10 is not."""
    half = table({s: planted(s, floor_k2=s < 5) for s in range(10)})
    assert saturated(half, "g1", 2) and not saturated(half, "g1", 1)
    v = causal_k_verdict(half, "g1", 2)
    assert v.outcome == NOT_APPLICABLE and "saturated at k = 2" in v.note and "5 of 10" in v.note
    fewer = table({s: planted(s, floor_k2=s < 4) for s in range(10)})
    assert not saturated(fewer, "g1", 2)
    assert causal_k_verdict(fewer, "g1", 2).outcome != NOT_APPLICABLE
    assert causal_k_verdict(fewer, "g1", 5).outcome == NOT_APPLICABLE  # k not measured
    s = curve_summary(half).set_index("k")
    assert s.loc[2, "at_floor"] == 5 and s.loc[2, "saturated"] and not s.loc[1, "saturated"]


def with_token_rows(rows: list[dict], floor: float | None = None) -> list[dict]:
    """The rows again in token accuracy, as the engine writes them beside exact match: here
    each value x becomes 0.25 + 0.75 x (a wrong answer keeps a quarter of its tokens); with
    `floor`, the no-attention rows of both measures (0 and `floor`) as the engine adds them."""
    tok = [{**r, "metric": r["metric"][:-len("acc")] + "tok", "value": 0.25 + 0.75 * r["value"]}
           for r in rows if r["metric"].endswith("_acc")]
    noattn = [] if floor is None else [
        {**r, "metric": f"kcausal_noattn_{m}", "value": v}
        for r in rows if r["metric"] == "kcausal_intact_acc" for m, v in (("acc", 0.0),
                                                                           ("tok", floor))]
    return rows + tok + noattn


def test_the_token_measure_reads_its_own_rows_and_its_floor_is_the_no_attention_level():
    """Each measure reads only its own rows (a run without token rows has no token curve);
    the floor is what the main task keeps with no attention, plus 0.02: in token accuracy
    0.02 above it without those rows, 0.27 with them at 0.25 (where exact match is 0)."""
    rows = {s: with_token_rows(planted(s, floor_k2=True)) for s in range(10)}
    acc = curves({f"g1/r{s}": ("g1", s, r) for s, r in rows.items()})
    tok = curves({f"g1/r{s}": ("g1", s, r) for s, r in rows.items()}, "tok")
    assert saturated(acc, "g1", 2) and not saturated(tok, "g1", 2)  # 0.25 > 0 + 0.02
    a, b = (c.set_index(["seed", "k"]) for c in (acc, tok))
    np.testing.assert_allclose(b.statistic, 0.75 * a.statistic)
    np.testing.assert_allclose(b.intact, 0.25 + 0.75 * a.intact)
    assert not len(run_curve(planted(0), "tok"))
    floored = {s: with_token_rows(planted(s, floor_k2=True), floor=0.25) for s in range(10)}
    acc = curves({f"g1/r{s}": ("g1", s, r) for s, r in floored.items()})
    tok = curves({f"g1/r{s}": ("g1", s, r) for s, r in floored.items()}, "tok")
    assert saturated(tok, "g1", 2) and saturated(acc, "g1", 2)  # destroyed in both measures
    assert not saturated(tok, "g1", 1) and (tok.noattn == 0.25).all()
    assert causal_k_verdict(tok, "g1", 2).outcome == NOT_APPLICABLE
    assert causal_k_verdict(tok, "g1", 1).outcome == "yes"
    # a control whose main task keeps no more than the no-attention level: floor
    assert intact_level(tok, "g1") == pytest.approx(0.75 * 0.8)
    assert control_contrast({0: 0.3}, {0: 0.0}, intact_level(tok.assign(noattn=0.85), "g1")
                            ).outcome == FLOOR


def test_the_contrast_is_withheld_where_the_control_sits_at_the_floor():
    group = {s: 0.3 for s in range(10)}
    control = {s: 0.0 for s in range(10)}
    floored = control_contrast(group, control, control_level=0.004)
    assert floored.outcome == FLOOR and floored.note.startswith("control at floor")
    assert "0.004" in floored.note
    (v,) = settle([control_contrast(group, control, control_level=0.4)])
    assert v.outcome == "yes"
    assert settle([floored])[0].outcome == FLOOR  # Holm leaves it out, as other floors


def test_the_suite_report_prints_the_curve_and_the_registered_claims(tmp_path):
    from lgtransfer.analysis.report.figures.registry import settle_tables
    from lgtransfer.analysis.report.heads_causal_k import FIGURE, causal_k_claims
    from lgtransfer.analysis.report.render import render

    done = []
    for exp, rows_of in (("g1", planted), ("c1", lambda s: planted(s, aux_matters=False))):
        for s in range(10):
            run = f"{exp}/with_aux_seed{s}"
            rundir.write_jsonl(tmp_path / run / "heads.jsonl",
                               [{"run": run, "experiment": exp, "seed": s, **r}
                                for r in rows_of(s)])
            done += [{"run": run, "experiment": exp, "variant": "with_aux", "seed": s,
                      "task": t, "role": role, "train_max_length": 6, "length": 6,
                      "step": 3500, "accuracy": 1.0} for t, role in (("m", "main"), ("a", "aux"))]
    done = pd.DataFrame(done)
    section = causal_k_claims(done, pd.DataFrame(), tmp_path)
    assert section is not None and (tmp_path / FIGURE).is_file()
    assert len(section.tables) == 1  # no registered k: the curve only
    (tmp_path / "registration.yaml").write_text(
        "causal_over_k: {k: 1, family: causal-k, claims: [g1, g1 - c1]}\n")
    section = causal_k_claims(done, pd.DataFrame(), tmp_path)
    curve, claims = section.tables
    assert set(curve.experiment) == {"g1", "c1"} and list(curve.k) == [1, 2, 1, 2]
    settle_tables([section])
    claims = section.tables[1]
    assert list(claims.experiment) == ["g1", "g1 - c1"]
    assert list(claims.reproduces) == ["yes", "yes"]
    assert "n = 10" in claims.ours.iloc[0] and claims.p.iloc[0] == f"{2 * 2**-10:.3g}"
    render("r", [section], tmp_path)
    assert FIGURE in (tmp_path / "report.md").read_text()


def test_the_causal_k_fields_leave_existing_keys_and_configs_unchanged():
    """The new heads fields at their defaults are not in config.yaml, and no heads field is in
    a run's key: every preset at cpu resolves as before; a committed run's config.yaml is what
    its experiment resolves to today; setting the fields changes no key."""
    from lgtransfer.config import expand, load_experiment, load_experiments

    assert [r.key for r in expand(load_experiment("quick"))] == ["78ed46ec12", "fbdf89f162"]
    for name in ("g1", "g5", "c1"):
        runs = expand(load_experiment(name, budget="cpu"))
        assert all(not any(k.startswith("causal_") for k in r.resolved()["heads"])
                   for r in runs)
        on = expand(load_experiments([name], ["heads.causal_ks=[1,2,3]", "heads.causal_draws=5"],
                                     "cpu")[0].config)
        assert [r.key for r in on] == [r.key for r in runs]
        assert on[0].resolved()["heads"]["causal_ks"] == [1, 2, 3]
    committed = Path(__file__).parents[1] / "results" / "cpu" / "g1"
    run_dir = next(committed.glob("with_aux_seed0_*"))
    (run,) = [r for r in expand(load_experiment("g1", budget="cpu"))
              if r.variant == "with_aux" and r.seed == 0]
    assert run_dir.name.endswith(run.key)
    recorded = rundir.read_yaml(run_dir / "config.yaml")
    assert recorded["heads"] == run.resolved()["heads"]


def test_an_experiment_report_reads_lgt_heads_rows_else_the_runs_recorded_ones(tmp_path):
    from lgtransfer.analysis.report.heads_causal_k import FIGURE, causal_k_section

    assert causal_k_section(tmp_path) is None
    for s in range(3):  # recorded while training, in each run folder
        rundir.write_jsonl(tmp_path / f"with_aux_seed{s}" / "heads.jsonl",
                           [{"run": "r", "experiment": "g1", "seed": s, "task": "m",
                             "metric": "gap", "band": None, "layer": None, "head": None,
                             "value": 0.1, "step": 3500}]
                           + [{"run": "r", "experiment": "g1", "seed": s, **r}
                              for r in planted(s)])
    # `lgt heads` ran without the test: its rows have none, so the recorded ones are read
    rundir.write_jsonl(tmp_path / "heads" / "heads.jsonl", [{"run": "r", "metric": "gap"}])
    section = causal_k_section(tmp_path)
    assert section is not None and (tmp_path / FIGURE).is_file()
    assert list(section.tables[0]["seeds"]) == [3, 3]
    # where `lgt heads` measured it, its rows are the ones shown
    rundir.write_jsonl(tmp_path / "heads" / "heads.jsonl",
                       [{"run": "x", "experiment": "g1", "seed": 7, **r} for r in planted(7)])
    section = causal_k_section(tmp_path, tmp_path / "heads")
    assert list(section.tables[0]["seeds"]) == [1, 1]
    assert (tmp_path / "heads" / FIGURE).is_file()


def test_the_committed_pilot_tables_are_its_rows():
    """results/scaling-pilots/causal-k-x4: the two curve tables its README prints are the
    ones its committed rows give."""
    import json

    from lgtransfer.analysis.report.heads_causal_k import curve_table
    from lgtransfer.analysis.report.render import markdown_table

    pilot = Path(__file__).resolve().parents[1] / "results" / "scaling-pilots" / "causal-k-x4"
    by_run: dict[str, tuple] = {}
    for line in (pilot / "kcausal.jsonl").read_text().splitlines():
        r = json.loads(line)
        name = ("g1" if "g1" in r["experiment"] else "g5") + " x4"
        by_run.setdefault(r["run"], (name, r["seed"], []))[2].append(r)
    readme = (pilot / "README.md").read_text()
    for measure in ("acc", "tok"):
        assert markdown_table(curve_table(curves(by_run, measure), measure)) in readme, measure
