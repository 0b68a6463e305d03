"""The confirmatory registration (issue 33): a family's m is the number of claims its
registration lists, whatever turns out n/a; the file is checked against the rules the code
applies; claims.md's confirmatory section uses only the registered seeds' runs; the across-run
test within experiments; the README's summary is the one generated from claims.md."""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lgtransfer.analysis import confirm, registration
from lgtransfer.analysis.report import readme_summary
from lgtransfer.analysis.signflip import sign_flip_p
from lgtransfer.analysis.stats import spearman
from lgtransfer.analysis.verdicts import (
    INCONCLUSIVE,
    REPRODUCES,
    not_applicable,
    settle,
    settle_fixed,
    transfer,
)
from lgtransfer.analysis.within import (
    design_check,
    orderings,
    smallest_p,
    within_experiments,
    within_rho,
)
from lgtransfer.cli import main
from lgtransfer.errors import UsageError
from lgtransfer.runtime import rundir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "data" / confirm.FILE
sys.path.insert(0, str(ROOT / "tests"))
from test_evidence import copy_run_files  # noqa: E402  (the evidence's own copying rule)


def gains_with_p(k: int) -> list[float]:
    """Ten per-seed gains whose exact sign-flip p is k / 1024 (k - 1 patterns beat them)."""
    d = [0.1 * (i + 1) for i in range(10)]
    for flip in range(10):  # flip the smallest values until the p is k / 1024
        if sign_flip_p(d) * 1024 >= k:
            break
        d[flip] = -d[flip]
    return d


def test_a_fixed_family_counts_an_n_a_claim_with_p_1():
    """The issue's G2: tested raw p 1/1024, 4/1024, 16/1024 and 0.25 in a family of 7 listed
    claims, three n/a. Dropping the n/a ones (m = 4) G2 reads yes (0.031); at the registered
    m = 7 it is 5 x 16/1024 = 0.078: inconclusive."""
    tested = [replace(transfer([0.3] * 10, 0.05), p_yes=k / 1024, family="groups")
              for k in (1, 4, 16)]
    tested.append(replace(transfer([0.3] * 10, 0.05), p_yes=0.25, family="groups"))
    dropped = [replace(not_applicable(transfer([0.0] * 3, 0.05), "did not learn"),
                       family="groups")] * 3
    g2_dropped = settle(tested + dropped)[2]
    assert g2_dropped.p_adj == pytest.approx(2 * 16 / 1024) and g2_dropped.outcome == REPRODUCES
    fixed = settle_fixed(tested + dropped)
    assert fixed[2].p_adj == pytest.approx(5 * 16 / 1024) and fixed[2].outcome == INCONCLUSIVE
    assert fixed[0].p_adj == pytest.approx(7 / 1024) and fixed[0].outcome == REPRODUCES
    assert fixed[4:] == dropped  # the n/a claims keep their place and outcome
    # a claim with no result at all (None) counts the same way
    assert settle_fixed(tested + [None] * 3)[2].p_adj == pytest.approx(5 * 16 / 1024)


def test_the_example_registration_and_the_draft_load():
    plan = confirm.load(EXAMPLE.parent)
    assert plan.seeds == [5, 6, 7, 8, 9] and plan.tier == "cpu" and plan.date == "2026-12-07"
    assert {f: len(c) for f, c in plan.families.items()} == {"groups": 2, "controls": 3,
                                                              "across": 1}
    c1 = plan.families["controls"][0]
    assert (c1.rows, c1.row, c1.says) == ("controls", "c1", "no transfer")
    assert plan.governs().seeds_for("g1") == [5, 6, 7, 8, 9]
    assert plan.governs().seeds_for("a1-both") is None and plan.governs().chosen == {}
    draft = confirm.parse(__import__("yaml").safe_load(
        (ROOT / "docs" / "registration-confirm.example.yaml").read_text()), EXAMPLE)
    assert {"groups", "reach", "controls", "ablations", "causal", "across",
            "tracking"} <= set(draft.families)
    assert confirm.load(ROOT / "tests") is None  # no file: no confirmatory section


