"""Head analysis: ablation hooks on tiny models (MHA and grouped-query), the attention
difference, the statistics on known inputs, and `lgt heads` end to end on a tiny trained run."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import LlamaForCausalLM

from lgtransfer.analysis.heads_stats import causal_interval, summarize_reuse
from lgtransfer.analysis.stats import (
    bootstrap_ci,
    correlations,
    jaccard,
    mean_ci,
    pearson,
    rankdata,
    spearman,
    top_k,
)
from lgtransfer.cli import main
from lgtransfer.config import ModelConfig
from lgtransfer.data.mixture import to_sequences
from lgtransfer.engine.heads.measure import (
    ablated,
    ablation_correct,
    aligned_pair,
    attention_difference,
    capture_head_outputs,
    head_means,
    head_shape,
    importance_map,
    same_prompts,
    single_head_masks,
)
from lgtransfer.engine.model import hf_config, load_model
from lgtransfer.runtime import rundir
from lgtransfer.tasks import get_task
from lgtransfer.tasks import tokenizer as tok

CPU = torch.device("cpu")


def tiny_model(n_kv_heads: int = 4, seed: int = 0) -> LlamaForCausalLM:
    """2 layers, 4 query heads of 8 dims (width 32); grouped-query when n_kv_heads < 4."""
    cfg = hf_config(ModelConfig(n_layer=2, n_head=4, d_model=32, d_ff=64))
    cfg.num_key_value_heads = n_kv_heads
    torch.manual_seed(seed)
    return LlamaForCausalLM._from_config(cfg, attn_implementation="eager").eval()


def copy_batch(n: int, length: int = 4, task: str = "copy", seed: int = 0):
    return to_sequences(get_task(task).batch(np.random.default_rng(seed), np.full(n, length)), 0)


def prompt_of(row: np.ndarray) -> list[int]:
    """The prompt of a sequence `[BOS] 4 markers prompt 4 markers target [EOS]`."""
    markers = np.flatnonzero(row >= tok.MARKER_OFFSET)
    return row[markers[3] + 1 : markers[4]].tolist()


def outputs(model, tokens):
    with capture_head_outputs(model) as outs, torch.no_grad():
        logits = model(input_ids=tokens).logits
    return [o.view(*o.shape[:2], 4, 8) for o in outs], logits  # (B, T, H, d) per layer


# ----------------------------------------------------------------------------- ablation


@pytest.mark.parametrize("n_kv_heads", [4, 1], ids=["mha", "gqa"])
@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_ablating_a_head_changes_exactly_that_head(n_kv_heads, ablation):
    model = tiny_model(n_kv_heads)
    assert head_shape(model) == (2, 4, 8)
    batch = copy_batch(6)
    tokens = torch.from_numpy(batch.tokens)
    means = head_means(model, batch, CPU) if ablation == "mean" else None
    clean, _ = outputs(model, tokens)
    masks = torch.zeros(6, 2, 4, dtype=torch.bool)
    masks[:3, 1, 2] = True  # rows 0-2: layer 1, head 2 (shares its KV head with others in GQA)
    with ablated(model, masks, means):
        hit, _ = outputs(model, tokens)
    torch.testing.assert_close(hit[0], clean[0], rtol=0, atol=0)  # an earlier layer: untouched
    others = [0, 1, 3]
    torch.testing.assert_close(hit[1][:, :, others], clean[1][:, :, others], rtol=0, atol=0)
    torch.testing.assert_close(hit[1][3:], clean[1][3:], rtol=0, atol=0)  # rows not ablated
    expected = (torch.zeros_like(clean[1][:3, :, 2]) if means is None
                else means[1].view(-1, 4, 8)[None, :, 2].expand(3, -1, -1))
    torch.testing.assert_close(hit[1][:3, :, 2], expected)
    assert not torch.allclose(hit[1][:3, :, 2], clean[1][:3, :, 2])


def test_mean_ablation_of_a_one_example_batch_is_a_no_op():
    model = tiny_model()
    batch = copy_batch(1)
    tokens = torch.from_numpy(batch.tokens)
    _, clean = outputs(model, tokens)
    with ablated(model, torch.ones(1, 2, 4, dtype=torch.bool), head_means(model, batch, CPU)):
        _, every_head_ablated = outputs(model, tokens)
    torch.testing.assert_close(every_head_ablated, clean, rtol=1e-5, atol=1e-5)
    correct = ablation_correct(model, batch, single_head_masks(2, 4), "mean", CPU)
    assert (correct == correct[0]).all()


def test_batched_ablations_equal_one_at_a_time():
    """Many conditions per pass (and chunks cut across conditions) change nothing."""
    model = tiny_model(n_kv_heads=2)
    batch = copy_batch(7)
    masks = single_head_masks(2, 4)
    together = ablation_correct(model, batch, masks, "mean", CPU)
    apart = np.concatenate([ablation_correct(model, batch, masks[i : i + 1], "mean", CPU,
                                             max_tokens=40) for i in range(len(masks))])
    assert together.shape == (9, 7) and np.array_equal(together, apart)


# ----------------------------------------------------------------------------- attention


def test_attention_difference_of_a_task_with_itself_is_zero():
    model = tiny_model()
    group = ["copy", "reverse"]
    same = copy_batch(5)
    assert np.array_equal(attention_difference(model, same, same, CPU), np.zeros((2, 4)))
    a, b = aligned_pair(group, "copy", "reverse", 5, 8, seed=0)
    diff = attention_difference(model, a, b, CPU, max_tokens=64)  # several chunks
    assert diff.shape == (2, 4) and (diff > 0).all() and (diff <= 2).all()
    # by hand for one head: mean over the shared rows of the L1 distance of attention rows
    with torch.no_grad():
        att_a = model(input_ids=torch.from_numpy(a.tokens), output_attentions=True).attentions
        att_b = model(input_ids=torch.from_numpy(b.tokens), output_attentions=True).attentions
    by_hand = (att_a[1][:, 3] - att_b[1][:, 3]).abs().sum(-1).mean()  # equal lengths here
    assert diff[1, 3] == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.parametrize("task_a,task_b,length", [
    ("reverse_add", "no_carry", 6), ("no_carry", "carry_only", 6),
    ("capitalize_reverse", "capitalize", 7), ("copy", "reverse", 7),
    ("copy", "mqar", 4), ("dfs_trace", "shortest_path", 9),
])
def test_aligned_pairs_share_their_prompts(task_a, task_b, length):
    a, b = aligned_pair([task_a, task_b], task_a, task_b, length, 64, seed=3)
    assert len(a) == len(b) >= 32  # MQAR at 4 redraws a few strings: those pairs are dropped
    assert [prompt_of(row) for row in a.tokens] == [prompt_of(row) for row in b.tokens]
    assert (a.task_index == 0).all() and (b.task_index == 1).all()  # each keeps its marker


def test_add_and_subtract_are_aligned_on_their_operands():
    add, sub = (get_task(t).batch(np.random.default_rng(5), np.full(50, 6))
                for t in ("reverse_add", "reverse_sub"))
    assert not same_prompts(add, sub).any()  # the operator differs
    for x, y in zip(add.examples(), sub.examples(), strict=True):
        assert sorted(x.prompt[:-1].split("+")) == sorted(y.prompt[:-1].split("-"))
    a, b = aligned_pair(["reverse_add", "reverse_sub"], "reverse_add", "reverse_sub", 6, 50, 0)
    assert len(a) == len(b) == 50 and np.array_equal(a.seq_len, b.seq_len)


# ----------------------------------------------------------------------------- statistics


def test_rank_correlations_on_known_inputs():
    assert rankdata([3, 1, 2, 2]).tolist() == [4.0, 1.0, 2.5, 2.5]
    x = np.arange(1, 9)
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)
    y = [2, 4, 5, 4, 5]
    assert pearson([1, 2, 3, 4, 5], y) == pytest.approx(6 / math.sqrt(60))
    assert spearman([1, 2, 3, 4, 5], y) == pytest.approx(7 / math.sqrt(90))  # ties averaged
    assert math.isnan(pearson([1, 2, 3], [0.1, 0.1, 0.1]))  # constant: undefined
    assert math.isnan(pearson([1], [2]))


def test_bootstrap_intervals_contain_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(scale=0.5, size=40)
    for stat in (spearman, pearson):
        lo, hi = bootstrap_ci(x, y, stat)
        assert lo <= stat(x, y) <= hi and hi - lo < 0.5
    c = correlations(x, -y)
    assert c["n"] == 40 and c["spearman"]["ci"][0] <= c["spearman"]["value"] <= 0
    assert all(math.isnan(v) for v in bootstrap_ci([1, 2, 3], [3, 2, 1], pearson))  # too few
    assert correlations([1, 2], [2, 1])["pearson"]["value"] is None  # 2 points: always +-1
    # an undefined gap (nan) drops its pair instead of turning every statistic into nan
    with_nan = correlations(np.append(x, 0.3), np.append(-y, math.nan))
    assert with_nan["n"] == 40 and with_nan["dropped"] == 1
    assert with_nan["spearman"] == c["spearman"]
    lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert 1 <= lo <= 2.5 <= hi <= 4


def test_top_k_overlap_and_causal_interval():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5 and jaccard(set(), set()) == 1.0
    assert top_k(np.array([[0.1, 0.5], [0.3, -1.0]]), 2) == {1, 2}
    # clean, top-k, 3 random draws: the random ablations keep 1.0, the top-k one drops to 0.25
    correct = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    lo, hi = causal_interval(correct.astype(float), 500)
    assert 0 <= lo <= 0.75 <= hi <= 1


def test_summary_from_known_rows():
    rows = []
    for run, sign in (("a", 1), ("b", -1), ("c", 1)):
        for step in range(1, 7):
            gap = step / 10
            base = {"run": run, "step": step, "band": "in_dist", "layer": None, "head": None}
            rows.append({**base, "task": "m", "metric": "gap", "band": None, "value": gap})
            rows.append({**base, "task": "m|x", "metric": "attn_diff", "value": sign * gap**2})
            rows.append({**base, "task": "m|y", "metric": "attn_diff", "value": sign * gap**2})
            rows.append({**base, "task": "m", "metric": "causal_extra_drop", "value": 0.1})
            rows.append({**base, "task": "m", "metric": "accuracy", "value": float(step > 2)})
    s = summarize_reuse(rows, n_boot=200)
    assert s["runs"]["a"]["learned_steps"] == [3, 4, 5, 6]
    learned = s["runs"]["b"]["over_learned_checkpoints"]["attn_diff/in_dist"]
    assert learned["n"] == 4 and learned["spearman"]["value"] == -1.0
    assert s["pooled_over_learned_checkpoints"]["attn_diff/in_dist"]["n"] == 12
    assert s["runs"]["a"]["over_checkpoints"]["attn_diff/in_dist"]["spearman"]["value"] == 1.0
    assert s["runs"]["b"]["over_checkpoints"]["attn_diff/in_dist"]["spearman"]["value"] == -1.0
    pooled = s["pooled_over_checkpoints"]["attn_diff/in_dist"]
    assert pooled["n"] == 18 and pooled["spearman"]["ci"][0] is not None
    assert s["over_runs"]["attn_diff/in_dist"]["n"] == 3
    assert s["causal_over_runs"]["in_dist"]["mean_extra_drop"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- end to end

TINY_RUN = """\
group: [{task: copy, role: main, max_length: 4}, {task: reverse, role: aux, max_length: 6}]
model: {n_layer: 2, n_head: 2, d_model: 32, d_ff: 64}
train: {steps: 400, batch_size: 32, lr: 0.003, eval_every: 100, checkpoint_every: 100}
eval: {n: 24, max_length: 7}
heads: {record: true, every: 200, n: 16, k: 2, random_draws: 3, causal_ks: [1, 2, 3],
        causal_draws: 4, causal_n: 8}
