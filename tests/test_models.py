"""The embedded model zoo: exact layouts, the default exclusion, deterministic initialization."""

import math

import numpy as np
import pytest

from fastpenalty import models
from fastpenalty.models.architectures import ARCHITECTURES
from fastpenalty.models.materialize import fill

torch = pytest.importorskip("torch")

# Documented counts (models/__init__.py); the reference implementations have these totals.
EXPECTED = {
    "gpt2-small": (124_439_808, 148),
    "gpt2-xl": (1_557_611_200, 580),
    "bert-base": (109_482_240, 199),
    "resnet50": (25_557_032, 161),
    "decoder-1b": (1_235_814_400, 146),
    "mlp-tiny": (5_852, 6),
}


def test_names_default_first_and_complete():
    assert models.DEFAULT == "gpt2-small"
    assert models.names()[0] == models.DEFAULT
    assert sorted(models.names()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_counts(name):
    total, tensors = EXPECTED[name]
    specs = models.parameter_specs(name)
    assert models.num_parameters(name) == total
    assert len(specs) == tensors
    assert len({n for n, _ in specs}) == tensors, "parameter names must be unique"
    assert all(all(isinstance(d, int) and d > 0 for d in shape) for _, shape in specs)


@pytest.mark.parametrize("name, param, shape", [
    ("gpt2-small", "wte.weight", (50257, 768)),
    ("gpt2-small", "wpe.weight", (1024, 768)),
    ("gpt2-small", "h.11.attn.c_attn.weight", (768, 2304)),
    ("gpt2-small", "h.0.mlp.c_proj.weight", (3072, 768)),
    ("gpt2-xl", "h.47.mlp.c_fc.weight", (1600, 6400)),
    ("bert-base", "embeddings.word_embeddings.weight", (30522, 768)),
    ("bert-base", "encoder.layer.11.intermediate.dense.weight", (3072, 768)),
    ("bert-base", "pooler.dense.weight", (768, 768)),
    ("resnet50", "conv1.weight", (64, 3, 7, 7)),
    ("resnet50", "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("resnet50", "layer3.5.conv2.weight", (256, 256, 3, 3)),
    ("resnet50", "layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("resnet50", "fc.weight", (1000, 2048)),
    ("decoder-1b", "model.embed_tokens.weight", (128256, 2048)),
    ("decoder-1b", "model.layers.15.self_attn.k_proj.weight", (512, 2048)),
    ("decoder-1b", "model.layers.0.mlp.down_proj.weight", (2048, 8192)),
])
def test_known_shapes(name, param, shape):
    assert dict(models.parameter_specs(name))[param] == shape


def test_resnet_has_one_downsample_per_stage():
    names = [n for n, _ in models.parameter_specs("resnet50")]
    assert sorted(n for n in names if n.endswith("downsample.0.weight")) == [
        f"layer{s}.0.downsample.0.weight" for s in (1, 2, 3, 4)]


@pytest.mark.parametrize("param, shape, excluded", [
    ("h.0.attn.c_attn.bias", (2304,), True),
    ("h.0.ln_1.weight", (768,), True),
    ("ln_f.weight", (768,), True),
    ("embeddings.LayerNorm.weight", (768,), True),
    ("model.layers.3.input_layernorm.weight", (2048,), True),
    ("model.norm.weight", (2048,), True),
    ("layer1.0.bn2.weight", (64,), True),
    ("layer1.0.downsample.1.weight", (256,), True),  # a BatchNorm named by position
    ("fc.bias", None, True),
    ("h.0.attn.c_attn.weight", (768, 2304), False),
    ("wte.weight", (50257, 768), False),
    ("conv1.weight", (64, 3, 7, 7), False),
    ("model.layers.0.mlp.up_proj.weight", (8192, 2048), False),
    ("gnome.kernel", (3, 3), False),  # "gn" only as a whole name component
    ("bnorm_like.kernel", (3, 3), True),  # contains "norm"
])
def test_default_exclusion(param, shape, excluded):
    assert models.is_excluded(param, shape) is excluded


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exclusion_leaves_out_exactly_the_vectors(name):
    # In these architectures every bias / norm weight is 1-D and every 1-D tensor is one; the
    # names alone identify them, except torchvision's positional BatchNorm (downsample.1).
    for param, shape in models.parameter_specs(name):
        assert models.is_excluded(param, shape) == (len(shape) <= 1), param
        if "downsample.1." not in param:
            assert models.is_excluded(param) == (len(shape) <= 1), param


def test_unknown_model_and_bad_dtype():
    with pytest.raises(ValueError, match="unknown model 'gpt5'"):
        models.parameter_specs("gpt5")
    with pytest.raises(ValueError, match="dtype"):
        models.materialize("mlp-tiny", dtype="int8")


def test_materialize_is_deterministic_and_seeded():
    a = models.materialize("mlp-tiny", seed=3)
    b = models.materialize("mlp-tiny", seed=3)
    c = models.materialize("mlp-tiny", seed=4)
    assert list(a) == [n for n, _ in models.parameter_specs("mlp-tiny")]
    for name in a:
        assert torch.equal(a[name], b[name])
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_dtype_honoured_and_backends_agree(dtype):
    t = models.materialize("mlp-tiny", dtype=dtype, backend="torch")
    n = models.materialize("mlp-tiny", dtype=dtype, backend="numpy")
    f32 = models.materialize("mlp-tiny", dtype="float32", backend="torch")
    for name, shape in models.parameter_specs("mlp-tiny"):
        assert t[name].dtype == getattr(torch, dtype)
        assert str(n[name].dtype) == dtype
        assert tuple(t[name].shape) == shape and n[name].shape == shape
        bits = n[name].view(np.uint16) if dtype == "bfloat16" else n[name]
        mine = t[name].view(torch.int16).numpy().view(np.uint16) if dtype == "bfloat16" else t[name].numpy()
        np.testing.assert_array_equal(mine, bits)
        # every dtype holds the float32 draws, rounded
        assert torch.equal(t[name], f32[name].to(getattr(torch, dtype)))


def test_values_do_not_depend_on_thread_count():
    specs = ARCHITECTURES["mlp-tiny"].build()
    # a tensor spanning several blocks, so blocks really run in parallel
    from fastpenalty.models.architectures import Init, TensorSpec
    specs.append(TensorSpec("big.weight", (3, 1 << 20), Init("normal", 1.0)))
    one = fill(specs, seed=7, threads=1, backend="numpy")
    two = fill(specs, seed=7, threads=2, backend="numpy")
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_progress_callback_counts_every_element():
    seen = []
    models.materialize("mlp-tiny", progress=seen.append)
    assert len(seen) == 6 and sum(seen) == models.num_parameters("mlp-tiny")


@pytest.fixture(scope="module")
def gpt2_small():
    return models.materialize("gpt2-small", seed=0)


def test_gpt2_small_initialization(gpt2_small):
    w = gpt2_small
    assert sum(t.numel() for t in w.values()) == EXPECTED["gpt2-small"][0]
    assert abs(w["wte.weight"].std().item() - 0.02) < 2e-4
    assert abs(w["h.5.attn.c_attn.weight"].mean().item()) < 2e-4
    resid = 0.02 / math.sqrt(2 * 12)
    assert abs(w["h.5.attn.c_proj.weight"].std().item() - resid) / resid < 0.02
    assert abs(w["h.5.mlp.c_proj.weight"].std().item() - resid) / resid < 0.02
    assert torch.all(w["h.3.ln_2.weight"] == 1) and torch.all(w["h.3.ln_2.bias"] == 0)
    assert torch.all(w["h.3.mlp.c_fc.bias"] == 0)
    # different tensors get different streams
    assert not torch.equal(w["h.0.attn.c_proj.weight"], w["h.1.attn.c_proj.weight"])


def test_resnet50_initialization():
    w = models.materialize("resnet50", seed=1)
    for name in ("conv1.weight", "layer2.1.conv2.weight", "layer4.0.downsample.0.weight"):
        c_out, _, kh, kw = w[name].shape
        expected = math.sqrt(2.0 / (c_out * kh * kw))
        assert abs(w[name].std().item() - expected) / expected < 0.05, name
    bound = 1 / math.sqrt(2048)
    assert w["fc.weight"].abs().max().item() <= bound
    assert w["fc.weight"].abs().max().item() > 0.99 * bound
    assert torch.all(w["layer3.0.bn1.weight"] == 1) and torch.all(w["layer3.0.downsample.1.bias"] == 0)