@pytest.mark.parametrize("edit, says", [
    (lambda t: t.replace("threshold: 0.95", "threshold: 0.9"),
     "`rules.learned.threshold` is 0.9; the verdict code applies 0.95"),
    (lambda t: t.replace("seeds: [5, 6, 7, 8, 9]", "seeds: [5, 5]"), "`seeds` must be"),
    (lambda t: t.replace("why_tier: the test's tier\n", ""), "missing `why_tier`"),
    (lambda t: t.replace("name: g9 transfer", "name: g1 transfer"), "listed twice"),
    (lambda t: t.replace("uninformative (floor), pending", "pending"), "`rules.states`"),
    (lambda t: t.replace("alpha: 0.05", "alpha: [0.05"), "not valid YAML"),
    (lambda t: t.replace("lengths: 7-12, step: last}\n    claims:\n      - {name: g1",
                         "step: last}\n    claims:\n      - {name: g1"), "`statistic`"),
])
def test_a_malformed_registration_is_one_line(tmp_path, edit, says):
    (tmp_path / confirm.FILE).write_text(edit(EXAMPLE.read_text()))
    with pytest.raises(UsageError) as e:
        confirm.load(tmp_path)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(tmp_path / confirm.FILE))


def test_the_committed_registration_lists_m_per_family():
    """registration.yaml's families with one claim per item have an m; heads' items each
    stand for several claims and have none."""
    assert registration.listed_sizes(ROOT / "results" / "cpu") == {
        "groups": 7, "baselines": 2, "reach": 4, "controls": 4, "ablations": 6}


def test_smallest_p_of_a_within_experiment_design():
    assert orderings([0.0, 0.0, 0.1]) == 3 and orderings([0.1, 0.2, 0.3]) == 6
    assert smallest_p([[0.0, 0.0, 0.1], [0.1, 0.2]], draws=10_000) == pytest.approx(1 / 6)
    assert smallest_p([list(range(10))] * 2, draws=10_000) == pytest.approx(1 / 10_001)
    # two experiments of three runs, one tied pair each: 3 x 3 orderings, p >= 1/9
    assert "above alpha / m" in design_check([3, 3], [2, 2], 0.05, 1, 10_000, 2)
    assert "at least 3" in design_check([10, 10, 10], [10, 10, 0], 0.05, 2, 10_000, 3)
    assert design_check([10] * 4, [8] * 4, 0.05, 2, 10_000, 3) == ""


def test_the_across_run_test_within_experiments_ignores_differences_between_them():
    """Apart between experiments, opposite within: pooled rho is high, the primary test is
    not; an experiment whose gain does not vary is left out."""
    x = np.r_[np.arange(6), 10 + np.arange(6), [3.0, 4.0]]
    y = np.r_[5 - np.arange(6), 15 - np.arange(6), [0.0, 0.0]]
    exps = ["a"] * 6 + ["b"] * 6 + ["flat"] * 2
    r = within_experiments(x, y, exps, positive=True, draws=2000)
    assert r.pooled_rho > 0.5 and r.p > 0.5 and r.experiments == ["a", "b"] and r.runs == 12
    same = within_experiments(x, np.r_[np.arange(6), np.arange(6), [0.0, 0.0]], exps, True, 2000)
    assert same.p < 0.01 and same.rho > 0.4  # rho pooled over the two: the primary p is not
    assert within_experiments(-x, y, exps, positive=False, draws=2000).p == pytest.approx(r.p)


def test_the_within_experiment_rho_is_blind_to_differences_between_experiments():
    """Two experiments, no association inside either, apart in both the metric and the gain:
    a rho over their union is high, the registered effect (each one's rho, weighted) is 0."""
    x = np.r_[[0.0, 1, 2, 3], [10.0, 11, 12, 13]]
    y = np.r_[[1.0, 0, 0, 1], [5.0, 6, 6, 5]]
    r = within_experiments(x, y, ["a"] * 4 + ["b"] * 4, positive=True, draws=2000)
    assert spearman(x, y) > 0.6 and r.rho == pytest.approx(0.0) and r.p > 0.3
    # weighted by runs: an experiment of 6 perfectly ordered runs and one of 3 reversed
    x2, y2 = np.r_[np.arange(6.0), np.arange(3.0)], np.r_[np.arange(6.0), -np.arange(3.0)]
    assert within_rho(x2, y2, np.array(["a"] * 6 + ["b"] * 3)) == pytest.approx((6 - 3) / 9)