seeds: [0]
baseline: false
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny copy + reverse run with 4 checkpoints (about 15 s on one core), and beside it a
    main-only run made from it by hand (the analysis must skip it)."""
    root = tmp_path_factory.mktemp("heads")
    (root / "tiny.yaml").write_text(TINY_RUN)
    assert main(["run", str(root / "tiny.yaml"), "--out", str(root / "runs"), "--quiet",
                 "--executor", "inline"]) == 0
    exp = root / "runs" / "cpu" / "tiny"  # the default budget here
    run = next(exp.glob("with_aux_*"))
    alone = exp / "main_only_seed0_fake"
    alone.mkdir()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.update(variant="main_only", group=config["group"][:1])
    rundir.write_yaml(alone / "config.yaml", config)
    rundir.write_json(alone / "manifest.json", {"status": "complete", "experiment_key": "other"})
    shutil.copytree(run / "checkpoints", alone / "checkpoints")
    return exp, run


def test_forced_zero_head_has_zero_importance(tiny_run):
    _, run = tiny_run
    model = load_model(run / "checkpoints" / "step-400", attn_implementation="eager")
    batch = copy_batch(24, length=4)
    acc, imp = importance_map(model, batch, "mean", CPU)
    assert acc > 0.5
    layer, head = np.unravel_index(np.argmin(np.abs(imp)), imp.shape)  # keep the model working
    d = head_shape(model)[2]
    with torch.no_grad():
        model.model.layers[layer].self_attn.o_proj.weight[:, head * d : (head + 1) * d] = 0
    for ablation in ("mean", "zero"):
        acc, imp = importance_map(model, batch, ablation, CPU)
        assert acc > 0 and imp[layer, head] == 0, (ablation, imp)
        assert np.abs(imp).max() > 0  # the other heads still matter


def test_lgt_heads_end_to_end(tiny_run, capsys):
    exp, run = tiny_run
    assert main(["heads", str(exp), "--n", "16", "--k", "2", "--random-draws", "3",
                 "--quiet"]) == 0
    assert "heads:" in capsys.readouterr().out
    out = exp / "heads"
    for name in ("heads.jsonl", "summary.json", "heads.md", "heads.html", "heads_maps.png",
                 "heads_training.png", "heads_scatter.png", "heads_causal.png"):
        assert (out / name).is_file(), name
    rows = rundir.read_jsonl(out / "heads.jsonl")
    keys = {"run", "experiment", "variant", "seed", "step", "task", "metric", "band", "layer",
            "head", "value"}
    assert all(keys <= set(r) for r in rows)
    assert {r["variant"] for r in rows} == {"with_aux"}  # the main-only run is skipped
    assert {r["step"] for r in rows} == {100, 200, 300, 400}
    per_head = [r for r in rows if r["metric"] == "importance" and r["layer"] is not None
                and r["task"] == "copy" and r["band"] == "in_dist" and r["step"] == 400]
    assert sorted((r["layer"], r["head"]) for r in per_head) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    metrics = {r["metric"] for r in rows}
    assert {"gap", "accuracy", "importance", "importance_diff", "attn_diff", "topk_jaccard",
            "importance_spearman", "causal_extra_drop", "causal_topk_head"} <= metrics
    # the gap at each checkpoint is the one eval.jsonl gives
    gaps = {r["step"]: r["value"] for r in rows if r["metric"] == "gap"}
    assert all(0 <= g <= 1 for g in gaps.values())
    summary = json.loads((out / "summary.json").read_text())
    (name, facts), = summary["runs"].items()
    assert name == f"{run.name}" or name.endswith(run.name)
    corr = facts["over_checkpoints"]["importance_diff/in_dist"]
    assert corr["n"] == 4 and set(corr) == {"n", "dropped", "spearman", "pearson"}
    assert set(facts["causal"]) == {"in_dist", "transfer"}
    assert set(facts["causal"]["in_dist"]) >= {"clean_acc", "topk_acc", "random_acc",
                                              "extra_drop", "ci"}
    assert len(facts["causal_topk_heads"]) == 2
    assert set(facts["topk_overlap"]["copy|reverse"]) == {"in_dist", "transfer"}
    # the experiment report gains the heads section
    assert main(["report", str(exp)]) == 0
    report = (exp / "report.md").read_text()
    assert "## Attention heads" in report and "heads/heads_maps.png" in report
    # and the causal test over k the run recorded while training (`lgt heads` ran without it)
    assert "## Causal test over k" in report and (exp / "fig_causal_k.png").is_file()


def test_lgt_heads_on_one_run_with_the_last_checkpoint(tiny_run, tmp_path):
    _, run = tiny_run
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("heads"))
    assert main(["heads", str(copy), "--n", "8", "--steps", "last", "--ablation", "zero",
                 "--random-draws", "2", "--in-dist", "3,4", "--transfer", "5", "--quiet"]) == 0
    rows = rundir.read_jsonl(copy / "heads" / "heads.jsonl")
    assert {r["step"] for r in rows} == {400}
    summary = json.loads((copy / "heads" / "summary.json").read_text())
    assert summary["bands"][copy.name] == {"in_dist": [3, 4], "transfer": [5]}


@pytest.mark.parametrize("argv,message", [
    (["heads", "/no/such/folder"], "no such folder"),
    (["heads", "{run}", "--ablation", "half"], "--ablation must be one of"),
    (["heads", "{run}", "--k", "0"], "--k must be at least 1"),
    (["heads", "{run}", "--transfer", "5,x"], "comma-separated lengths"),
    (["heads", "{bare}"], "no checkpoints folder"),
    (["heads", "{main_only}"], "no run with an auxiliary task"),
    (["heads", "{run}", "--causal-ks", "0,2"], "--causal-ks must be positive"),
    (["heads", "{run}", "--causal-ks", "1,two"], "--causal-ks expects comma-separated"),
    (["heads", "{run}", "--causal-ks", "1", "--causal-band", "all"],
     "--causal-band must be one of"),
    (["heads", "{run}", "--causal-ks", "1", "--causal-draws", "0"],
     "--causal-draws must be at least 1"),
])
def test_lgt_heads_bad_input_exits_2_with_one_line(argv, message, tiny_run, tmp_path, capsys):
    exp, run = tiny_run
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.yaml", bare / "config.yaml")
    main_only = next(exp.glob("main_only_*"))
    argv = [a.format(run=run, bare=bare, main_only=main_only) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_no_heads_section_before_the_analysis(tmp_path):
    from lgtransfer.analysis.report.heads_plots import heads_section

    assert heads_section(tmp_path) is None


def test_gap_measured_for_a_checkpoint_equals_the_logged_one(tiny_run):
    """A checkpoint whose step eval.jsonl lacks gets its gap measured on the same eval sets."""
    from lgtransfer.data.mixture import Mixture
    from lgtransfer.engine.heads.analysis import checkpoint_gap, find_runs, gaps_from_eval

    _, run_dir = tiny_run
    (run,) = find_runs(run_dir)
    model = load_model(run.checkpoints[400], attn_implementation="eager")
    mixture = Mixture(run.group, run.eval_n, run.eval_seed)
    logged = gaps_from_eval(run)
    assert set(logged) == {100, 200, 300, 400}
    assert checkpoint_gap(model, run, mixture, CPU) == pytest.approx(logged[400], abs=1e-9)


# ----------------------------------------------------------------------------- recorded in training


def test_recording_heads_leaves_the_trained_run_unchanged(tiny_run, tmp_path):
    """The same run with recording off: eval.jsonl bit for bit, and no heads.jsonl."""
    _, run = tiny_run
    (tmp_path / "tiny.yaml").write_text(TINY_RUN.replace("record: true", "record: false"))
    assert main(["run", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "runs"),
                 "--quiet", "--executor", "inline"]) == 0
    (off,) = (tmp_path / "runs" / "cpu" / "tiny").glob("with_aux_*")
    assert off.name == run.name  # recording is not part of the run's key
    assert (off / "eval.jsonl").read_text() == (run / "eval.jsonl").read_text()
    assert not (off / "heads.jsonl").exists()


def test_recorded_rows_equal_those_measured_on_the_checkpoint(tiny_run, tmp_path):
    """At each measurement step (every 200 and the last), the recorded importance maps and
    gap are what `lgt heads` measures on that step's checkpoint with the same options; with
    the checkpoints gone, `lgt heads` reads the recorded rows."""
    _, run = tiny_run
    recorded = rundir.read_jsonl(run / "heads.jsonl")
    assert {r["step"] for r in recorded} == {200, 400}
    causal = {r["step"] for r in recorded if r["metric"].startswith(("causal", "kcausal"))}
    assert causal == {400}  # the causal tests run once, at the last step
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("heads"))
    assert main(["heads", str(copy), "--n", "16", "--k", "2", "--random-draws", "3",
                 "--causal-ks", "1,2,3", "--causal-draws", "4", "--causal-n", "8",
                 "--quiet"]) == 0
    measured = rundir.read_jsonl(copy / "heads" / "heads.jsonl")
    # the causal test over k: the same heads, draws and accuracies, at the last step only
    curve = [{k: v for k, v in r.items() if k != "run"} for r in measured
             if r["metric"].startswith("kcausal")]
    assert {r["step"] for r in curve} == {400} and {r["k"] for r in curve} >= {1, 2, 3}
    assert curve == [{k: v for k, v in r.items() if k != "run"} for r in recorded
                     if r["metric"].startswith("kcausal")]
    assert "## Causal test over k" in (copy / "heads" / "heads.md").read_text()
    assert (copy / "heads" / "fig_causal_k.png").is_file()

    def values(rows, step, metric):
        return {(r["task"], r["band"], r["layer"], r["head"]): r["value"] for r in rows
                if r["step"] == step and r["metric"] == metric}

    for step in (200, 400):
        for metric in ("gap", "importance", "importance_diff", "attn_diff", "topk_jaccard"):
            want, got = values(measured, step, metric), values(recorded, step, metric)
            assert want and want.keys() == got.keys(), metric
            assert all(got[k] == pytest.approx(want[k], abs=1e-6) for k in want), metric
    shutil.rmtree(copy / "checkpoints")
    shutil.rmtree(copy / "heads")
    assert main(["heads", str(copy), "--quiet"]) == 0
    read_back = rundir.read_jsonl(copy / "heads" / "heads.jsonl")
    assert read_back == [{**r, "run": copy.name} for r in recorded]


def test_main_only_runs_record_no_heads_and_heads_at_picks_the_steps(tmp_path):
    """`heads.at` replaces `every` (200 here, never reached); the last step is always
    measured."""
    (tmp_path / "alone.yaml").write_text(TINY_RUN.replace("baseline: false", "baseline: true")
                                         .replace("steps: 400", "steps: 20")
                                         .replace("every: 200,", "every: 200, at: [5, 12],"))
    assert main(["run", str(tmp_path / "alone.yaml"), "--out", str(tmp_path / "runs"),
                 "--quiet", "--executor", "inline"]) == 0
    exp = tmp_path / "runs" / "cpu" / "alone"
    assert [d.parent.name.split("_seed")[0] for d in exp.glob("*/heads.jsonl")] == ["with_aux"]
    (recorded,) = exp.glob("with_aux_*/heads.jsonl")
    assert {r["step"] for r in rundir.read_jsonl(recorded)} == {5, 12, 20}


def test_heads_claims_correlate_each_run_over_its_counted_points(tmp_path):
    """A run's rho is Spearman of the metric with the gap over the points where the main task
    works in distribution (>= 0.9), and none with fewer than 4 such points."""
    import pandas as pd

    from lgtransfer.analysis.report.heads_claims import per_run

    def rows(run, accs, diffs, gaps):
        out = []
        for step, (acc, diff, gap) in enumerate(zip(accs, diffs, gaps, strict=True), start=1):
            base = {"run": run, "step": step, "layer": None, "head": None}
            out += [{**base, "task": "m", "metric": "gap", "band": None, "value": gap},
                    {**base, "task": "m", "metric": "accuracy", "band": "in_dist", "value": acc},
                    {**base, "task": "m|a", "metric": "importance_diff", "band": "in_dist",
                     "value": diff},
                    {**base, "task": "m|a", "metric": "attn_diff", "band": "in_dist",
                     "value": -diff}]
        return out

    accs = [0.1, 0.95, 0.95, 0.97, 1.0, 1.0]  # the first point does not count
    diffs = [9.0, 0.1, 0.2, 0.3, 0.5, 0.4]
    gaps = [0.0, 0.1, 0.3, 0.2, 0.6, 0.5]
    rundir.write_jsonl(tmp_path / "e" / "r0" / "heads.jsonl", rows("r0", accs, diffs, gaps))
    rundir.write_jsonl(tmp_path / "e" / "r1" / "heads.jsonl",
                       rows("r1", [0.5, 0.5, 0.95, 1.0, 1.0, 0.5], diffs, gaps))  # 3 counted
    df = pd.DataFrame([{"run": f"e/r{i}", "experiment": "e", "seed": i, "variant": "with_aux"}
                       for i in range(2)])
    table = per_run(df, tmp_path).set_index("seed")
    want = spearman(diffs[1:], gaps[1:])
    assert table.loc[0, "rho_importance_diff"] == pytest.approx(want)
    assert table.loc[0, "rho_attn_diff"] == pytest.approx(-want)
    assert table.loc[0, "points"] == 5 and table.loc[0, "last_importance_diff"] == 0.4
    assert math.isnan(table.loc[1, "rho_importance_diff"])  # 3 counted points: no rho


def test_the_maze_amendment_names_its_group_and_waits_for_its_seeds(tmp_path):
    """`registration-heads-maze.yaml` adds one group at its own seeds and Holm family; its rows
    stay pending until each of those seeds has a with-aux run with head metrics."""
    import pandas as pd

    from lgtransfer.analysis.report.heads_claims import AMENDMENT, amendment, judged
    from lgtransfer.analysis.verdicts import PENDING, transfer

    assert amendment(tmp_path) is None
    committed = Path(__file__).parents[1] / "results" / "cpu"
    assert amendment(committed) == ("g7", [0, 1, 2, 3, 4], "heads-maze")
    (tmp_path / AMENDMENT).write_text("experiment: g7\nseeds: [0, 1, 2]\nfamily: heads-maze\n")
    runs = pd.DataFrame({"experiment": ["g7", "g7", "g1"], "seed": [0, 1, 2]})
    v = judged(transfer([0.5, 0.6], 0.1), pd.DataFrame(), "g7", {0: 0.5, 1: 0.6}, tmp_path,
               runs=runs, wanted=[0, 1, 2])
    assert v.outcome == PENDING and v.note == "2 of 3 registered seeds in"


def test_the_causal_test_is_uninformative_where_the_main_task_never_extrapolates():
    """Ablation cannot lower an accuracy already at 0: with the main task below the floor past
    L_main on both sides, a zero extra drop is `uninformative (floor)`, not `no`; with it above
    on one side, the verdict stands."""
    import pandas as pd

    from lgtransfer.analysis.report.heads_claims import at_floor
    from lgtransfer.analysis.verdicts import FLOOR, paired_above

    v = paired_above({s: 0.0 for s in range(10)}, {s: 0.0 for s in range(10)}, 0.05)
    assert v.outcome == "no"

    def seeds(group_acc):
        return pd.DataFrame([{"experiment": e, "seed": s, "acc_past_main_with_aux": x}
                             for s in range(10) for e, x in (("g4", group_acc), ("c2", 0.0))])

    floored = at_floor(v, seeds(0.001), ("g4", "c2"), set(range(10)))
    assert floored.outcome == FLOOR and "0.001 (g4)" in floored.note
    assert at_floor(v, seeds(0.3), ("g4", "c2"), set(range(10))).outcome == "no"


# ----------------------------------------------------------------------------- causal test over k


def test_random_head_sets_keep_the_top_k_sets_layers_and_differ_from_it():
    """Each draw has as many heads in each layer as the top-k set and is another set, unless
    no other exists (the top-k set fills each of its layers)."""
    from lgtransfer.engine.heads.causal_curve import layer_counts, matched_random_sets

    rng = np.random.default_rng(0)
    for top in ([0, 1, 9], [5], [2, 3, 4, 11], [0, 4, 8]):  # 3 layers x 4 heads
        want = layer_counts(top, 3, 4)
        draws = matched_random_sets(top, 3, 4, 30, rng)
        assert len(draws) == 30
        for heads in draws:
            assert len(set(heads)) == len(top) and heads != sorted(top)
            assert np.array_equal(layer_counts(heads, 3, 4), want)
        assert len({tuple(h) for h in draws}) > 1  # random: not one fixed alternative
    full = [4, 5, 6, 7]  # all of layer 1: no other set with these counts
    assert matched_random_sets(full, 3, 4, 3, rng) == [full] * 3


def test_the_test_over_k_is_fixed_by_its_seed():
    from lgtransfer.engine.heads.causal_curve import curve_sets

    imp = np.random.default_rng(1).random((3, 4))
    a, b = curve_sets(imp, [1, 2, 3, 6, 12], 10, 7, 400), curve_sets(imp, [6, 3, 2, 1], 10, 7, 400)
    assert a == b and set(a) == {1, 2, 3, 6}  # k = 12 (every head) has no control
    assert a[3][0] == sorted(top_k(imp, 3))
    assert curve_sets(imp, [3], 10, 8, 400)[3][1] != a[3][1]  # another seed, other draws


def test_the_top_head_drops_at_least_as_much_as_its_layer_matched_random_heads(tiny_run):
    """A planted ranking: importance measured on the very examples the test runs on, so the
    top-1 head's drop is the largest, and at k = 1 (random heads from its layer) the statistic
    is >= 0 for every draw, and > 0 where the layer's heads differ."""
    from lgtransfer.data.mixture import Mixture
    from lgtransfer.engine.heads.analysis import find_runs
    from lgtransfer.engine.heads.causal_curve import causal_curve

    (run,) = find_runs(tiny_run[1])
    model = load_model(run.checkpoints[400], attn_implementation="eager")
    mixture = Mixture(run.group, run.eval_n, run.eval_seed)
    batches = {n: mixture.eval_set("copy", n) for n in (3, 4)}
    maps = [importance_map(model, b, "mean", CPU)[1] for b in batches.values()]
    imp = np.mean(maps, axis=0)
    rows = causal_curve(model, imp, batches, ks=[1, 3], draws=6, ablation="mean", seed=0,
                        step=400, device=CPU, max_tokens=2**15, band="in_dist", task="copy")
    band = {(r["metric"], r["k"], r["draw"]): r["value"] for r in rows if r["length"] is None}
    intact = band[("kcausal_intact_acc", None, None)]
    assert intact > 0.5
    topk = band[("kcausal_topk_acc", 1, None)]
    assert topk == pytest.approx(intact - imp.max(), abs=1e-9)
    draws = [band[("kcausal_random_acc", 1, d)] for d in range(6)]
    assert all(topk <= d + 1e-9 for d in draws)
    assert band[("kcausal_random_acc", 1, None)] == pytest.approx(np.mean(draws))
    assert band[("kcausal_topk_at_floor", 1, None)] == float(topk < 0.02)
    heads = [(r["layer"], r["head"]) for r in rows if r["metric"] == "kcausal_topk_head"
             and r["k"] == 3]
    assert len(heads) == 3
    examples = [r["value"] for r in rows if r["metric"] == "kcausal_examples"]
    assert examples == [len(batches[3]), len(batches[4])]
    # the same rows in token accuracy: at least the exact match, never more than 1
    for what, k, draw in [("intact", None, None), ("topk", 1, None), ("random", 3, None),
                          *(("random", 1, d) for d in range(6))]:
        acc, tok = (band[(f"kcausal_{what}_{m}", k, draw)] for m in ("acc", "tok"))
        assert acc - 1e-9 <= tok <= 1.0, (what, k, draw)
    # the floor of each measure: every head ablated, no better than the intact model
    for m in ("acc", "tok"):
        assert 0 <= band[(f"kcausal_noattn_{m}", None, None)] < band[(f"kcausal_intact_{m}",
                                                                       None, None)]


