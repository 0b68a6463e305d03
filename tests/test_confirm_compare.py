"""The confirmatory claims beside the exploratory rows they repeat
(lgtransfer.analysis.report.confirm_compare)."""

import shutil
from pathlib import Path

import pytest

from lgtransfer.analysis.report import confirm_compare

CPU = Path(__file__).resolve().parents[1] / "results" / "cpu"


def test_the_committed_comparison_is_the_one_claims_md_gives():
    assert confirm_compare.main([str(CPU), "--check"]) == 0


@pytest.fixture
def tier(tmp_path):
    """The committed claims.md and registration, every confirmatory row made pending (as
    before its runs), so the tests below decide the rows they need whatever is committed."""
    shutil.copy(CPU / "registration-confirm.yaml", tmp_path / "registration-confirm.yaml")
    confirmatory, exploratory = (CPU / "claims.md").read_text().split("### Exploratory", 1)
    lines = confirmatory.splitlines()
    for i, line in enumerate(lines):
        cells = line.split(" | ")
        if len(cells) > 6 and line.startswith("| ") and not cells[0].startswith("| family"):
            lines[i] = " | ".join([*cells[:2], "no data (n = 0)", "0", "", "pending: fixture",
                                   *cells[6:]])
    (tmp_path / "claims.md").write_text("\n".join(lines) + "\n### Exploratory" + exploratory)
    return tmp_path


def decide(tier: Path, claim: str, verdict: str, mean: str = "+0.300", p: str = "0.004"):
    """Give the confirmatory row of `claim` a verdict, as the report writes a decided one."""
    path = tier / "claims.md"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = line.split(" | ")
        if len(cells) > 2 and cells[1] == claim:
            lines[i] = " | ".join([cells[0], claim, f"{mean} [+0.100, +0.500] (n = 10)", "10",
                                   p, verdict, *cells[6:]])
            break
    else:
        raise AssertionError(f"no row {claim}")
    path.write_text("\n".join(lines) + "\n")


def test_each_claim_meets_its_exploratory_row_and_says_whether_they_agree(tier):
    decide(tier, "g1 transfer", "yes")  # exploratory: yes
    decide(tier, "g2 transfer", "inconclusive")  # exploratory: yes (inconclusive at m 7)
    decide(tier, "g5 aux heads > random heads", "yes")  # not in the exploratory table
    decide(tier, "sharing heads (topk_jaccard high) transfers more", "no: below 0.1")
    rows = confirm_compare.compare(tier).set_index("claim")
    assert rows.loc["g1 transfer", "agree"] == "agree"
    assert rows.loc["g1 transfer", "seeds 10-19 (confirmatory)"] == "yes +0.30 (p 0.004, n 10)"
    assert rows.loc["g1 transfer", "seeds 0-9 (exploratory)"] == "yes +0.26 (p 0.0039, n 10)"
    assert rows.loc["g2 transfer", "agree"] == "disagree"
    assert rows.loc["g2 transfer", "seeds 0-9 (exploratory)"].endswith("at m 7: inconclusive)")
    assert rows.loc["g5 aux heads > random heads", "agree"] == "new claim"
    assert rows.loc["sharing heads (topk_jaccard high) transfers more", "agree"].startswith(
        "disagree (exploratory: rho over the union of runs; confirmatory: within experiments")
    assert rows.loc["g4 transfer", "agree"] == "pending"
    assert len(rows) == 29  # every registered claim, once
    text = confirm_compare.write(tier)
    assert "29 claims: 1 agree, 2 disagree, 1 new, 25 pending." in text


def test_a_folder_without_a_confirmatory_registration_is_one_line_and_writes_nothing(
        tmp_path, capsys):
    shutil.copy(CPU / "claims.md", tmp_path / "claims.md")
    assert confirm_compare.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no registration-confirm.yaml in" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.md"]