def test_the_frozen_code_is_checked_file_by_file(tmp_path):
    """`frozen` pins the code that applies the rules: a changed or missing file is thawed until
    a dated amendment re-freezes it; a malformed block is one line."""
    code = tmp_path / "src" / "rules.py"
    code.parent.mkdir()
    code.write_text("FLOOR = 0.02\n")
    block = f"frozen:\n  src/rules.py: {confirm.sha256_of(code)}\n  src/gone.py: {'f' * 64}\n"
    (tmp_path / confirm.FILE).write_text(EXAMPLE.read_text() + block)
    plan = confirm.load(tmp_path)
    assert confirm.thawed(plan, tmp_path) == ["src/gone.py"]
    code.write_text("FLOOR = 0.05\n")  # a rule changed after the registration
    assert confirm.thawed(plan, tmp_path) == ["src/gone.py", "src/rules.py"]
    amendment = ("amendments:\n  - date: 2026-12-09\n    change: the floor fixed\n"
                 f"    frozen: {{src/rules.py: {confirm.sha256_of(code)}}}\n")
    (tmp_path / confirm.FILE).write_text(EXAMPLE.read_text() + block + amendment)
    assert confirm.thawed(confirm.load(tmp_path), tmp_path) == ["src/gone.py"]
    (tmp_path / confirm.FILE).write_text(EXAMPLE.read_text() + confirm.freeze_block(ROOT))
    plan = confirm.load(tmp_path)  # the block the module prints: every file of CODE, as is
    assert set(plan.frozen) == set(confirm.CODE) and confirm.thawed(plan, ROOT) == []
    (tmp_path / confirm.FILE).write_text(EXAMPLE.read_text() + "frozen: {src/rules.py: abc}\n")
    with pytest.raises(UsageError, match="`frozen` must map each file's path to its sha256"):
        confirm.load(tmp_path)


@pytest.mark.parametrize("path", sorted((ROOT / "results").glob(f"*/{confirm.FILE}")),
                         ids=lambda p: p.parent.name)
def test_no_code_a_committed_registration_froze_has_changed(path):
    plan = confirm.load(path.parent)
    assert set(confirm.CODE) <= set(plan.frozen), "the registration must freeze confirm.CODE"
    assert confirm.thawed(plan, ROOT) == [], (
        f"changed since {path} froze them; a fix is a dated amendment with a `frozen` entry "
        "(docs/confirmatory.md)")


REGISTRATION = """registered: 2026-12-05
seeds:
  extended: [0, 1]
families:
  groups: {claims: [g1, g9], seeds: extended}
  controls: {claims: [c1 no transfer, g1 - c1], seeds: extended}
"""


def as_confirm_sweep(exp: Path, dst: Path, seeds: tuple[int, ...]) -> None:
    """Move the runs of `seeds` out of an experiment folder into `dst`, as `lgt run confirm`
    lays them out (RUNS/cpu/confirm/NAME, imported as results/cpu/confirm/NAME): the same
    experiment name under another config key (the confirmatory set's data seed and execution
    differ), each folder with its own index."""
    index = json.loads((exp / rundir.EXPERIMENT_INDEX).read_text())
    moved = [r for r in index["runs"] if any(f"_seed{s}_" in r for s in seeds)]
    dst.mkdir(parents=True)
    for name in moved:
        if "/" in name:  # another experiment's run (c1 lists g1's alone runs): moved with it
            continue
        shutil.move(exp / name, dst / name)
        manifest = json.loads((dst / name / rundir.MANIFEST).read_text())
        manifest["experiment_key"] = "c0nf1rm000"
        (dst / name / rundir.MANIFEST).write_text(json.dumps(manifest))
    kept = [r for r in index["runs"] if r not in moved]
    (exp / rundir.EXPERIMENT_INDEX).write_text(json.dumps({**index, "runs": kept}))
    (dst / rundir.EXPERIMENT_INDEX).write_text(json.dumps(
        {**index, "experiment_key": "c0nf1rm000", "runs": moved}))


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """G1 and C1's committed runs at seeds 0, 1, 5 and 6, registration.yaml at seeds 0-1 and
    the example confirmatory registration at 5-6, reported once."""
    out = tmp_path_factory.mktemp("confirm") / "cpu"
    for name in ("g1", "c1"):
        copy_run_files(ROOT / "results" / "cpu" / name, out / name)
        as_confirm_sweep(out / name, out / "confirm" / name, seeds=(5, 6))
    for run in out.glob("*/*_seed*"):  # seeds 0-1 and 5-6 only, to keep the test short
        if not any(f"_seed{s}_" in run.name for s in (0, 1, 5, 6)):
            shutil.rmtree(run)
    (out / "registration.yaml").write_text(REGISTRATION)
    (out / confirm.FILE).write_text(EXAMPLE.read_text().replace("[5, 6, 7, 8, 9]", "[5, 6]"))
    assert main(["report", str(out)]) == 0
    return out