@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_the_layer_tree_gives_what_one_pass_per_condition_gives(tiny_run, ablation):
    """On a trained model (right on most examples), every condition's exact match computed
    layer by layer with shared prefixes equals `ablation_correct`'s, in chunks or not."""
    from lgtransfer.engine.heads.layer_tree import tree_ablation_correct

    _, run = tiny_run
    model = load_model(run / "checkpoints" / "step-400", attn_implementation="eager")
    batch = copy_batch(24, length=4)
    masks = torch.from_numpy(np.random.default_rng(0).random((12, 2, 2)) < 0.4)
    masks[0] = False  # nothing ablated
    masks[1] = masks[2]  # a condition twice
    want = ablation_correct(model, batch, masks, ablation, CPU)
    assert 0 < want.mean() < 1 and want[0].mean() > 0.5
    for max_tokens in (2**12, 50):
        got = tree_ablation_correct(model, batch, masks, ablation, CPU, max_tokens)
        assert np.array_equal(got, want), max_tokens


def test_token_accuracy_under_ablation_is_the_share_of_answer_tokens_right(tiny_run):
    """The layer tree's token accuracy equals a plain forward pass per condition: the share
    of each example's scored tokens whose argmax is the next token; 1 exactly where the
    example is an exact match, and between 0 and 1 where some but not all digits are."""
    from lgtransfer.engine.heads.layer_tree import tree_ablation_scores
    from lgtransfer.engine.heads.measure import ablated, head_means

    _, run = tiny_run
    model = load_model(run / "checkpoints" / "step-400", attn_implementation="eager")
    batch = copy_batch(24, length=4)
    masks = torch.from_numpy(np.random.default_rng(1).random((8, 2, 2)) < 0.4)
    masks[0] = False
    exact, tok = tree_ablation_scores(model, batch, masks, "mean", CPU, 50)
    width = int(batch.seq_len.max())
    tokens = torch.from_numpy(batch.tokens[:, :width])
    scored = torch.from_numpy(batch.loss_mask[:, :width])[:, 1:]
    means = head_means(model, batch, CPU)
    for c in range(len(masks)):
        with torch.no_grad(), ablated(model, masks[c][None].expand(len(batch), -1, -1), means):
            pred = model(input_ids=tokens).logits[:, :-1].argmax(-1)
        right = ((pred == tokens[:, 1:]) & scored).sum(1) / scored.sum(1)
        np.testing.assert_allclose(tok[c], right.double().numpy(), atol=1e-12)
    assert np.array_equal(exact, tok == 1.0)
    assert ((tok > 0) & (tok < 1)).any()  # partly right answers: the finer measure
