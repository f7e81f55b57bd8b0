"""Parameter layouts of the embedded models, with the initialization each tensor gets.

Shapes and parameter names follow the reference implementations (Hugging Face names for
GPT-2, BERT and the Llama-style decoder, torchvision names for ResNet-50), so a real
checkpoint of the same model lines up name for name. Only trainable parameters are listed:
buffers such as BatchNorm running statistics are not parameters and carry no penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Init:
    """How one tensor is filled: kind is "normal" (std), "uniform" (+-bound), "ones" or "zeros"."""

    kind: str
    scale: float = 0.0


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    init: Init


ZEROS = Init("zeros")
ONES = Init("ones")


def _normal(std: float) -> Init:
    return Init("normal", std)


# ---------------------------------------------------------------- GPT-2 (OpenAI / HF GPT2Model)
def _gpt2(n_layer: int, n_embd: int, vocab: int = 50257, n_ctx: int = 1024) -> list[TensorSpec]:
    # HF GPT-2 stores Conv1D weights as (in_features, out_features); the output head is tied to
    # wte, so it adds no parameters. Residual projections (attn.c_proj, mlp.c_proj) get the
    # GPT-2 paper's 1/sqrt(2 * n_layer) scaling on top of std 0.02.
    std = 0.02
    resid = _normal(std / math.sqrt(2 * n_layer))
    specs = [
        TensorSpec("wte.weight", (vocab, n_embd), _normal(std)),
        TensorSpec("wpe.weight", (n_ctx, n_embd), _normal(std)),
    ]
    for i in range(n_layer):
        p = f"h.{i}."
        specs += [
            TensorSpec(p + "ln_1.weight", (n_embd,), ONES),
            TensorSpec(p + "ln_1.bias", (n_embd,), ZEROS),
            TensorSpec(p + "attn.c_attn.weight", (n_embd, 3 * n_embd), _normal(std)),
            TensorSpec(p + "attn.c_attn.bias", (3 * n_embd,), ZEROS),
            TensorSpec(p + "attn.c_proj.weight", (n_embd, n_embd), resid),
            TensorSpec(p + "attn.c_proj.bias", (n_embd,), ZEROS),
            TensorSpec(p + "ln_2.weight", (n_embd,), ONES),
            TensorSpec(p + "ln_2.bias", (n_embd,), ZEROS),
            TensorSpec(p + "mlp.c_fc.weight", (n_embd, 4 * n_embd), _normal(std)),
            TensorSpec(p + "mlp.c_fc.bias", (4 * n_embd,), ZEROS),
            TensorSpec(p + "mlp.c_proj.weight", (4 * n_embd, n_embd), resid),
            TensorSpec(p + "mlp.c_proj.bias", (n_embd,), ZEROS),
        ]
    specs += [
        TensorSpec("ln_f.weight", (n_embd,), ONES),
        TensorSpec("ln_f.bias", (n_embd,), ZEROS),
    ]
    return specs


# ---------------------------------------------------------------- BERT-base (HF BertModel)
def _bert(n_layer: int = 12, hidden: int = 768, inter: int = 3072, vocab: int = 30522,
          max_pos: int = 512, type_vocab: int = 2) -> list[TensorSpec]:
    # torch Linear weights are (out_features, in_features); all weights normal(0, 0.02).
    w = _normal(0.02)

    def linear(prefix: str, out_f: int, in_f: int) -> list[TensorSpec]:
        return [TensorSpec(prefix + ".weight", (out_f, in_f), w),
                TensorSpec(prefix + ".bias", (out_f,), ZEROS)]

    def layer_norm(prefix: str) -> list[TensorSpec]:
        return [TensorSpec(prefix + ".weight", (hidden,), ONES),
                TensorSpec(prefix + ".bias", (hidden,), ZEROS)]

    specs = [
        TensorSpec("embeddings.word_embeddings.weight", (vocab, hidden), w),
        TensorSpec("embeddings.position_embeddings.weight", (max_pos, hidden), w),
        TensorSpec("embeddings.token_type_embeddings.weight", (type_vocab, hidden), w),
        *layer_norm("embeddings.LayerNorm"),
    ]
    for i in range(n_layer):
        p = f"encoder.layer.{i}."
        specs += [
            *linear(p + "attention.self.query", hidden, hidden),
            *linear(p + "attention.self.key", hidden, hidden),
            *linear(p + "attention.self.value", hidden, hidden),
            *linear(p + "attention.output.dense", hidden, hidden),
            *layer_norm(p + "attention.output.LayerNorm"),
            *linear(p + "intermediate.dense", inter, hidden),
            *linear(p + "output.dense", hidden, inter),
            *layer_norm(p + "output.LayerNorm"),
        ]
    specs += linear("pooler.dense", hidden, hidden)
    return specs


# ---------------------------------------------------------------- ResNet-50 (torchvision)
def _conv(name: str, c_out: int, c_in: int, k: int) -> TensorSpec:
    # Kaiming normal, mode="fan_out", ReLU gain: std = sqrt(2 / (c_out * k * k)).
    return TensorSpec(name, (c_out, c_in, k, k), _normal(math.sqrt(2.0 / (c_out * k * k))))


def _batch_norm(prefix: str, c: int) -> list[TensorSpec]:
    return [TensorSpec(prefix + ".weight", (c,), ONES), TensorSpec(prefix + ".bias", (c,), ZEROS)]


def _resnet50(num_classes: int = 1000) -> list[TensorSpec]:
    specs = [_conv("conv1.weight", 64, 3, 7), *_batch_norm("bn1", 64)]
    c_in = 64
    stages = [(64, 3), (128, 4), (256, 6), (512, 3)]  # bottleneck width, blocks per stage
    for s, (width, blocks) in enumerate(stages, start=1):
        c_out = 4 * width
        for b in range(blocks):
            p = f"layer{s}.{b}."
            specs += [
                _conv(p + "conv1.weight", width, c_in, 1), *_batch_norm(p + "bn1", width),
                _conv(p + "conv2.weight", width, width, 3), *_batch_norm(p + "bn2", width),
                _conv(p + "conv3.weight", c_out, width, 1), *_batch_norm(p + "bn3", c_out),
            ]
            if b == 0:  # projection shortcut: 1x1 conv + BatchNorm (torchvision's downsample.0/.1)
                specs += [_conv(p + "downsample.0.weight", c_out, c_in, 1),
                          *_batch_norm(p + "downsample.1", c_out)]
            c_in = c_out
    bound = 1.0 / math.sqrt(c_in)  # torch Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    specs += [TensorSpec("fc.weight", (num_classes, c_in), Init("uniform", bound)),
              TensorSpec("fc.bias", (num_classes,), Init("uniform", bound))]
    return specs


# ---------------------------------------------------------------- 1B Llama-style decoder
def _decoder(n_layer: int = 16, hidden: int = 2048, inter: int = 8192, n_heads: int = 32,
             n_kv_heads: int = 8, vocab: int = 128256) -> list[TensorSpec]:
    # The Llama-3.2-1B shape: grouped-query attention (8 key/value heads of 64), SwiGLU MLP,
    # RMSNorm weights (init 1), no biases, output head tied to the embedding (no extra tensor).
    w = _normal(0.02)
    head_dim = hidden // n_heads
    kv = n_kv_heads * head_dim
    specs = [TensorSpec("model.embed_tokens.weight", (vocab, hidden), w)]
    for i in range(n_layer):
        p = f"model.layers.{i}."
        specs += [
            TensorSpec(p + "input_layernorm.weight", (hidden,), ONES),
            TensorSpec(p + "self_attn.q_proj.weight", (hidden, hidden), w),
            TensorSpec(p + "self_attn.k_proj.weight", (kv, hidden), w),
            TensorSpec(p + "self_attn.v_proj.weight", (kv, hidden), w),
            TensorSpec(p + "self_attn.o_proj.weight", (hidden, hidden), w),
            TensorSpec(p + "post_attention_layernorm.weight", (hidden,), ONES),
            TensorSpec(p + "mlp.gate_proj.weight", (inter, hidden), w),
            TensorSpec(p + "mlp.up_proj.weight", (inter, hidden), w),
            TensorSpec(p + "mlp.down_proj.weight", (hidden, inter), w),
        ]
    specs.append(TensorSpec("model.norm.weight", (hidden,), ONES))
    return specs


# ---------------------------------------------------------------- tiny MLP for tests and demos
def _mlp_tiny() -> list[TensorSpec]:
    # Odd sizes on purpose, so kernels see tails that are not multiples of a vector width.
    return [
        TensorSpec("fc1.weight", (127, 33), Init("uniform", 1.0 / math.sqrt(33))),
        TensorSpec("fc1.bias", (127,), Init("uniform", 1.0 / math.sqrt(33))),
        TensorSpec("norm.weight", (127,), ONES),
        TensorSpec("norm.bias", (127,), ZEROS),
        TensorSpec("fc2.weight", (10, 127), Init("uniform", 1.0 / math.sqrt(127))),
        TensorSpec("fc2.bias", (10,), Init("uniform", 1.0 / math.sqrt(127))),
    ]


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[[], list[TensorSpec]]


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("gpt2-small", "GPT-2 small (124M): 12 layers, 768 wide, tied head",
                     lambda: _gpt2(12, 768)),
        Architecture("gpt2-xl", "GPT-2 XL (1.56B): 48 layers, 1600 wide, tied head",
                     lambda: _gpt2(48, 1600)),
        Architecture("bert-base", "BERT-base uncased encoder (110M) with pooler",
                     lambda: _bert()),
        Architecture("resnet50", "ResNet-50 (25.6M), torchvision layout, 1000 classes",
                     lambda: _resnet50()),
        Architecture("decoder-1b", "Llama-3.2-1B-shaped decoder (1.24B): 16 layers, 2048 wide, "
                     "GQA, SwiGLU, RMSNorm, tied embeddings", lambda: _decoder()),
        Architecture("mlp-tiny", "two-layer MLP with a norm (5.9K), for tests",
                     lambda: _mlp_tiny()),
    )
}