def rows_of(suite: Path, heading: str) -> list[dict[str, str]]:
    found = dict(readme_summary.sections((suite / "claims.md").read_text()))
    return next(rows for h, rows in found.items() if h.startswith(heading))


def test_the_confirmatory_section_uses_only_its_seeds(suite):
    import pandas as pd

    gains = [pd.read_csv(suite / d / "per_seed.csv").set_index("seed").acc_past_main_gain
             for d in ("g1", "confirm/g1")]
    assert [sorted(g.index) for g in gains] == [[0, 1], [5, 6]]  # two configs of one name
    g1 = pd.concat(gains)
    raw = sign_flip_p(g1.loc[5:6].to_numpy())
    rows = {r["claim"]: r for r in rows_of(suite, "Confirmatory (seeds 5, 6, "
                                                  "registration-confirm.yaml of 2026-12-07)")}
    assert list(rows) == ["g1 transfer", "g9 transfer", "c1 no transfer", "g1 - c1", "g4 - c2",
                          "sharing heads transfers more"]
    across = rows["sharing heads transfers more"]  # G1's gain varies, C1's (all 0) does not
    assert across["verdict"].startswith("n/a: 1 experiments whose gain varies")
    assert "over the 2 runs of the 1 experiments whose gain varies (g1;" in across[
        "ours (mean [95 % t-interval])"]
    g1_row = rows["g1 transfer"]
    assert g1_row["n"] == "2" and g1_row["family"] == "groups (m = 2)"
    assert g1_row["p (Holm at m)"] == f"{min(1.0, 2 * raw):.3g}"  # Holm over [raw, 1]
    assert f"{g1.loc[5:6].mean():+.3f}" in g1_row["ours (mean [95 % t-interval])"]
    assert g1_row["follows"] == "registration-confirm.yaml (2026-12-07)"
    assert rows["g9 transfer"]["verdict"] == ("pending: no run of g9 at the registered seeds "
                                              "yet")
    assert rows["g9 transfer"]["p (Holm at m)"] == ""
    assert rows["c1 no transfer"]["p (Holm at m)"] == "counted as 1"
    explored = rows_of(suite, "Exploratory (seeds 0, 1, registration.yaml of 2026-12-05)")
    g1_explored = next(r for r in explored if r["experiment"] == "g1")
    assert "(n = 2)" in g1_explored["ours (mean [95 % t-interval] (n))"]
    assert f"{g1.loc[0:1].mean():+.3f}" in g1_explored["ours (mean [95 % t-interval] (n))"]
    # g9 is listed but never ran: its family's m at the listing is 2, not the 1 tested
    assert "; m = 2: " in g1_explored["p (Holm)"]


def test_the_readme_summary_of_a_confirmed_tier_shows_the_confirmatory_verdicts(suite):
    text = readme_summary.summary(suite, "results/cpu")
    assert text.startswith("`cpu` tier, **confirmatory** (seeds 5, 6, registration-confirm.yaml")
    # two seeds cannot pass (p >= 1/4): undecided claims by name, state by state
    assert "\n| groups (m = 2) | inconclusive: g1 transfer; pending: g9 transfer |" in text
    # while some claims wait for their runs, the README says how many and where the rest is
    pending = sum(r["verdict"].startswith("pending") for r in rows_of(suite, "Confirmatory"))
    assert 0 < pending < len(rows_of(suite, "Confirmatory"))
    assert (f"\n\n{pending} of {len(rows_of(suite, 'Confirmatory'))} claims pending until "
            "their runs are in; meanwhile the exploratory rows (seeds 0, 1, registration.yaml "
            "of 2026-12-05) stand in [claims.md](results/cpu/claims.md).") in text


def test_while_every_confirmatory_claim_is_pending_the_readme_keeps_the_exploratory_rows(
        suite, tmp_path):
    claims = (suite / "claims.md").read_text()
    confirmed = readme_summary.summary(suite, "results/cpu")
    # the same claims.md before any confirmatory run: every confirmatory verdict pending
    head, rest = claims.split("### Exploratory", 1)
    pending = re.sub(r"\| (inconclusive|yes|no|n/a|uninformative \(floor\))[^|]* \| (regis)",
                     r"| pending: no run yet | \2", head)
    assert pending != head and "| inconclusive" not in pending
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "claims.md").write_text(pending + "### Exploratory" + rest)
    text = readme_summary.summary(tmp_path / "cpu", "results/cpu")
    assert text != confirmed and text.startswith("`cpu` tier, **exploratory** (seeds")
    n = sum(1 for r in rows_of(suite, "Confirmatory"))
    assert text.endswith(f"): {n} claims registered, every one pending until its runs are in; "
                         "the exploratory rows above stand.")
    assert "\n\nConfirmatory (seeds 5, 6, registration-confirm.yaml of " in text


