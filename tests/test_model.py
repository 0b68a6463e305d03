"""The model: paper size, NoPE really position-free, checkpoints round-trip."""

import torch

from lgtransfer.config import ModelConfig
from lgtransfer.model import build_model, count_parameters, load_model

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
