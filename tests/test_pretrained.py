"""Pretrained models, offline: a tiny Llama and tokenizer built here are fine-tuned through
`lgt run`; new tokens are added and trained; the id map round-trips; greedy generation equals the
one-pass exact match through the map; a missing model or revision exits 2 leaving nothing; `lgt
pretrain` makes loadable checkpoints that a stage sweep fine-tunes; the default corpus is
deterministic."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from lgtransfer.cli import main
from lgtransfer.config import expand, load_experiment, model_files, parse_experiment
from lgtransfer.data.mixture import Mixture, map_ids
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.engine.checkpoints import hf_tokenizer
from lgtransfer.engine.evaluate import exact_match, greedy_generate
from lgtransfer.runtime import rundir
from lgtransfer.tasks import tokenizer as tok

COPY = {"task": "copy", "role": "main", "max_length": 16}
TEXT = ("the quick brown fox jumps over the lazy dog THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG "
        "ab+cd=ef 0123456789 9876543210 7+5=12 40-8=32 6*7=42 ")


def make_tiny_lm(folder, seed=0):
    """A Llama with grouped-query attention and tied embeddings (like SmolLM2), and a BPE
    tokenizer with individual digits, whitespace pre-splitting and no padding token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                  pre_tokenizers.Digits(individual_digits=True)])
    core.train_from_iterator([TEXT] * 20, trainers.BpeTrainer(
        vocab_size=150, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_experiment(path, **fields):
    base = {"group": [{"task": "copy", "role": "main", "max_length": 3},
                      {"task": "reverse", "role": "aux", "max_length": 5}],
            "train": {"steps": 250, "batch_size": 32, "lr": 0.003, "eval_every": 250,
                      "checkpoint_every": 250},
            "eval": {"n": 32, "max_length": 6}, "seeds": [0]}
    for key, value in fields.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


@pytest.fixture(scope="module")
def finetuned(lm, tmp_path_factory):
    """The tiny LM fine-tuned on copy <= 3 with reverse <= 5 (both variants) by `lgt run`."""
    tmp = tmp_path_factory.mktemp("ft")
    exp = write_experiment(tmp / "ft.yaml", model={"init": str(lm)})
    out = tmp / "runs"
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--executor", "inline"]) == 0
    (run,) = [d for d in (out / "cpu" / "ft").iterdir() if d.name.startswith("with_aux")]
    return run


def test_fine_tuning_through_lgt_run_records_the_source(lm, finetuned):
    manifest = rundir.read_json(finetuned / "manifest.json")
    assert manifest["status"] == "complete"
    assert manifest["init"] == str(lm) and manifest["revision"] is None
    assert manifest["weights_sha256"] == pretrained.weights_sha256(lm)
    rows = rundir.read_jsonl(finetuned / "eval.jsonl")
    assert {r["task"] for r in rows} == {"copy", "reverse"} and all(r["n"] == 32 for r in rows)
    copy = {r["length"]: r["accuracy"] for r in rows if r["task"] == "copy"}
    assert copy[1] >= 0.9 and np.mean([copy[n] for n in (1, 2, 3)]) >= 0.6, copy  # it learns


def test_new_tokens_are_added_and_trained(lm, finetuned):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = finetuned / "checkpoints" / "step-250"
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    assert {"<lgt_task_A>", "<lgt_node_64>"} <= set(tokenizer.get_vocab())
    old = AutoModelForCausalLM.from_pretrained(lm).get_input_embeddings().weight
    new = AutoModelForCausalLM.from_pretrained(ckpt).get_input_embeddings().weight
    assert new.shape[0] >= old.shape[0] + tok.N_NODES + tok.N_MARKERS and new.shape[0] % 64 == 0
    # the run started from the pretrained rows plus new ones drawn with its seed; training moved
    # the rows of the markers it used
    m = parse_experiment({"name": "x", "group": [COPY], "model": {"init": str(lm)}},
                         "test").model
    start = pretrained.load_source(m, 0, ["copy"]).model.get_input_embeddings().weight
    assert torch.equal(start[: old.shape[0]], old)
    id_map = pretrained.checkpoint_id_map(ckpt)
    assert id_map[tok.marker_id(0)] >= old.shape[0] and id_map[tok.node_id(64)] >= old.shape[0]
    moved = (new - start).norm(dim=1) / start.norm(dim=1)
    assert moved[id_map[tok.marker_id(0)]] > 0.1 and moved[id_map[tok.marker_id(1)]] > 0.1


def test_id_map_round_trips(lm, finetuned):
    tokenizer = pretrained.load_tokenizer(lm)
    id_map = pretrained.build_id_map(tokenizer, ["copy", "reverse"])
    assert np.array_equal(id_map, pretrained.checkpoint_id_map(finetuned / "checkpoints" /
                                                               "step-250"))
    for d in "0123456789":  # digits are single tokens of their own
        assert [id_map[tok.char_id(d)]] == tokenizer.encode(d, add_special_tokens=False)
    assert id_map[tok.EOS] == tokenizer.eos_token_id and id_map[tok.BOS] == tokenizer.bos_token_id
    assert id_map[tok.PAD] == tokenizer.eos_token_id  # no pad token: EOS pads
    text = "7584+329=<C>qRtx[12][64]"
    ids = tok.encode(text)
    assert pretrained.decode(id_map[ids].tolist(), id_map) == text
    chars = id_map[tok.char_id(" ") : tok.char_id("~") + 1]
    chars = chars[chars >= 0]
    added = id_map[tok.node_id(1) :]
    assert len(set(chars)) == len(chars) and len(set(added)) == len(added)  # one id each
    assert not set(chars) & {*added, *id_map[[tok.EOS, tok.BOS]]}
    assert min(added) >= pretrained.load_tokenizer(lm).vocab_size  # new tokens


def test_greedy_generation_equals_one_pass_exact_match_through_the_map(finetuned):
    source = pretrained.load_checkpoint(finetuned / "checkpoints" / "step-250")
    run = expand(load_experiment(str(finetuned.parents[3] / "ft.yaml")))[0]
    mixture = Mixture(run.group, 24, 5, source.id_map)
    outcomes = []
    for task, n in (("copy", 2), ("copy", 3), ("copy", 4), ("reverse", 5), ("reverse", 6)):
        batch = mixture.eval_set(task, n)
        marker = source.id_map[tok.marker_id(run.group[0].task != task)]
        assert (batch.tokens[:, 1] == marker).all() and marker != tok.marker_id(0)  # its ids
        one_pass = exact_match(source.model, batch, torch.device("cpu"))
        _, greedy = greedy_generate(source.model, batch, torch.device("cpu"), source.id_map)
        assert np.array_equal(one_pass, greedy), (task, n)
        outcomes.append(one_pass)
    outcomes = np.concatenate(outcomes)
    assert outcomes.any() and not outcomes.all()  # both outcomes occur: the check means something


def test_generate_decodes_through_the_map(finetuned, capsys):
    ckpt = finetuned / "checkpoints" / "step-250"
    for length in (1, 5):
        assert main(["generate", str(ckpt), "copy", "--length", str(length), "--count", "4"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert len(lines) == 4 and all(x["correct"] == (x["prediction"] == x["target"])
                                       for x in lines)
        assert all(len(x["target"]) == length for x in lines)
        assert all(x["correct"] for x in lines) == (length == 1), lines  # learned to 1, not 5


def test_a_character_that_is_not_one_token_exits_2(lm, tmp_path, capsys):
    # the whitespace-splitting tokenizer has no token for ' ', which mazes write
    exp = write_experiment(tmp_path / "m.yaml", model={"init": str(lm)},
                           group=[{"task": "shortest_path", "role": "main", "max_length": 4}])
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no single token for ' ?'" in err, err
    assert not out.exists()


def fake_hub_cache(root, repo, model_dir, refs):
    """A Hugging Face cache entry as `hf download` leaves it, one snapshot per ref."""
    folder = root / ("models--" + repo.replace("/", "--"))
    for i, ref in enumerate(refs):
        commit = f"{i + 1:040x}"
        shutil.copytree(model_dir, folder / "snapshots" / commit)
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return folder


@pytest.fixture
def hub_cache(lm, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_cache(tmp_path / "hub", "lgt-test/tiny", lm, ["main", "step-2"])
    return tmp_path / "hub"


def test_a_model_in_the_hub_cache_resolves_offline(hub_cache):
    path, commit = model_files.resolve("lgt-test/tiny", "step-2")
    assert commit == f"{2:040x}" and (path / "config.json").is_file()
    assert model_files.resolve("lgt-test/tiny")[1] == f"{1:040x}"  # main


@pytest.mark.parametrize("overrides,message", [
    (["model.init=/no/such/folder"], "no model folder at /no/such/folder"),
    (["model.init=lgt-test/absent"], "no 'lgt-test/absent' in the local Hugging Face cache"),
    (["model.init=lgt-test/tiny", "model.revision=step-9"],
     "model.revision 'step-9' of 'lgt-test/tiny' is not in the local Hugging Face cache "
     "(cached: main, step-2)"),
    (["model.init=LM", "model.revision=step-9"], "model.revision 'step-9': no model folder"),
    (["model.init=LM", "model.stages=[step-9, scratch]"], "model.revision 'step-9'"),
    (["model.revision=step-9"], "model.revision and model.reinit need model.init"),
    (["model.stages=[scratch]"], "list at least one pretrained stage"),
])
def test_missing_model_or_revision_exits_2_leaving_nothing(overrides, message, lm, hub_cache,
                                                           tmp_path, capsys):
    exp = write_experiment(tmp_path / "e.yaml")
    out = tmp_path / "out"
    sets = [x for o in overrides for x in ("--set", o.replace("=LM", f"={lm}"))]
    assert main(["run", str(exp), "--out", str(out), "--quiet", *sets]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_an_lgtransfer_checkpoint_as_init_keeps_our_ids(tmp_path):
    from lgtransfer.config import ModelConfig
    from lgtransfer.engine.model import build_model

    build_model(ModelConfig(n_layer=1, n_head=2, d_model=32, d_ff=64, pos_encoding="nope"),
                0).save_pretrained(tmp_path / "ck")
    hf_tokenizer().save_pretrained(tmp_path / "ck")
    source = pretrained.load_source(ModelConfig(init=str(tmp_path / "ck")), 0, ["copy"])
    assert source.id_map is None and source.tokenizer is None
    assert type(source.model.model.rotary_emb).__name__ == "NoRotation"


# ----------------------------------------------------------------------------- stages, config


def test_stage_sweep_expands_one_run_per_stage():
    cfg = load_experiment("quick", ["model.init=runs/lad", "model.stages=[step-5, step-10, "
                                    "scratch]", "seeds=[0, 1]"])
    runs = expand(cfg)
    assert len(runs) == 3 * 2 * 2 and len({r.key for r in runs}) == len(runs)
    assert len({r.experiment_key for r in runs}) == 1  # one experiment: one report
    by_stage = {r.stage: r.model for r in runs}
    assert (by_stage["step-5"].init, by_stage["step-5"].revision) == ("runs/lad", "step-5")
    assert by_stage["scratch"].revision == "step-5" and by_stage["scratch"].reinit
    assert all(r.resolved()["stage"] == r.stage and r.stage in r.dirname for r in runs)
    plain = expand(load_experiment("quick", ["model.stages=[org/a@v1, /models/b, scratch]"]))
    models = {r.stage: r.model for r in plain}
    assert (models["org/a@v1"].init, models["org/a@v1"].revision) == ("org/a", "v1")
    assert (models["/models/b"].init, models["/models/b"].revision) == ("/models/b", None)
    assert models["scratch"].init == "org/a" and models["scratch"].reinit


def test_run_keys_are_pinned_and_ignore_execution_settings():
    """The quick preset's run keys are pinned (a change here retrains every finished run, and
    the migration note in docs/runs.md must say so), and settings that only change speed leave
    them."""
    assert [r.key for r in expand(load_experiment("quick"))] == ["78ed46ec12", "fbdf89f162"]
    gc = expand(load_experiment("quick", ["train.gradient_checkpointing=true"]))
    assert [r.key for r in gc] == ["78ed46ec12", "fbdf89f162"]


def test_gradient_checkpointing_trains_the_same(lm, tmp_path):
    from lgtransfer.engine.train import train_run

    losses = []
    for gc in (False, True):
        exp = write_experiment(tmp_path / f"g{gc}.yaml", model={"init": str(lm)},
                               train={"steps": 3, "gradient_checkpointing": gc})
        run = expand(load_experiment(str(exp)))[0]
        train_run(run, tmp_path / f"run{gc}", progress=False)
        losses.append([r["loss"] for r in rundir.read_jsonl(tmp_path / f"run{gc}" /
                                                            "metrics.jsonl")])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


# ----------------------------------------------------------------------------- lgt pretrain


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ladder")
    rng = np.random.default_rng(0)
    words = TEXT.split()
    (tmp / "corpus").mkdir()
    for i in range(3):
        (tmp / "corpus" / f"{i}.txt").write_text("\n".join(
            " ".join(rng.choice(words, 10)) + f" {rng.integers(10**6)}" for _ in range(150)))
    out = tmp / "lad"
    assert main(["pretrain", "--size", "tiny", "--corpus", str(tmp / "corpus"), "--out", str(out),
                 "--steps", "20", "--stages", "2", "--quiet"]) == 0
    return out


def test_lgt_pretrain_writes_loadable_checkpoints(ladder, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = rundir.read_json(ladder / "pretrain.json")
    assert manifest["status"] == "complete" and manifest["corpus"]["files"] == 3
    assert [c["step"] for c in manifest["checkpoints"]] == [10, 20]
    for step in (10, 20):
        model = AutoModelForCausalLM.from_pretrained(ladder / f"step-{step}")
        tokenizer = AutoTokenizer.from_pretrained(ladder / f"step-{step}")
        assert tokenizer.tokenize("1234") == list("1234")  # a token per digit, never merged
        assert all(len(tokenizer.encode(c)) == 1 for c in "0123456789+-*=?abcXYZ[] ")
        ids = tokenizer("x = 1234+56;", return_tensors="pt").input_ids
        assert model(ids).logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert manifest["checkpoints"][1]["val_loss"] < manifest["checkpoints"][0]["val_loss"]
    # the same ladder again: nothing is redone
    stamp = (ladder / "step-20" / "model.safetensors").stat().st_mtime_ns
    assert main(["pretrain", "--size", "tiny", "--corpus", str(ladder.parent / "corpus"),
                 "--out", str(ladder), "--steps", "20", "--stages", "2", "--quiet"]) == 0
    assert (ladder / "step-20" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "already holds this ladder" in capsys.readouterr().out


def test_stage_sweep_over_the_ladder_runs_and_reports(ladder, tmp_path):
    exp = write_experiment(
        tmp_path / "sweep.yaml", model={"init": str(ladder), "stages": ["step-10", "step-20",
                                                                       "scratch"]},
        group=[{"task": "reverse_add", "role": "main", "max_length": 2}],
        train={"steps": 6, "eval_every": 6, "checkpoint_every": 6}, eval={"n": 8})
    out = tmp_path / "runs"
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--executor", "inline"]) == 0
    runs = sorted((out / "cpu" / "sweep").glob("main_only_*"))
    assert len(runs) == 3
    manifests = {rundir.read_json(d / "manifest.json")["stage"]: rundir.read_json(
        d / "manifest.json") for d in runs}
    assert manifests["scratch"]["reinit"] and manifests["scratch"]["weights_sha256"] is None
    assert manifests["step-20"]["revision"] == "step-20"
    assert manifests["step-20"]["weights_sha256"] == pretrained.weights_sha256(ladder / "step-20")
    rows = [r for d in runs for r in rundir.read_jsonl(d / "eval.jsonl")]
    assert {r["stage"] for r in rows} == {"step-10", "step-20", "scratch"}
    report = (out / "cpu" / "sweep" / "report.md").read_text()
    assert "stages.png" in report and "stages_curves.png" in report
    table = __import__("pandas").read_csv(out / "cpu" / "sweep" / "stages.csv")
    assert list(table.stage) == ["scratch", "step-10", "step-20"]


def test_lgt_pretrain_bad_input_exits_2_leaving_nothing(tmp_path, capsys):
    out = tmp_path / "lad"
    for argv, message in ((["--corpus", str(tmp_path / "nope")], "no file or folder"),
                          (["--size", "huge"], "--size must be one of"),
                          (["--stages", "2", "--save-every", "5"], "not allowed with")):
        assert main(["pretrain", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()


def test_default_corpus_is_the_standard_library_deterministic():
    import sysconfig
    from pathlib import Path

    from lgtransfer.engine.pretraining import default_corpus_files, read_corpus

    files = default_corpus_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    assert len(files) > 100 and files == default_corpus_files()
    assert all(f.is_relative_to(root) and "site-packages" not in f.parts for f in files)
    assert files[0].suffix in (".txt", ".rst") and files[-1].suffix == ".py"  # docs first
    docs, info = read_corpus(files, 300_000)
    assert info["bytes"] >= 300_000 and sum(map(len, docs)) > 0
    assert read_corpus(files, 300_000)[1] == info


def test_map_ids_refuses_an_unmappable_character():
    from lgtransfer.errors import UsageError

    mixture = Mixture(parse_experiment({"name": "x", "group": [COPY]},
                                            "t").group, 4, 0)
    id_map = np.arange(tok.VOCAB_SIZE)
    id_map[tok.char_id("a"): tok.char_id("z") + 1] = -1
    with pytest.raises(UsageError, match="no single token"):
        map_ids(mixture.eval_set("copy", 30), id_map)


def test_an_interrupted_fine_tune_resumes_with_its_map(lm, tmp_path, monkeypatch):
    import lgtransfer.engine.train as train_mod

    exp = write_experiment(tmp_path / "r.yaml", model={"init": str(lm)},
                           train={"steps": 4, "checkpoint_every": 2, "eval_every": 2})
    run = expand(load_experiment(str(exp)))[0]
    real = train_mod.step_batch

    def dies_at_3(mixture, seed, step, size):
        if step == 3:
            raise KeyboardInterrupt
        return real(mixture, seed, step, size)

    monkeypatch.setattr(train_mod, "step_batch", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train_run(run, tmp_path / "run", progress=False)
    monkeypatch.setattr(train_mod, "step_batch", real)
    train_mod.train_run(run, tmp_path / "run", progress=False)
    manifest = rundir.read_json(tmp_path / "run" / "manifest.json")
    assert manifest["status"] == "complete" and manifest["resumed_from_step"] == 2
    assert manifest["weights_sha256"] == pretrained.weights_sha256(lm)  # the first start's
    first, last = (pretrained.checkpoint_id_map(tmp_path / "run" / "checkpoints" / f"step-{s}")
                   for s in (2, 4))
    assert first is not None and np.array_equal(first, last)
    rows = rundir.read_jsonl(tmp_path / "run" / "eval.jsonl")
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)  # no duplicates
    assert len(rows) == 2 * len({(r["task"], r["length"]) for r in rows})  # steps 2 and 4


def test_head_analysis_reads_a_fine_tuned_pretrained_run(finetuned):
    """`lgt heads` feeds the checkpoint its own ids (through the map; in ours it would score
    about 0) and ablates the 4 query heads of a grouped-query model (2 key/value heads)."""
    assert main(["heads", str(finetuned), "--n", "8", "--steps", "last", "--k", "1",
                 "--random-draws", "1", "--in-dist", "2", "--transfer", "4", "--quiet"]) == 0
    rows = rundir.read_jsonl(next(finetuned.rglob("heads.jsonl")))
    acc = {(r["task"], r["band"]): r["value"] for r in rows if r["metric"] == "accuracy"}
    assert acc[("reverse", "in_dist")] >= 0.9, acc  # reverse <= 5 is learned (see eval.jsonl)
    assert {r["head"] for r in rows if r["metric"] == "importance"} - {None} == {0, 1, 2, 3}
    assert {"gap", "importance_diff", "attn_diff"} <= {r["metric"] for r in rows}