def test_the_across_claim_waits_for_every_registered_experiment(suite, tmp_path):
    """A registered experiment with no run in yet, or one of whose listed with-aux runs is
    missing, keeps the across-run claim pending (not n/a on the runs that happen to be in)."""
    out = tmp_path / "cpu"
    shutil.copytree(suite, out)
    text = (out / confirm.FILE).read_text()
    (out / confirm.FILE).write_text(text.replace("experiments: [g1, c1]",
                                                 "experiments: [g1, c1, g4]"))
    assert main(["report", str(out)]) == 0
    row = {r["claim"]: r for r in rows_of(out, "Confirmatory")}["sharing heads transfers more"]
    assert row["verdict"] == ("pending: not all registered with-aux runs of g4 are in with head "
                              "metrics yet"), row
    (out / confirm.FILE).write_text(text)  # g4 unregistered again; one G1 run's heads gone
    next(out.glob("confirm/g1/with_aux_seed5_*/heads.jsonl")).unlink()
    assert main(["report", str(out)]) == 0
    row = {r["claim"]: r for r in rows_of(out, "Confirmatory")}["sharing heads transfers more"]
    assert row["verdict"].startswith("pending: not all registered with-aux runs of g1 "), row


def test_a_malformed_confirmatory_registration_stops_lgt_report(suite, tmp_path, capsys):
    bad = tmp_path / "cpu"
    shutil.copytree(suite, bad)
    (bad / "claims.md").unlink()
    (bad / confirm.FILE).write_text(EXAMPLE.read_text().replace("floor: 0.02", "floor: 0.05"))
    capsys.readouterr()
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`rules.floor` is 0.05; the verdict code applies 0.02" in err
    assert not (bad / "claims.md").exists()  # nothing written


CAUSAL = """causal_over_k: {k: 2, family: causal-k, claims: [g1], measure: tok}
"""
CAUSAL_FAMILY = """  causal:
    statistic: {what: drop(aux top-k) - drop(random k) per seed, lengths: 7-12, step: last}
    claims:
      - {name: g1 aux heads > random heads, rows: causal-k, row: g1}
"""


def test_the_registered_k_of_the_causal_test_is_a_confirmatory_row(suite, tmp_path):
    """`causal_over_k` in the confirmatory registration: the curve over k recorded by the
    confirmatory runs (planted: at k = 2 top-k ablation zeroes exact match, not token
    accuracy) decides the claim naming its row in the registered measure, at the registered
    seeds only; its figure is the confirmatory one, its table has both measures' curves."""
    from test_heads_causal import planted, with_token_rows

    from lgtransfer.analysis.report.confirm_claims import CAUSAL_FIGURE

    out = tmp_path / "cpu"
    shutil.copytree(suite, out)
    for run in [*out.glob("g1/with_aux_seed*"), *out.glob("confirm/g1/with_aux_seed*")]:
        seed = int(run.name.split("_seed")[1].split("_")[0])
        rows = [{"run": run.relative_to(out).as_posix(), "experiment": "g1", "seed": seed, **r}
                for r in with_token_rows(planted(seed, floor_k2=True))]
        rundir.append_jsonl(run / "heads.jsonl", rows)
    (out / confirm.FILE).write_text(CAUSAL + EXAMPLE.read_text().replace(
        "[5, 6, 7, 8, 9]", "[5, 6]") + CAUSAL_FAMILY)
    assert main(["report", str(out)]) == 0
    rows = {r["claim"]: r for r in rows_of(out, "Confirmatory")}
    row = rows["g1 aux heads > random heads"]
    assert row["family"] == "causal (m = 1)" and row["n"] == "2", row
    assert row["verdict"].startswith("inconclusive"), row  # two seeds: p >= 1/4
    assert "at k = 2, over the band, in token accuracy" in row["ours (mean [95 % t-interval])"]
    assert (out / CAUSAL_FIGURE).is_file()
    report = (out / "report.md").read_text()
    assert "| g1 | exact match | 2 | 2 |" in report and "| g1 | token accuracy | 2 | 2 |" in report
    exploratory = dict(readme_summary.sections((out / "claims.md").read_text()))
    assert not any(r.get("figure", "").startswith("Causal") for h, rs in exploratory.items()
                   if not h.startswith("Confirmatory") for r in rs)  # seeds 0-1: none run
    # a claim naming a causal row the block does not list is refused before any write
    (out / confirm.FILE).write_text(CAUSAL.replace("[g1]", "[g5]") + EXAMPLE.read_text()
                                    + CAUSAL_FAMILY)
    with pytest.raises(UsageError, match="does not list"):
        confirm.load(out)
    (out / confirm.FILE).write_text(CAUSAL.replace("tok", "logits") + EXAMPLE.read_text())
    with pytest.raises(UsageError, match="measure` must be one of acc, tok"):
        confirm.load(out)


