"""The model: paper size, NoPE really position-free, checkpoints round-trip."""

import json

import torch

from lgtransfer.config import ModelConfig
from lgtransfer.engine.model import build_model, count_parameters, load_model

TINY = {"n_layer": 2, "n_head": 2, "d_model": 32, "d_ff": 64}


def _logits(model, ids, position_ids):
    with torch.no_grad():
        return model(input_ids=ids, position_ids=position_ids).logits


def test_paper_model_size():
    model = build_model(ModelConfig(), seed=0)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size) == (6, 6, 384)
    assert cfg.intermediate_size == 1536 and not cfg.tie_word_embeddings
    assert 14.0e6 < count_parameters(model) < 14.6e6


def test_seed_fixes_initialization():
    a = build_model(ModelConfig(**TINY), seed=1).state_dict()
    b = build_model(ModelConfig(**TINY), seed=1).state_dict()
    c = build_model(ModelConfig(**TINY), seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nope_ignores_positions_rope_does_not():
    ids = torch.randint(6, 100, (3, 12))
    base = torch.arange(12)[None].expand(3, -1)
    # A non-uniform change of positions: a gap in the middle, and a permutation. A uniform shift
    # would not do, because RoPE attention depends only on relative positions.
    gapped = torch.where(base < 6, base, base + 9)
    permuted = torch.randperm(12)[None].expand(3, -1)
    for pe, should_change in (("nope", False), ("rope", True)):
        model = build_model(ModelConfig(**TINY, pos_encoding=pe), seed=0).eval()
        ref = _logits(model, ids, base)
        for other in (gapped, permuted):
            changed = not torch.equal(ref, _logits(model, ids, other))
            assert changed == should_change, pe
        # absolute shifts of every position change nothing for either
        assert torch.allclose(ref, _logits(model, ids, base + 100), atol=1e-5)


def test_nope_survives_save_and_load(tmp_path):
    model = build_model(ModelConfig(**TINY, pos_encoding="nope"), seed=0).eval()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    ids = torch.randint(6, 100, (2, 10))
    pos = torch.arange(10)[None].expand(2, -1)
    assert torch.equal(_logits(model, ids, pos), _logits(loaded, ids, pos))
    assert torch.equal(_logits(loaded, ids, pos), _logits(loaded, ids, pos.flip(1)))


PLAIN_LOAD = """
import sys, torch
from transformers import AutoModelForCausalLM
path, ids, out = sys.argv[1], torch.load(sys.argv[2]), sys.argv[3]
try:
    AutoModelForCausalLM.from_pretrained(path)
    refused = ""
except ValueError as e:
    refused = str(e)
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
pos = torch.arange(ids.shape[1])[None].expand(ids.shape[0], -1)
with torch.no_grad():
    logits = [model(input_ids=ids, position_ids=p).logits for p in (pos, pos.flip(1))]
torch.save({"refused": refused, "logits": logits, "class": type(model).__name__,
            "lgtransfer_imported": "lgtransfer" in sys.modules}, out)
"""


def test_a_nope_checkpoint_never_loads_as_rope(tmp_path):
    """Plain transformers, in a fresh interpreter without lgtransfer: `from_pretrained` refuses
    the checkpoint, and with `trust_remote_code=True` (the code saved in it) loads NoPE, equal to
    the model saved and blind to positions. `load_model` loads it as NoPE without remote code."""
    import os
    import subprocess
    import sys

    model = build_model(ModelConfig(**TINY, pos_encoding="nope"), seed=0).eval()
    model.save_pretrained(tmp_path / "ck")
    assert (tmp_path / "ck" / "nope_llama.py").is_file()
    ids = torch.randint(6, 100, (2, 10))
    torch.save(ids, tmp_path / "ids.pt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}  # where HF copies code
    done = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(tmp_path / "ck"),
                           str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = torch.load(tmp_path / "out.pt")
    assert "trust_remote_code=True" in out["refused"]
    assert out["class"] == "NoPELlamaForCausalLM" and not out["lgtransfer_imported"]
    pos = torch.arange(10)[None].expand(2, -1)
    assert torch.allclose(out["logits"][0], _logits(model, ids, pos), atol=1e-5)
    assert torch.allclose(out["logits"][0], out["logits"][1], atol=1e-5)

    loaded = load_model(tmp_path / "ck").eval()
    assert type(loaded.model.rotary_emb).__name__ == "NoRotation"
    assert torch.equal(_logits(loaded, ids, pos), _logits(model, ids, pos))
    assert torch.equal(_logits(loaded, ids, pos), _logits(loaded, ids, pos.flip(1)))


def test_a_rope_checkpoint_stays_a_plain_llama(tmp_path):
    build_model(ModelConfig(**TINY), seed=0).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not (tmp_path / "nope_llama.py").exists()