def test_the_readme_summary_is_the_one_generated_from_claims_md(tmp_path):
    readme = (ROOT / "README.md").read_text()
    want = readme_summary.summary(ROOT / "results" / "cpu", "results/cpu")
    assert readme_summary.block(readme) == want, (
        "README's summary differs from claims.md: python -m "
        "lgtransfer.analysis.report.readme_summary results/cpu --readme README.md")
    # and it would notice a change: a verdict of claims.md turned
    (tmp_path / "cpu").mkdir()
    claims = (ROOT / "results" / "cpu" / "claims.md").read_text()
    (tmp_path / "cpu" / "claims.md").write_text(claims.replace("| 0.0117", "| 0.0667", 1))
    assert readme_summary.summary(tmp_path / "cpu", "results/cpu") != want
    assert readme_summary.main([str(tmp_path / "cpu"), "--readme", str(ROOT / "README.md"),
                                "--check"]) == 1


def test_the_readme_summary_of_a_tier_with_no_verdicts_says_so(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "claims.md").write_text("No verdicts: no complete runs.\n")
    assert readme_summary.summary(tmp_path / "cpu", "results/cpu") == (
        "`cpu` tier: no verdicts yet ([claims.md](results/cpu/claims.md)).")


def test_the_readme_summary_keeps_a_line_for_each_pretrained_family_registered_on_its_own(
        tmp_path):
    # issue 34: the SmolLM2 rows sit in the exploratory section's table (their own family and
    # registration), so a confirmatory summary must still say what came out of them
    head = ("| family | claim | ours (mean [95 % t-interval]) | n | p (Holm at m) | verdict | "
            "follows |\n|---|---|---|---|---|---|---|\n| groups (m = 1) | g1 transfer | "
            "gain; +0.270 [+0.226, +0.314] (n = 10) | 10 | 0.00195 | yes | registration |\n")
    cols = ("| figure | experiment | paper | ours (mean [95 % t-interval] (n)) | p (Holm) | "
            "verdict |\n|---|---|---|---|---|---|\n")
    smol = [("(a) SmolLM2-135M extrapolates further", "+0.024 (n = 8)", "", "n/a: scratch"),
            ("(b) SmolLM2-135M learns its range faster", "+0.863 [0.8, 0.9] (n = 8)", "0.0156",
             "yes"),
            ("(d) the main task transfers", "-0.010 [-0.02, 0.0] (n = 8)", "0.992 (opposite "
             "0.0156)", "no: below 0.05")]
    rows = "".join(f"| Pretrained | smollm2-g1 | {paper} | {ours} | {p} | {verdict} |\n"
                   for paper, ours, p, verdict in smol)
    rows += ("| Pretrained | ladder-quick-long | later pretraining learns faster (amendment 2, "
             "4000 steps) | no data (n = 0) |  | not run: 35 runs |\n")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "claims.md").write_text(
        f"### Confirmatory (seeds 10–19)\n\n{head}\n### Exploratory (seeds 0–9)\n\n{cols}{rows}")
    text = readme_summary.summary(tmp_path / "cpu", "results/cpu")
    assert ("\n| SmolLM2-135M vs scratch, registration-smollm2.yaml (m = 3) | (b) **yes** +0.86 "
            "(p 0.016, n 8); (d) **no** -0.01 (p 0.016, n 8); n/a: (a) |") in text
    assert "\n| pretraining ladder, amendment 2 (m = 1) | not run: learns faster |" in text
    assert "\n| groups (m = 1) | g1 transfer **yes** +0.27 (p 0.0019, n 10) |" in text
