# %% [markdown]
# # Memory
#
# > Measure what a training step keeps alive; trade compute for memory with checkpointing.

# %% [markdown]
# ## What we're building today
#
# Autograd made gradients free to *write*. They are not free to *hold*: to run
# `backward`, the graph keeps every array that a backward formula needs, from the
# moment the forward pass makes it until backward has used it. This module measures
# that memory on your own model and then buys most of it back.
#
# ```
#     Your training step:                     What stays in memory:
#     ───────────────────                     ─────────────────────
#
#     model = MLP(...)                        W, b of every layer           parameters
#     opt = Adam(model.parameters())          (nothing yet)
#     loss = loss_fn(model(x), y)             x, y, and every array a       inputs,
#                                             backward formula will read    activations
#     loss.backward()                         ∂L/∂W, ∂L/∂b for every W, b   gradients
#     opt.step()                              m and v for every W, b        optimizer state
#     del loss   (or the next loss = ...)     the graph is released
# ```
#
# Three tools, each checked against a measurement:
#
# 1. a **scale calculator**: the memory of training a GPT-3-sized model, from formulas;
# 2. a **memory ledger**: walk your graph from the loss and count every byte it holds,
#    each buffer once, and compare with what `tracemalloc` measured;
# 3. **gradient checkpointing**: keep a few activations, recompute the rest during
#    backward, get bit-for-bit the same gradients with a fraction of the memory.

# %% [markdown]
# ## Where the bytes of a training step live
#
# Take an MLP of Linear + ReLU blocks, batch `B`, width `W`, float32 (4 bytes a value).
# One activation, the output of one layer for the whole batch, is `B·W·4` bytes; one
# weight matrix is `W·W·4`. For `B = 256, W = 512` both are 512 KiB and 1 MiB.
#
# ```
# ┌───────────────────────────────────────────────────────────────────┐
# │                  Training memory of one MLP step                  │
# ├───────────────────────────────────────────────────────────────────┤
# │  Lives across training steps:                                     │
# │  ┌─────────────────┐  ┌─────────────────┐  ┌─────────────────┐    │
# │  │   Parameters    │  │    Gradients    │  │ Optimizer state │    │
# │  │     W, b        │  │  ∂L/∂W, ∂L/∂b   │  │  Adam: m and v  │    │
# │  │   1 × params    │  │   1 × params    │  │   2 × params    │    │
# │  └─────────────────┘  └─────────────────┘  └─────────────────┘    │
# │                                                                   │
# │  Lives from forward until backward has used it (the graph):       │
# │  ┌─────────────────┐  ┌─────────────────┐  ┌─────────────────┐    │
# │  │     Inputs      │  │   Activations   │  │  Other outputs  │    │
# │  │      x, y       │  │ saved for the   │  │  intermediates  │    │
# │  │                 │  │ backward pass   │  │ graph refers to │    │
# │  │ B × features    │  │ ∝ B × depth     │  │ ∝ B × depth     │    │
# │  └─────────────────┘  └─────────────────┘  └─────────────────┘    │
# └───────────────────────────────────────────────────────────────────┘
# ```
#
# The top row is fixed by the model: 4 × params for Adam. The bottom row grows with the
# batch and with the depth, and for a large model at a useful batch it is the biggest
# part. Which arrays a graph keeps depends on the engine: your `Linear` saves its input
# for `∂L/∂W = xᵀ·g`, your ReLU saves what it needs for its mask. The ledger you build
# below reads them off the live graph instead of guessing.

# %% [markdown]
# ## A step, traced
#
# Three blocks `hᵢ = relu(hᵢ₋₁ @ Wᵢ + bᵢ)`, `h₀ = x`, in the engine you wrote in
# module 01. Count the activation-sized arrays (`A = B·W·4` bytes each) that the graph
# holds:
#
# ```
# Forward (the graph grows):
#     u1 = x @ W1        MatMul saves x and W1 (for ∂L/∂W1 = xᵀ·g)     held: 1 A   u1
#     z1 = u1 + b1       Add saves no array, but refers to u1          held: 2 A   + z1
#     h1 = relu(z1)      ReLU saves z1 (its mask: z1 > 0)              held: 3 A   + h1
#     u2, z2, h2         block 2: MatMul saves h1, ...                 held: 6 A
#     u3, z3, h3         block 3                                       held: 9 A
#     loss = h3.mean()   Mean keeps only a shape                       held: 9 A   ← peak
#
# Backward:
#     loss.backward()    each node frees its saved arrays after its    held: 9 A
#                        backward, but still refers to its inputs        + gradients
#     del loss           nothing refers to the graph any more          held: 0 A
# ```
#
# So the graph holds 3 activations per block, and holds them until you drop the loss
# (`del loss`, or the next step's `loss = ...`): the peak grows linearly with depth.
# With `B = 256, W = 512` (`A` = 512 KiB) that is 4.5 MiB for three blocks. (`nn.Linear`
# of module 02 fuses the matmul and the bias into one op, so a Linear + ReLU block keeps
# 2 A: the Linear's input and the ReLU's input.) (PyTorch frees each activation as soon
# as backward has used it, so its memory falls during backward; the peak, at the end of
# forward, is the same story.) The graded tests below check these counts against the ledger
# of a live graph. Gradient checkpointing changes the line.

# %% [markdown]
# ## Gradient checkpointing: keep √n, recompute the rest
#
# Chen, Xu, Zhang and Guestrin (2016, "Training Deep Nets with Sublinear Memory Cost")
# split the `n` layers into `k` segments. The forward pass keeps only each segment's
# input; backward recomputes one segment at a time from its input and backpropagates
# through the fresh copy:
#
# ```
# Forward, n = 9 layers in k = 3 segments; only segment inputs are kept:
#
#     x ──>[L1]──[L2]──[L3]──> h3 ──>[L4]──[L5]──[L6]──> h6 ──>[L7]──[L8]──[L9]──> loss
#     ^                        ^                         ^
#     kept                     kept                      kept     (inside: dropped)
#
# Backward, right to left, one segment alive at a time:
#
#     segment 3: recompute L7..L9 from h6, backprop through them, drop them
#     segment 2: recompute L4..L6 from h3, backprop through them, drop them
#     segment 1: recompute L1..L3 from x,  backprop through them, drop them
#
# memory:   k kept inputs + one segment of n/k layers  =  k + n/k,  least at k = √n
# compute:  every layer runs forward twice: one extra forward per step
# ```
#
# With `k = √n` the graph holds about `2√n` layer outputs instead of `n`. The price is
# one extra forward pass, about a third of a step when backward costs two forwards.
# The gradients are not an approximation: recomputing runs the same numpy operations on
# the same inputs, so they come out identical to the last bit.

# %% [markdown]
# ## Real-world impact: GPT-3 at scale, from formulas
#
# A GPT-3-like model (96 layers, `d_model` 12288, 96 heads, sequence 2048, vocabulary
# 50257, Brown et al. 2020). Assumed: everything in float32, Adam, and one model
# replica holding a micro-batch of 4 sequences.
# Parameters `12·L·h² + 13·L·h + V·h + s·h + 2h`; activations per layer from
# Korthikanti et al. (2022, "Reducing Activation Recomputation in Large Transformer
# Models"): `p·(16·sbh + 2·as²b) + (2·sbh + as²b)` bytes with `p` bytes per value and
# 1-byte dropout masks (their `sbh(34 + 5as/h)` at `p = 2`). GB = 10⁹ bytes. Every
# number below is computed by `render_gpt3_comparison()` in this module:
#
# ```
# GPT-3 175B, fp32, Adam, batch 4 × 2048 tokens
#
# No checkpointing              Checkpoint every layer        √n: 10 segments
# ┌──────────────────────────┐  ┌──────────────────────────┐  ┌──────────────────────────┐
# │ Parameters:       698 GB │  │ Parameters:       698 GB │  │ Parameters:       698 GB │
# │ Gradients:        698 GB │  │ Gradients:        698 GB │  │ Gradients:        698 GB │
# │ Optimizer:       1397 GB │  │ Optimizer:       1397 GB │  │ Optimizer:       1397 GB │
# │ Activations:     2029 GB │  │ Activations:       60 GB │  │ Activations:      215 GB │
# ├──────────────────────────┤  ├──────────────────────────┤  ├──────────────────────────┤
# │ Total:           4823 GB │  │ Total:           2853 GB │  │ Total:           3009 GB │
# └──────────────────────────┘  └──────────────────────────┘  └──────────────────────────┘
#                               41 % of the total saved       38 % of the total saved
# ```
#
# What a quick estimate of this picture gets wrong:
#
# - the weights (4 B × 174.6 billion ≈ 698 GB), gradients and Adam's `m`, `v` do not
#   shrink: checkpointing only cuts activations, so the saving is at most the
#   activations' share of the total, and that share grows with the batch;
# - activations are not a constant: 507 GB per sequence of 2048 tokens here, so "2100
#   GB" is one particular batch (about 4 sequences in fp32);
# - √n segments is not the best split for a transformer: one layer's interior (66·sbh +
#   9·as²b bytes in fp32) is 52 times its input (4·sbh), so keeping every layer's input
#   and recomputing one layer at a time costs less memory than √n segments.
#
# Checkpointing every layer saves 45 % of the total from a batch of 5 sequences up;
# 15 % at 1 sequence, 26 % at 2, 57 % at 8. Real runs of this size use mixed precision
# (16-bit weights, gradients and activations, fp32 master weights and Adam moments) and
# shard the states over many GPUs; mixed-precision Adam needs 2 + 2 + 12 = 16 bytes per
# parameter (Rajbhandari et al. 2020, ZeRO), the same 2794 GB as the fp32 column's top
# three rows; 16-bit activations take 54 % of the fp32 activation bytes.

# %% [markdown]
# ## Before and after
#
# Before: "the model is small, why is the step so big?" The benchmark's 32-block MLP
# (width 512) has 32 MiB of weights, yet at batch 256 its graph holds another 32 MiB
# (2 activations of 512 KiB per block), and Adam and the gradients add 96 MiB more.
# After this module you can point at each megabyte: which array, which layer, kept for
# which backward formula, and you have a switch (`checkpoint_sequential`) that gives
# most of the graph's share back for about a third more compute.

# %%
#| default_exp memory

# %%
#| export
import ctypes
import math
import tracemalloc
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinytorch.autograd import Function, Variable, enable_grad, is_grad_enabled, no_grad

# %% [markdown]
# ## Part 1: the scale calculator
#
# Three formulas, each with its assumptions stated in the docstring.
#
# - **Parameters of a GPT-style decoder** with `L` layers of width `h`: attention has
#   four `h × h` matrices (Q, K, V, output) and the MLP two `h × 4h` ones, so `12·h²`
#   weights a layer, plus `13·h` biases and layer-norm gains and shifts (attention
#   3h + h, MLP 4h + h, two layer norms 2·2h).
#   Add the token embedding `V·h`, the learned positions `s·h` and the final layer norm
#   `2h`.
# - **Training state**: weights, one gradient per weight, and the optimizer's values
#   per weight (Adam keeps two moments, SGD with momentum one, plain SGD none).
# - **Activations of one transformer layer** for `b` sequences of `s` tokens with `a`
#   heads: Korthikanti et al. count `16·sbh + 2·as²b` values (layer-norm, attention and
#   MLP inputs, the `a·s×s` attention scores and their dropout output) and
#   `2·sbh + as²b` one-byte dropout masks.


# %% nbgrader={"grade": false, "grade_id": "memory_scale_calculator", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a GPT-style decoder: everything the memory formulas need."""

    n_layers: int
    d_model: int
    n_heads: int
    seq_len: int
    vocab_size: int


GPT3_175B = TransformerConfig(
    n_layers=96, d_model=12288, n_heads=96, seq_len=2048, vocab_size=50257
)
OPTIMIZER_VALUES_PER_PARAM = {"adam": 2, "sgd_momentum": 1, "sgd": 0}


def transformer_param_count(config: TransformerConfig) -> int:
    """Weights of a GPT-style decoder: 12·h² + 13·h per layer, embeddings V·h + s·h,
    final layer norm 2·h."""
    ### BEGIN SOLUTION
    h = config.d_model
    per_layer = 12 * h * h + 13 * h
    embeddings = config.vocab_size * h + config.seq_len * h
    return config.n_layers * per_layer + embeddings + 2 * h
    ### END SOLUTION


def training_state_bytes(
    n_params: int, bytes_per_value: int = 4, optimizer: str = "adam"
) -> dict[str, int]:
    """Bytes that live as long as training does: parameters, gradients, optimizer state.

    Assumes gradients and optimizer values have the parameters' precision (fp32 training,
    no mixed-precision master copy)."""
    if optimizer not in OPTIMIZER_VALUES_PER_PARAM:
        raise ValueError(
            f"training_state_bytes: unknown optimizer {optimizer!r}; "
            f"known: {', '.join(OPTIMIZER_VALUES_PER_PARAM)}"
        )
    ### BEGIN SOLUTION
    weights = n_params * bytes_per_value
    moments = OPTIMIZER_VALUES_PER_PARAM[optimizer] * weights
    return {"Parameters": weights, "Gradients": weights, "Optimizer": moments}
    ### END SOLUTION


def layer_activation_bytes(
    config: TransformerConfig, batch: int, bytes_per_value: int = 4, mask_bytes: int = 1
) -> int:
    """Bytes one transformer layer keeps for backward (Korthikanti et al. 2022, §4.1):
    16·sbh + 2·as²b values and 2·sbh + as²b dropout-mask bytes, no sequence or tensor
    parallelism, no flash attention."""
    s, b, h, a = config.seq_len, batch, config.d_model, config.n_heads
    ### BEGIN SOLUTION
    values = 16 * s * b * h + 2 * a * s * s * b
    masks = 2 * s * b * h + a * s * s * b
    return bytes_per_value * values + mask_bytes * masks
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_memory_scale_calculator", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_scale_calculator", points=10)
_L, _h, _a = (int(n) for n in check.rng.integers(2, 9, 3))
_V, _s, _b = (int(n) for n in check.rng.integers(10, 60, 3))
_config = {"n_layers": _L, "d_model": _h, "n_heads": _a, "seq_len": _s, "vocab_size": _V}
check.equal(
    check.probe(lambda: transformer_param_count(TransformerConfig(**_config)), "param count"),
    _L * (12 * _h * _h + 13 * _h) + _V * _h + _s * _h + 2 * _h,
    f"transformer_param_count(L={_L}, h={_h}, V={_V}, s={_s})",
    hint="12·h² + 13·h per layer, plus V·h + s·h embeddings and the final norm's 2·h",
)
_n = int(check.rng.integers(100, 10_000))
for _optimizer, _moments in (("adam", 2), ("sgd_momentum", 1), ("sgd", 0)):
    check.equal(
        check.probe(lambda o=_optimizer: training_state_bytes(_n, 2, o), f"state {_optimizer}"),
        {"Parameters": 2 * _n, "Gradients": 2 * _n, "Optimizer": _moments * 2 * _n},
        f"training_state_bytes({_n}, bytes_per_value=2, optimizer={_optimizer!r})",
        hint="one gradient per weight; Adam keeps two values per weight, momentum one",
    )
for _p in (2, 4):
    _values = 16 * _s * _b * _h + 2 * _a * _s * _s * _b
    _masks = 2 * _s * _b * _h + _a * _s * _s * _b
    check.equal(
        check.probe(
            lambda p=_p: layer_activation_bytes(TransformerConfig(**_config), _b, p), f"act {_p}"
        ),
        _p * _values + _masks,
        f"layer_activation_bytes(s={_s}, b={_b}, h={_h}, a={_a}, bytes_per_value={_p})",
        hint="p·(16·sbh + 2·as²b) bytes of values plus (2·sbh + as²b) one-byte masks",
    )
check.equal(
    check.probe(lambda: transformer_param_count(GPT3_175B), "GPT-3"), 174_604_259_328, "GPT-3"
)
check.done()

# %% [markdown]
# ### Checkpointed activations, and the picture
#
# With `k` segments the graph holds `k` segment inputs (`s·b·h` values each) and, while
# one segment is recomputed in backward, that segment's `⌈L/k⌉` layers in full. `k = L`
# is "checkpoint every layer" (what Megatron-LM calls full recomputation). We count the
# recomputed segment's first input twice (as a kept input and inside its layer): an
# upper bound, off by under 1 %. These functions are given: they only combine yours.


# %%
#| export
def activation_bytes(
    config: TransformerConfig, batch: int, bytes_per_value: int = 4, segments: int | None = None
) -> int:
    """Peak activation bytes of all layers; `segments=None` keeps every layer's, `k` keeps k
    segment inputs plus one recomputed segment of ⌈L/k⌉ layers."""
    per_layer = layer_activation_bytes(config, batch, bytes_per_value)
    if segments is None:
        return config.n_layers * per_layer
    if not 1 <= segments <= config.n_layers:
        raise ValueError(f"activation_bytes: segments={segments} must be in 1..{config.n_layers}")
    segment_input = bytes_per_value * config.seq_len * batch * config.d_model
    return segments * segment_input + math.ceil(config.n_layers / segments) * per_layer


def training_memory(
    config: TransformerConfig,
    batch: int,
    bytes_per_value: int = 4,
    optimizer: str = "adam",
    segments: int | None = None,
) -> dict[str, int]:
    """Parameters, gradients, optimizer state and peak activations, in bytes."""
    memory = training_state_bytes(transformer_param_count(config), bytes_per_value, optimizer)
    memory["Activations"] = activation_bytes(config, batch, bytes_per_value, segments)
    return memory


def total_saving(config: TransformerConfig, batch: int, segments: int, **kwargs: Any) -> float:
    """Fraction of the whole training memory that checkpointing with `segments` saves."""
    full = sum(training_memory(config, batch, **kwargs).values())
    checkpointed = sum(training_memory(config, batch, segments=segments, **kwargs).values())
    return 1 - checkpointed / full


def smallest_batch_saving(
    config: TransformerConfig, target: float, segments: int, largest: int = 4096, **kwargs: Any
) -> int:
    """The smallest batch at which checkpointing saves at least `target` of the total."""
    for batch in range(1, largest + 1):
        if total_saving(config, batch, segments, **kwargs) >= target:
            return batch
    raise ValueError(f"no batch up to {largest} saves {target:.0%} with {segments} segments")


# %% [markdown]
# Boxes are drawn by one small renderer, used for the GPT-3 picture above and for your
# own model's ledger below; it pads by display width, so every box is a rectangle.


# %%
#| export
def _char_width(char: str) -> int:
    if unicodedata.combining(char) or char in "\u200b\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _display_width(text: str) -> int:
    """Monospace columns: wide characters (CJK, most emoji) take 2, combining marks 0."""
    return sum(_char_width(char) for char in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _display_width(text))
    return fill + text if right else text + fill


def render_box(
    rows: Sequence[tuple[str, str]], total: tuple[str, str] | None = None, width: int = 26
) -> list[str]:
    """A box of `label  value` rows (values right-aligned), with an optional total below a
    rule; `width` is the inside width in display columns."""
    widest = max([_display_width(f" {k}  {v} ") for k, v in [*rows, *([total] if total else [])]])
    width = max(width, widest)

    def line(label: str, value: str) -> str:
        gap = width - 2 - _display_width(label) - _display_width(value)
        return f"│ {label}{' ' * gap}{value} │"

    lines = ["┌" + "─" * width + "┐", *(line(k, v) for k, v in rows)]
    if total:
        lines += ["├" + "─" * width + "┤", line(*total)]
    return [*lines, "└" + "─" * width + "┘"]


def side_by_side(blocks: Sequence[Sequence[str]], gap: int = 2) -> str:
    """Place blocks of lines next to each other, top-aligned, each padded to its widest line."""
    widths = [max(_display_width(line) for line in block) for block in blocks]
    height = max(len(block) for block in blocks)
    rows = []
    for i in range(height):
        cells = [
            _pad(block[i] if i < len(block) else "", w)
            for block, w in zip(blocks, widths, strict=True)
        ]
        rows.append((" " * gap).join(cells).rstrip())
    return "\n".join(rows)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.0f} GB"


def render_memory_column(title: str, memory: dict[str, int], note: str = "") -> list[str]:
    """One titled box of a memory breakdown with its total, and an optional note below."""
    rows = [(f"{name}:", _gb(value)) for name, value in memory.items()]
    block = [title, *render_box(rows, ("Total:", _gb(sum(memory.values()))))]
    return [*block, note] if note else block


def render_gpt3_comparison(
    config: TransformerConfig = GPT3_175B,
    batch: int = 4,
    bytes_per_value: int = 4,
    name: str = "GPT-3 175B",
) -> str:
    """The opening's picture: no checkpointing, every layer, √n segments, with savings."""
    root_n = round(math.sqrt(config.n_layers))
    plans = [
        ("No checkpointing", None),
        ("Checkpoint every layer", config.n_layers),
        (f"√n: {root_n} segments", root_n),
    ]
    blocks = []
    for title, segments in plans:
        memory = training_memory(config, batch, bytes_per_value, segments=segments)
        note = ""
        if segments is not None:
            note = f"{total_saving(config, batch, segments, bytes_per_value=bytes_per_value):.0%}"
            note = note.replace("%", " % of the total saved")
        blocks.append(render_memory_column(title, memory, note))
    precision = {4: "fp32", 2: "16-bit"}.get(bytes_per_value, f"{bytes_per_value} B/value")
    heading = f"{name}, {precision}, Adam, batch {batch} × {config.seq_len} tokens"
    return heading + "\n\n" + side_by_side(blocks)


# %% [markdown]
# Your calculator now draws the opening's picture, and answers "from which batch does
# checkpointing save 45 %?":

# %%
try:
    print(render_gpt3_comparison())
    for _batch in (1, 2, 4, 5, 8):
        _saving = total_saving(GPT3_175B, _batch, GPT3_175B.n_layers)
        print(f"batch {_batch}: checkpointing every layer saves {_saving:.1%} of the total")
    print("45 % from batch", smallest_batch_saving(GPT3_175B, 0.45, GPT3_175B.n_layers))
except NotImplementedError:
    print("Finish Part 1 (the three formulas above) to see the picture computed by your code.")

# %% [markdown]
# ## Part 2: count every buffer once
#
# A numpy array is a *view*: a shape and strides over a buffer that it may share.
# `x.T`, `x[:, :10]` and `x.reshape(...)` allocate no data; they point at `x`'s buffer
# through `.base`. A ledger that adds up `nbytes` of every array it meets counts the
# same memory several times, and one that counts a slice's `nbytes` undercounts: the
# slice keeps its whole base buffer alive.
#
# ```
#     a = np.zeros((256, 512), np.float32)     a.base is None    owns 512 KiB
#     t = a.T                                  t.base is a       owns nothing
#     s = a[:, :10]                            s.base is a       owns nothing, keeps a alive
#
#     count a, t, s:   naive Σ nbytes = 512 + 512 + 10 KiB      one buffer = 512 KiB
# ```
#
# So: follow `.base` to the array that owns the buffer, and count that owner once, under
# the first category that claims it. (An array made from a foreign buffer, such as
# `np.frombuffer(b)`, has a non-array base; the last array in the chain stands for it.)


# %% nbgrader={"grade": false, "grade_id": "memory_buffer_counter", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def owning_array(array: np.ndarray) -> np.ndarray:
    """The array whose buffer `array` uses: follow `.base` while it is an ndarray."""
    ### BEGIN SOLUTION
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array
    ### END SOLUTION


class BufferCounter:
    """Bytes per category, counting each underlying buffer once, under the first category
    that adds it (callers add the most specific category first)."""

    def __init__(self) -> None:
        self._owners: dict[int, tuple[np.ndarray, str]] = {}  # id(owner) -> (owner, category)

    def add(self, array: np.ndarray, category: str) -> bool:
        """Count `array`'s buffer under `category`; False if that buffer was counted already."""
        ### BEGIN SOLUTION
        owner = owning_array(array)
        if id(owner) in self._owners:
            return False
        self._owners[id(owner)] = (owner, category)  # holding `owner` keeps its id unique
        return True
        ### END SOLUTION

    def bytes_by_category(self) -> dict[str, int]:
        """Total bytes of the buffers counted under each category."""
        ### BEGIN SOLUTION
        totals: dict[str, int] = {}
        for owner, category in self._owners.values():
            totals[category] = totals.get(category, 0) + owner.nbytes
        return totals
        ### END SOLUTION

    def buffers_by_category(self) -> dict[str, int]:
        """How many distinct buffers each category holds."""
        counts: dict[str, int] = {}
        for _, category in self._owners.values():
            counts[category] = counts.get(category, 0) + 1
        return counts


# %% nbgrader={"grade": true, "grade_id": "test_memory_buffer_counter", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_buffer_counter", points=10)
_rows, _cols = (int(n) for n in check.rng.integers(8, 64, 2))


def _owners():
    a = np.zeros((_rows, _cols), np.float32)
    views = {"a.T": a.T, "a[:, :3]": a[:, :3], "a.reshape(-1)[::2]": a.reshape(-1)[::2], "a": a}
    return {k: (owning_array(v).shape, owning_array(v).nbytes) for k, v in views.items()}


_got = check.no_raise(check.probe(_owners, "owning_array of views of a"), "owning_array")
for _how, _found in _got.items():
    check.equal(
        _found,
        ((_rows, _cols), _rows * _cols * 4),
        f"(shape, nbytes) of owning_array({_how}), a of shape ({_rows}, {_cols}) float32",
        hint="follow .base while it is an ndarray: the owner is the array with the buffer",
    )


def _count():
    a = np.zeros((_rows, _cols), np.float32)
    counter = BufferCounter()
    added = [counter.add(a, "activations"), counter.add(a.T, "gradients")]
    added.append(counter.add(np.ones(3), "gradients"))
    added.append(counter.add(a[:, :2], "inputs"))
    return added, counter.bytes_by_category()


_added, _totals = check.no_raise(check.probe(_count, "a BufferCounter"), "BufferCounter")
check.equal(
    _added,
    [True, False, True, False],
    "add(a), add(a.T), add(np.ones(3)), add(a[:, :2])",
    hint="a view shares its base's buffer: add() returns False and counts nothing again",
)
check.equal(
    _totals,
    {"activations": _rows * _cols * 4, "gradients": 24},
    "bytes_by_category()",
    hint="each buffer once, under the category that added it first",
)


def _slice_first():
    a = np.zeros((_rows, _cols))
    counter = BufferCounter()
    counter.add(a[:, :1], "inputs")
    raw = np.frombuffer(bytearray(80), dtype=np.float64)
    counter.add(raw[2:], "inputs")
    return counter.bytes_by_category()


check.equal(
    check.probe(_slice_first, "a slice added first"),
    {"inputs": _rows * _cols * 8 + 80},
    "bytes of a slice added first (its whole base)",
)
check.done()

# %% [markdown]
# ## Part 3: walk the graph from the loss
#
# A `Variable` made by an op has a `grad_fn`: the node of the op that made it. The node
# holds what backward needs: the arrays its forward saved (`ctx.save_for_backward`, and
# anything else stored on `ctx`) and the input `Variable`s to send gradients to. Walking
# from the loss through those inputs reaches every `Variable` the graph keeps alive:
#
# ```
#     loss ── grad_fn: Mean ── inputs: h2
#                                      └─ grad_fn: ReLU ── saved: z2 ── inputs: z2
#                                                                       └─ grad_fn: Add ...
#                                                                          ... leaves: W, b, x
# ```
#
# The two helpers below read a node without knowing how your engine names its fields:
# every `Variable` found on the node (directly, or in a tuple/list/dict) is an edge to
# follow, every ndarray is an array the node holds for backward. Nodes are visited once
# each with an explicit stack, so a 100 000-op chain walks fine (no recursion).


# %%
#| export
def _node_fields(node: Any) -> list[Any]:
    """The values a graph node holds: its attributes, and the items of tuple/list/dict ones."""
    values = list(vars(node).values()) if hasattr(node, "__dict__") else []
    for name in ("saved_tensors", "inputs", "parents", "next_functions"):  # may be properties
        try:
            values.append(getattr(node, name))
        except Exception:  # a freed graph may raise here: then it holds nothing
            continue
    found = []
    for value in values:
        if isinstance(value, (tuple, list)):
            found.extend(value)
        elif isinstance(value, dict):
            found.extend(value.values())
        else:
            found.append(value)
    return found


def node_inputs(node: Any) -> list[Variable]:
    """The Variables a node refers to (its inputs: where its gradients go)."""
    return [value for value in _node_fields(node) if isinstance(value, Variable)]


def node_saved_arrays(node: Any) -> list[np.ndarray]:
    """The ndarrays a node holds for its backward formula."""
    return [value for value in _node_fields(node) if isinstance(value, np.ndarray)]


# %% nbgrader={"grade": false, "grade_id": "memory_walk_graph", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass
class GraphContents:
    """Everything reachable from one output: Variables (leaves and op outputs), nodes, and
    the arrays the nodes hold for backward."""

    variables: list[Variable] = field(default_factory=list)
    nodes: list[Any] = field(default_factory=list)
    saved: list[np.ndarray] = field(default_factory=list)


def walk_graph(output: Variable) -> GraphContents:
    """Visit every Variable and node reachable from `output` once, iteratively."""
    if not isinstance(output, Variable):
        raise TypeError(
            f"walk_graph: expected a Variable (e.g. the loss), got {type(output).__name__}"
        )
    contents = GraphContents()
    ### BEGIN SOLUTION
    seen: set[int] = set()
    stack = [output]
    while stack:
        variable = stack.pop()
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        contents.variables.append(variable)
        node = variable.grad_fn
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        contents.nodes.append(node)
        contents.saved.extend(node_saved_arrays(node))
        stack.extend(node_inputs(node))
    ### END SOLUTION
    return contents


# %% nbgrader={"grade": true, "grade_id": "test_memory_walk_graph", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_walk_graph", points=15)
_x0 = check.rng.standard_normal((8, 5))
_W0 = check.rng.standard_normal((5, 3))


def _walk():
    x = Variable(_x0, name="x")
    W = Variable(_W0, requires_grad=True, name="W")
    b = Variable(np.zeros(3), requires_grad=True, name="b")
    loss = ((x @ W + b).relu()).mean()
    loss.name = "loss"
    graph = walk_graph(loss)
    return {
        "names": sorted(v.name for v in graph.variables if v.name),
        "variables": len(graph.variables),
        "distinct variables": len({id(v) for v in graph.variables}),
        "nodes": len(graph.nodes),
        "distinct nodes": len({id(n) for n in graph.nodes}),
        "saved shapes": sorted({a.shape for a in graph.saved}),
    }


_got = check.no_raise(check.probe(_walk, "walk_graph(relu(x @ W + b).mean())"), "walk_graph")
check.equal(_got["names"], ["W", "b", "loss", "x"], "names of the Variables walk_graph reached")
check.equal(
    _got["distinct variables"],
    _got["variables"],
    "distinct Variables listed",
    hint="visit each Variable once",
)
check.equal(_got["nodes"], 4, "nodes of relu(x @ W + b).mean() (matmul, add, relu, mean)")
check.equal(_got["distinct nodes"], 4, "distinct nodes listed", hint="visit each node once")
check.expect(
    (8, 5) in _got["saved shapes"],
    f"walk_graph's `saved` has arrays of shapes {_got['saved shapes']}, none of x's "
    "(8, 5): x @ W saves x for ∂L/∂W = xᵀ·g; collect every node's saved arrays",
)


def _diamond():
    y = Variable(np.ones(4), requires_grad=True) * 2.0
    graph = walk_graph((y * y + y).sum())
    nodes, variables = graph.nodes, graph.variables
    return len(nodes), len({id(n) for n in nodes}), len(variables), len({id(v) for v in variables})


check.equal(
    check.probe(_diamond, "a node reached along three paths"),
    (4, 4, 5, 5),
    "(nodes, distinct nodes, Variables, distinct Variables) of (y·y + y).sum() with y = 2·v",
    hint="a Variable or node reached along several paths is visited once",
)


def _repeat_first():
    a = Variable(np.ones(3), requires_grad=True, name="a")
    b = Variable(np.ones(3), requires_grad=True, name="b")
    graph = walk_graph((b + a * a).sum())
    return sorted(v.name for v in graph.variables if v.name)


check.equal(
    check.probe(_repeat_first, "walk_graph((b + a * a).sum())"),
    ["a", "b"],
    "named Variables reached from (b + a * a).sum(), a reached twice before b",
    hint="skip a Variable seen before (continue), and keep walking the rest of the stack",
)


def _deep():
    v = Variable(np.ones(2), requires_grad=True)
    for _ in range(3000):
        v = v * 1.0
    return len(walk_graph(v).nodes)


check.equal(
    check.probe(_deep, "a 3000-op chain"),
    3000,
    "nodes of a 3000-op chain",
    hint="walk iteratively (a stack), without recursion",
)
check.done()

# %% [markdown]
# ## Part 4: the ledger
#
# Now sort every buffer into one category. The order decides where a shared buffer
# lands: a parameter that a matmul saved is a parameter (it lives anyway), an output that
# the next layer saved is an activation kept for backward, and only outputs that nothing
# needs for backward, yet that the graph still refers to, count as "other outputs".
#
# ```
#     category             what                                      from
#     ─────────────────    ──────────────────────────────────────    ─────────────────────
#     Parameters           leaves with requires_grad (W, b)          graph leaves, optimizer
#     Gradients            .grad of any Variable                     graph, parameters
#     Optimizer state      arrays the optimizer holds (Adam m, v)    optimizer attributes
#     Inputs               leaves without requires_grad (x, y)       graph leaves
#     Saved for backward   arrays the nodes hold                     node fields
#     Other outputs        data of op outputs, not saved             graph Variables
# ```

# %% nbgrader={"grade": false, "grade_id": "memory_ledger", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
CATEGORIES = {
    "parameters": "Parameters",
    "gradients": "Gradients",
    "optimizer": "Optimizer state",
    "inputs": "Inputs",
    "activations": "Saved for backward",
    "intermediates": "Other outputs",
}


def _contents_of(obj: Any, depth: int = 4) -> tuple[list[Variable], list[np.ndarray]]:
    """Variables and ndarrays inside `obj`'s attributes and containers, a few levels deep."""
    variables: list[Variable] = []
    arrays: list[np.ndarray] = []
    stack, seen = [(obj, 0)], set()
    while stack:
        value, level = stack.pop()
        if id(value) in seen or level > depth:
            continue
        seen.add(id(value))
        if isinstance(value, Variable):
            variables.append(value)
        elif isinstance(value, np.ndarray):
            arrays.append(value)
        elif isinstance(value, dict):
            stack += [(v, level + 1) for v in (*value.keys(), *value.values())]
        elif isinstance(value, (list, tuple, set)):
            stack += [(v, level + 1) for v in value]
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            stack += [(v, level + 1) for v in vars(value).values()]
    return variables, arrays


@dataclass
class Ledger:
    """Bytes held per category, each buffer counted once, plus the graph's node count."""

    bytes: dict[str, int]
    buffers: dict[str, int]
    nodes: int

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def render(self, title: str = "Memory ledger", measured: int | None = None) -> str:
        return "\n".join(render_ledger(self, title, measured))


def memory_ledger(
    output: Variable, optimizer: Any = None, parameters: Iterable[Variable] = ()
) -> Ledger:
    """Count the bytes that `output`'s graph, the parameters, their gradients and the
    optimizer's state hold, each buffer once."""
    graph = walk_graph(output)
    found_in_optimizer, optimizer_arrays = (
        _contents_of(optimizer) if optimizer is not None else ([], [])
    )
    counter = BufferCounter()
    ### BEGIN SOLUTION
    leaves = [v for v in graph.variables if v.grad_fn is None]
    params = [v for v in [*leaves, *parameters, *found_in_optimizer] if v.requires_grad]
    for variable in params:
        counter.add(variable.data, "parameters")
    for variable in [*params, *graph.variables]:
        if variable.grad is not None:
            counter.add(variable.grad, "gradients")
    for array in optimizer_arrays:
        counter.add(array, "optimizer")
    for variable in leaves:
        counter.add(variable.data, "inputs")
    for array in graph.saved:
        counter.add(array, "activations")
    for variable in graph.variables:
        counter.add(variable.data, "intermediates")
    ### END SOLUTION
    totals, counts = counter.bytes_by_category(), counter.buffers_by_category()
    return Ledger(
        {k: totals.get(k, 0) for k in CATEGORIES},
        {k: counts.get(k, 0) for k in CATEGORIES},
        len(graph.nodes),
    )


# %% [markdown]
# The ledger renders two ways (given code): a compact box per ledger (`render_ledger`,
# `render_ledgers` to put several side by side), and the opening's layout with your
# model's numbers, several runs in one picture (`render_layout`).


# %%
#| export
def format_bytes(nbytes: float) -> str:
    """Bytes in binary units (KiB = 1024 B, MiB = 1024 KiB), 2 decimals above 1 MiB."""
    if abs(nbytes) < 1024**2:
        return f"{nbytes / 1024:.1f} KiB"
    return f"{nbytes / 1024**2:.2f} MiB"


def render_ledger(
    ledger: Ledger, title: str = "Memory ledger", measured: int | None = None
) -> list[str]:
    """The ledger as a titled box: bytes and buffer count per category, the total, and the
    tracemalloc measurement if given."""
    rows = [
        (f"{label} ({ledger.buffers[key]})", format_bytes(ledger.bytes[key]))
        for key, label in CATEGORIES.items()
    ]
    lines = [title, *render_box(rows, ("Total", format_bytes(ledger.total)), width=36)]
    lines.append(f"{ledger.nodes} graph nodes; (n) = distinct buffers")
    if measured is not None:
        lines.append(
            f"tracemalloc measured {format_bytes(measured)} "
            f"({ledger.total / measured:.1%} of it in the ledger)"
        )
    return lines


def render_ledgers(columns: Sequence[tuple[str, Ledger, int | None]]) -> str:
    """Several ledgers side by side: (title, ledger, measured bytes or None) each."""
    return side_by_side(
        [render_ledger(ledger, title, measured) for title, ledger, measured in columns]
    )


LAYOUT_ROWS = (
    ("Lives across training steps:", ("parameters", "gradients", "optimizer")),
    ("The graph, until the loss is dropped:", ("inputs", "activations", "intermediates")),
)


def _layout_cell(key: str, runs: Sequence[tuple[str, Ledger]]) -> list[str]:
    """The lines inside one small box: the category, then a value per run."""
    if len(runs) == 1:
        ledger = runs[0][1]
        count = ledger.buffers[key]
        return [
            CATEGORIES[key],
            format_bytes(ledger.bytes[key]),
            f"{count} buffer{'s' * (count != 1)}",
        ]
    return [CATEGORIES[key], *((name, format_bytes(ledger.bytes[key])) for name, ledger in runs)]


def render_layout(
    runs: Sequence[tuple[str, Ledger]], title: str, measured: Sequence[int | None] = ()
) -> str:
    """The opening's training-memory layout with live numbers: one small box per category,
    each listing every run (a name and its bytes), totals and measurements below."""
    cells = {key: _layout_cell(key, runs) for _, keys in LAYOUT_ROWS for key in keys}
    texts = [c if isinstance(c, str) else f"{c[0]} {c[1]}" for cell in cells.values() for c in cell]
    inner = max(_display_width(text) for text in texts) + 2

    def cell_line(item: str | tuple[str, str]) -> str:
        if isinstance(item, str):
            text = item
            left = (inner - _display_width(text)) // 2
            return "│" + " " * left + text + " " * (inner - left - _display_width(text)) + "│"
        name, value = item
        gap = inner - 2 - _display_width(name) - _display_width(value)
        return f"│ {name}{' ' * gap}{value} │"

    body = []
    for heading, keys in LAYOUT_ROWS:
        height = max(len(cells[key]) for key in keys)
        boxes = []
        for key in keys:
            lines = [cell_line(item) for item in cells[key]]
            lines += ["│" + " " * inner + "│"] * (height - len(lines))
            boxes.append(["┌" + "─" * inner + "┐", *lines, "└" + "─" * inner + "┘"])
        body += [heading, *side_by_side(boxes).splitlines(), ""]
    totals = ", ".join(f"{name} {format_bytes(ledger.total)}" for name, ledger in runs)
    body.append(f"Total: {totals}")
    body.append("Graph nodes: " + ", ".join(f"{name} {ledger.nodes}" for name, ledger in runs))
    for (name, _), value in zip(runs, measured, strict=False):
        if value is not None:
            body.append(f"tracemalloc measured ({name}): {format_bytes(value)}")
    width = max(_display_width(line) for line in [title, *body]) + 4
    lines = [
        "┌" + "─" * width + "┐",
        "│" + _pad(_pad("", (width - _display_width(title)) // 2) + title, width) + "│",
    ]
    lines.append("├" + "─" * width + "┤")
    lines += ["│  " + _pad(line, width - 2) + "│" for line in body]
    return "\n".join([*lines, "└" + "─" * width + "┘"])


# %% nbgrader={"grade": false, "grade_id": "memory_mlp_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def _mlp_params(widths, rng, dtype=np.float64):
    return [
        (
            Variable(
                (rng.standard_normal((m, n)) / np.sqrt(m)).astype(dtype),
                requires_grad=True,
                name=f"W{i}",
            ),
            Variable(np.zeros(n, dtype), requires_grad=True, name=f"b{i}"),
        )
        for i, (m, n) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]


def _mlp_loss(params, x):
    h = x
    for W, b in params:
        h = (h @ W + b).relu()
    return h.mean()


# %% nbgrader={"grade": true, "grade_id": "test_memory_ledger", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_ledger", points=15)
_batch = int(check.rng.integers(100, 300))
_seed = int(check.rng.integers(1 << 30))
_widths = [64, 128, 128, 32]
_param_bytes = sum((m * n + n) * 8 for m, n in zip(_widths[:-1], _widths[1:], strict=False))
_weight_bytes = sum(m * n * 8 for m, n in zip(_widths[:-1], _widths[1:], strict=False))
_ledgers = {}


def _ledger_run():
    rng = np.random.default_rng(_seed)
    params = _mlp_params(_widths, rng)
    x = Variable(rng.standard_normal((_batch, 64)))
    loss = _mlp_loss(params, x)
    before = memory_ledger(loss)
    loss.backward()
    after = memory_ledger(loss)
    state = {"m": [np.zeros_like(W.data) for W, _ in params], "step": 3}
    _ledgers["yours"] = with_optimizer = memory_ledger(loss, optimizer=state)
    return before.bytes, after.bytes, with_optimizer.bytes


_before, _after, _with_opt = check.no_raise(check.probe(_ledger_run, "memory_ledger"), "ledger")
check.equal(
    _before["parameters"],
    _param_bytes,
    "ledger bytes of 'parameters' (the W and b)",
    hint="every leaf that requires grad is a parameter, counted once",
)
check.equal(
    _before["inputs"],
    _batch * 64 * 8,
    f"ledger bytes of 'inputs' (x, ({_batch}, 64))",
    hint="x is a leaf without requires_grad, even though x @ W saved it",
)
check.equal(_before["gradients"], 0, "ledger bytes of 'gradients' before backward")
check.expect(
    _before["activations"] >= 2 * _batch * 128 * 8,
    f"ledger 'saved for backward' = {_before['activations']} bytes; the two hidden layers' "
    f"outputs (≥ {2 * _batch * 128 * 8} bytes) are saved by the next matmuls",
)
check.equal(
    _after["gradients"],
    _param_bytes,
    "ledger bytes of 'gradients' after backward",
    hint="one gradient per parameter",
)
check.equal(
    _with_opt["optimizer"],
    _weight_bytes,
    "ledger bytes of 'optimizer'",
    hint="arrays inside the optimizer (a dict holding a list here) are its state",
)
check.probe(
    lambda: print(render_layout([("yours", _ledgers["yours"])], "Your MLP after backward")),
    "the layout",
)


def _view_input():
    rng = np.random.default_rng(_seed)
    params = _mlp_params(_widths, rng)
    x = Variable(rng.standard_normal((_batch, 64)))
    xt = Variable(np.ascontiguousarray(x.data.T))
    return memory_ledger(_mlp_loss(params, xt.T)).total, memory_ledger(_mlp_loss(params, x)).total


_via_view, _direct = check.no_raise(check.probe(_view_input, "a transposed input"), "view")
check.equal(_via_view, _direct, "ledger total with x.T as input (a view: no new buffer)")
_w0 = check.rng.standard_normal((4, 3))
_x0 = check.rng.standard_normal((5, 4))


def _outside_the_graph():
    w = Variable(_w0.copy(), requires_grad=True)
    h = Variable(_x0.copy()) @ w
    h.retain_grad()
    loss = (h * h).sum()
    loss.backward()
    held = Variable(np.zeros(10), requires_grad=True)  # only the optimizer knows it
    passed = Variable(np.zeros(6), requires_grad=True)  # only passed as parameters=
    ledger = memory_ledger(loss, optimizer={"params": [held]}, parameters=[passed])
    return ledger.bytes["parameters"], ledger.bytes["gradients"]


_params, _grads = check.no_raise(
    check.probe(_outside_the_graph, "parameters outside the graph, a retained grad"), "outside"
)
check.equal(
    _params,
    (12 + 10 + 6) * 8,
    "ledger 'parameters' of w (4, 3) in the graph, one held by the optimizer (10,) and one "
    "passed as parameters= (6,)",
    hint="parameters come from the graph's leaves, the optimizer and parameters=",
)
check.equal(
    _grads,
    (12 + 15) * 8,
    "ledger 'gradients' of w.grad (4, 3) and the retained grad of h = x @ w (5, 3)",
    hint="the .grad of any Variable of the graph counts, not only the parameters'",
)
check.done()

# %% [markdown]
# ## Part 5: check the ledger against a measurement
#
# The ledger is a model of memory; `tracemalloc` is a measurement. Python's allocator
# reports every allocation to it, and numpy reports the data buffers it allocates too. So
# run the code that builds the model and the graph between two readings of
# `tracemalloc.get_traced_memory()`: what is still allocated at the end is what that
# code left alive. The ledger should agree with it to within a few percent; the
# difference is Python objects (Variables, nodes, lists) that hold no array data.
#
# ```
#     tracemalloc.start()            ─┐
#     before = current               │  traced(build):
#     result = build()               │    retained = current − before   (still alive)
#     after, peak = current, peak    │    peak     = peak − before      (high-water mark)
#     tracemalloc.stop()             ─┘
# ```
#
# If `fn` raises, the error goes through to the caller, and tracing stops all the same
# when `traced` started it (a `try`/`finally`): a forgotten tracemalloc slows every later
# allocation of the session.


# %% nbgrader={"grade": false, "grade_id": "memory_traced", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass
class Traced:
    """What `traced(fn)` measured: fn's result, the bytes still allocated when fn returned,
    and the highest allocation level reached while it ran (both relative to the start)."""

    result: Any
    retained: int
    peak: int


def traced(fn: Callable[[], Any]) -> Traced:
    """Run `fn()` under tracemalloc (starting it if needed, stopping it only if we started it)."""
    started_here = not tracemalloc.is_tracing()
    ### BEGIN SOLUTION
    if started_here:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if started_here:
            tracemalloc.stop()
    return Traced(result, current - before, peak - before)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_memory_traced", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import tracemalloc

from tinytorch_course.checks import Check

check = Check("test_memory_traced", points=10)
_n = int(check.rng.integers(50_000, 150_000))


def _measure(fn):
    t = traced(fn)
    return int(t.retained), int(t.peak), tracemalloc.is_tracing()


_retained, _peak, _tracing = check.no_raise(
    check.probe(lambda: _measure(lambda: np.ones(_n)), f"traced(lambda: np.ones({_n}))"), "traced"
)
check.expect(
    abs(_retained - 8 * _n) < 20_000,
    f"traced(lambda: np.ones({_n})).retained is {_retained}; the result holds {8 * _n} bytes",
)
check.equal(
    _tracing,
    False,
    "tracemalloc.is_tracing() after traced() started it",
    hint="stop tracemalloc if traced() started it",
)
_retained, _peak, _ = check.no_raise(
    check.probe(lambda: _measure(lambda: float(np.ones(_n).sum())), "a temporary array"), "traced"
)
check.expect(
    _retained < 20_000 and _peak >= 8 * _n - 20_000,
    f"a temporary of {8 * _n} bytes: retained {_retained} (freed: ~0), peak {_peak} (≥ {8 * _n})",
)


def _after_an_earlier_peak():
    tracemalloc.start()
    try:
        big = np.ones(4 * _n)
        del big  # the level drops again, but tracemalloc's peak stays high
        alive = np.ones(2 * _n)  # allocated before traced(): not fn's
        t = traced(lambda: np.ones(_n // 4))
        del alive
        return int(t.retained), int(t.peak), tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


_retained, _peak, _tracing = check.no_raise(
    check.probe(_after_an_earlier_peak, "traced() after an earlier, higher peak"), "traced"
)
check.expect(
    abs(_retained - 2 * _n) < 20_000,
    f"traced() of a {_n * 2} byte array, run while {16 * _n} other bytes were allocated, reports "
    f"{_retained} retained; hint: measure relative to the level when fn starts",
)
check.expect(
    _peak < 2 * _n * 8 // 4 + 20_000,
    f"traced() of a {_n * 2} byte array, run after code that peaked at {32 * _n} bytes, reports "
    f"a peak of {_peak}; hint: reset tracemalloc's peak (tracemalloc.reset_peak()) before fn",
)
check.equal(
    _tracing,
    True,
    "tracemalloc.is_tracing() after traced() ran while it was on",
    hint="stop tracemalloc only if traced() started it",
)


def _raising():
    try:
        traced(lambda: np.ones(3) / np.zeros(0)[0])
    except IndexError as error:
        return type(error).__name__, tracemalloc.is_tracing()
    return "no error", tracemalloc.is_tracing()


check.equal(
    check.probe(_raising, "traced(fn) where fn raises IndexError"),
    ("IndexError", False),
    "(error that came through, tracemalloc.is_tracing()) after traced(fn) where fn raises",
    hint="stop tracing in a finally: block when traced started it, and let the error through",
)


def _ledger_vs_tracemalloc():
    def build_and_forward():
        rng = np.random.default_rng(2)
        params = _mlp_params([128, 256, 256, 256, 10], rng, np.float32)
        x = Variable(rng.standard_normal((512, 128)).astype(np.float32))
        return _mlp_loss(params, x)

    run = traced(build_and_forward)
    ledger = memory_ledger(run.result)
    print(render_ledgers([("MLP 128-256-256-256-10, batch 512", ledger, run.retained)]))
    return int(ledger.total), int(run.retained)


_total, _measured = check.no_raise(
    check.probe(_ledger_vs_tracemalloc, "ledger vs tracemalloc"), "ledger"
)
check.expect(
    abs(_total - _measured) <= 0.10 * _measured,
    f"the ledger counts {_total} bytes but tracemalloc saw {_measured} left alive by building "
    "the model and the forward pass: more than 10 % apart",
)
check.done()

# %% [markdown]
# ## Part 6: `checkpoint(fn, *inputs)`
#
# One checkpointed call becomes one node in the outer graph. Its forward runs `fn`
# under `no_grad()`, so none of `fn`'s intermediates are kept, and saves only the input
# arrays (and a reference to its output, which the next layer keeps anyway). Its
# backward rebuilds the inside on demand:
#
# ```
#   forward (outer graph)                        backward of the Checkpoint node
#   ─────────────────────                        ───────────────────────────────
#   x ──> [Checkpoint(fn)] ──> y                 x' = Variable(x.data, requires_grad)
#          saves x (and y)                       y' = fn(x')        grad enabled: a
#          (fn ran under no_grad)                                   fresh inner graph
#                                                y'.backward(∂L/∂y): every W that
#                                                fn used gets W.grad += ∂L/∂W
#                                                return x'.grad
# ```
#
# `y'` has the same values as `y` (same operations on the same inputs), so backward
# points `y'.data` at the `y` that forward kept and the recomputed copy is freed before
# the inner backward runs: one activation (512 KiB in the benchmark) off the peak.
#
# Parameters used inside `fn` need care. The inner `backward` reaches them (the
# recomputed graph uses the real `W` and `b`) and accumulates into their `.grad` with
# the same `+=` the outer engine would have used, so the node returns `None` for them.
# They are still passed to the node as extra inputs (taken from `fn.parameters()` when
# `fn` is a module, or from `parameters=`): otherwise, when the input is plain data (the
# first block of a network), the output would not require grad and backward would never
# reach the node, losing every weight's gradient.
#
# Edge cases, each tested:
#
# - inside `no_grad()` nothing will run backward, so `checkpoint` just calls `fn`;
# - if no input and no parameter requires grad, it also just calls `fn`;
# - if the recomputed output does not depend on anything that requires grad, backward
#   raises a `RuntimeError` naming `fn` (there is nothing to recompute through);
# - `fn` must return a `Variable`; the inputs must be `Variable`s;
# - the error for "output does not depend on the inputs" comes in backward, not at the
#   call: under `no_grad()` the forward records nothing that could tell;
# - `fn` must compute the same thing when run again. Randomness inside it (dropout)
#   would draw new numbers in the recompute; PyTorch saves and restores the random
#   generator's state for that. Our layers are deterministic, so we need not.


# %% nbgrader={"grade": false, "grade_id": "memory_checkpoint", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _name_of(fn: Callable) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _parameters_of(fn: Any) -> list[Variable]:
    """The Variables that require grad among `fn.parameters()`, if fn has that method."""
    if not callable(getattr(fn, "parameters", None)):
        return []
    return [p for p in fn.parameters() if isinstance(p, Variable) and p.requires_grad]


def _recompute_backward(
    fn: Callable,
    arrays: Sequence[np.ndarray],
    needs: Sequence[bool],
    grad_output: np.ndarray,
    kept_output: np.ndarray | None = None,
) -> list[np.ndarray | None]:
    """Re-run `fn` with grad enabled on fresh leaves holding `arrays`, backpropagate
    `grad_output` through it (parameters used inside fn accumulate their `.grad` there),
    and return the gradients of the inputs (None where `needs` is False).

    `kept_output`, the output that forward computed (and the outer graph still holds),
    replaces the recomputed copy of it, which is then freed before backward runs."""
    ### BEGIN SOLUTION
    leaves = [
        Variable(array, requires_grad=need) for array, need in zip(arrays, needs, strict=True)
    ]
    with enable_grad():
        output = fn(*leaves)
    if not (isinstance(output, Variable) and output.requires_grad):
        raise RuntimeError(
            f"checkpoint({_name_of(fn)}): recomputing gave an output that does not depend on "
            "any input or parameter that requires grad, so there is nothing to backpropagate "
            f"through; call {_name_of(fn)} directly instead of checkpointing it"
        )
    if kept_output is not None and output.data.shape == kept_output.shape:
        output.data = kept_output  # same values (same ops, same inputs): drop the duplicate
    output.backward(grad_output)
    return [leaf.grad if need else None for leaf, need in zip(leaves, needs, strict=True)]
    ### END SOLUTION


def _checkpoint_node(fn: Callable, n_inputs: int, params: Sequence[Variable]) -> type:
    """A Function class for one checkpointed call of `fn` (inputs first, then `params`)."""

    class Checkpoint(Function):
        @staticmethod
        def forward(ctx, *values):
            arrays = [v.data if isinstance(v, Variable) else v for v in values[:n_inputs]]
            with no_grad():
                output = fn(*[Variable(a) for a in arrays])
            if not isinstance(output, Variable):
                raise TypeError(
                    f"checkpoint({_name_of(fn)}): fn returned "
                    f"{type(output).__name__}; it must return a Variable"
                )
            ctx.save_for_backward(*arrays, output.data)  # the output is kept anyway (next input)
            return output.data

        @staticmethod
        def backward(ctx, grad_output):
            needs = tuple(ctx.needs_input_grad[:n_inputs])
            *arrays, kept_output = ctx.saved_tensors
            grads = _recompute_backward(fn, arrays, needs, grad_output, kept_output)
            return (*grads, *[None] * len(params))  # params got theirs inside

    return Checkpoint


def checkpoint(
    fn: Callable[..., Variable], *inputs: Variable, parameters: Iterable[Variable] | None = None
) -> Variable:
    """`fn(*inputs)` without keeping fn's intermediates: they are recomputed in backward.

    `parameters`: the Variables fn uses besides its inputs (default: `fn.parameters()` if
    fn is a module). Gradients equal those of calling fn directly, bit for bit."""
    for i, value in enumerate(inputs):
        if not isinstance(value, Variable):
            raise TypeError(
                f"checkpoint({_name_of(fn)}): input {i} is a {type(value).__name__}; "
                "inputs must be Variables (use constants inside fn)"
            )
    params = (
        _parameters_of(fn) if parameters is None else [p for p in parameters if p.requires_grad]
    )
    if not is_grad_enabled() or not (params or any(v.requires_grad for v in inputs)):
        return fn(*inputs)  # nothing will run backward through this call: no need to save anything
    return _checkpoint_node(fn, len(inputs), params).apply(*inputs, *params)


# %% nbgrader={"grade": false, "grade_id": "memory_block_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
class _Block:
    """relu(x @ W + b): a stand-in for a layer, with `parameters()` like a module."""

    def __init__(self, m, n, rng):
        self.W = Variable(rng.standard_normal((m, n)) / np.sqrt(m), requires_grad=True, name="W")
        self.b = Variable(rng.standard_normal(n) * 0.1, requires_grad=True, name="b")

    def __call__(self, x):
        return (x @ self.W + self.b).relu()

    def parameters(self):
        return [self.W, self.b]


def _grads_of(run, blocks, x):
    for block in blocks:
        for p in block.parameters():
            p.grad = None
    x.grad = None
    loss = run(x)
    loss.backward()
    return loss, [p.grad.copy() for block in blocks for p in block.parameters()], x.grad


# %% nbgrader={"grade": true, "grade_id": "test_memory_checkpoint", "locked": true, "points": 18, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_checkpoint", points=18)
_seed = int(check.rng.integers(1 << 30))
_objects = {}


def _setup():
    rng = np.random.default_rng(_seed)
    _objects["blocks"] = [_Block(16, 16, rng) for _ in range(3)]
    _objects["x"] = Variable(rng.standard_normal((32, 16)), requires_grad=True)
    _objects["data"] = Variable(rng.standard_normal((32, 16)))


def _run(kind):
    """Loss, parameter gradients and x.grad of the 3 blocks, plain or with 2 checkpoints."""
    if not _objects:
        _setup()
    blocks, x = _objects["blocks"], _objects["x"]

    def plain(v):
        return blocks[2](blocks[1](blocks[0](v))).sum()

    def two_checkpoints(v):
        return blocks[2](checkpoint(blocks[1], checkpoint(blocks[0], v))).sum()

    loss, grads, grad_x = _grads_of(plain if kind == "plain" else two_checkpoints, blocks, x)
    return loss.data, grads, grad_x


_plain = check.no_raise(check.probe(lambda: _run("plain"), "three blocks, plain"), "plain")
_ckpt = check.probe(lambda: _run("checkpointed"), "three blocks, two checkpointed")
_ckpt = check.no_raise(_ckpt, "block2(checkpoint(block1, checkpoint(block0, x))).sum()")
check.equal(_ckpt[0], _plain[0], "the loss with checkpoints (it must equal the plain loss)")
for _i, (_ga, _gb) in enumerate(zip(_plain[1], _ckpt[1], strict=False)):
    check.equal(
        _gb,
        _ga,
        f"gradient of block {_i // 2}'s {'W' if _i % 2 == 0 else 'b'} with checkpoints",
        hint="recompute fn on fresh leaves with grad enabled, then backward(grad_output)",
    )
check.equal(_ckpt[2], _plain[2], "x.grad with checkpoints", hint="return the leaves' .grad")


def _backward_under_no_grad():
    blocks, x = _objects["blocks"], _objects["x"]
    for p in [x, *(q for b in blocks for q in b.parameters())]:
        p.grad = None
    loss = blocks[2](checkpoint(blocks[1], checkpoint(blocks[0], x))).sum()
    with no_grad():
        loss.backward()
    return [p.grad.copy() for b in blocks for p in b.parameters()]


_quiet = check.probe(_backward_under_no_grad, "backward called inside no_grad()")
for _i, (_ga, _gb) in enumerate(zip(_plain[1], check.no_raise(_quiet, "backward"), strict=False)):
    check.equal(
        _gb,
        _ga,
        f"gradient {_i} when loss.backward() runs inside no_grad()",
        hint="recompute fn with grad enabled (enable_grad()) whatever the caller's mode",
    )


def _first_layer(kind):
    blocks, data = _objects["blocks"], _objects["data"]
    if kind == "plain":
        return _grads_of(lambda v: blocks[0](v).sum(), blocks[:1], data)[1]
    return _grads_of(lambda v: checkpoint(blocks[0], v).sum(), blocks[:1], data)[1]


_ckpt_first = check.probe(lambda: _first_layer("checkpointed"), "checkpoint on plain data")
_ckpt_first = check.no_raise(_ckpt_first, "checkpoint(block, data)")
_plain_first = check.probe(lambda: _first_layer("plain"), "the first block on plain data")
for _name, _got, _want in zip(
    ("W", "b"), _ckpt_first, check.no_raise(_plain_first, "block"), strict=False
):
    check.equal(
        _got,
        _want,
        f"{_name}.grad of checkpoint(block, data), data without requires_grad",
        hint="pass the parameters as inputs of the Checkpoint node",
    )


def _structure():
    block, x = _objects["blocks"][0], _objects["x"]
    with no_grad():
        out = checkpoint(block, x)
    inner = walk_graph(checkpoint(block, x).sum())
    return type(out.grad_fn).__name__, out.data, block(x).data, len(inner.nodes)


_fn_type, _out, _direct, _nodes = check.no_raise(
    check.probe(_structure, "checkpoint under no_grad, and its graph"), "checkpoint"
)
check.equal(
    _fn_type,
    "NoneType",
    "grad_fn of checkpoint(block, x) inside no_grad()",
    hint="inside no_grad() checkpoint just calls fn",
)
check.equal(_out, _direct, "checkpoint(block, x) inside no_grad() vs block(x)")
check.equal(
    _nodes,
    2,
    "nodes in the graph of checkpoint(block, x).sum()",
    hint="fn's ops run under no_grad in forward: only Checkpoint and sum are recorded",
)


def _constant_backward():
    def constant_output(v):
        return Variable(np.ones(3))

    checkpoint(constant_output, _objects["x"]).sum().backward()


check.raises(
    check.probe(_constant_backward, "backward through checkpoint(constant_output, x)"),
    RuntimeError,
    "checkpoint(constant_output, x).sum().backward()",
    hint="if the recomputed output does not require grad, raise RuntimeError",
)


def _explicit_parameters():
    rng = np.random.default_rng(_seed + 1)
    W = Variable(rng.standard_normal((16, 16)), requires_grad=True)
    x = _objects["x"]
    (checkpoint(lambda v: (v @ W).relu(), x, parameters=[W]).sum()).backward()
    g1 = W.grad.copy()
    W.grad = None
    ((x @ W).relu().sum()).backward()
    return g1, W.grad


_g1, _g2 = check.no_raise(check.probe(_explicit_parameters, "parameters="), "parameters=")
check.equal(_g1, _g2, "W.grad through checkpoint(..., parameters=[W])")
check.raises(
    check.probe(lambda: checkpoint(_objects["blocks"][0], np.ones((2, 16))), "array input"),
    TypeError,
    "checkpoint(block, np.ones((2, 16)))",
)
check.done()

# %% [markdown]
# Part 6 asks for a `RuntimeError` that names `fn` when there is nothing to recompute
# through:

# %% nbgrader={"grade": true, "grade_id": "test_memory_checkpoint_messages", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_checkpoint_messages", points=2)


def _constant_backward():
    from tinytorch.autograd import Variable as Leaf

    def constant_output(v):
        return Leaf(np.ones(3))

    checkpoint(constant_output, Leaf(np.ones(3), requires_grad=True)).sum().backward()


_error = check.probe(_constant_backward, "backward through checkpoint(constant_output, x)")
check.raises(_error, RuntimeError, "checkpoint(constant_output, x).sum().backward()")
check.mentions(
    _error,
    ["constant_output"],
    "checkpoint(constant_output, x).sum().backward()",
    hint="name fn in the RuntimeError",
)
check.done()

# %% [markdown]
# ## Part 7: `checkpoint_sequential(layers, segments, x)`
#
# Split the layers into `segments` consecutive runs whose sizes differ by at most one
# (the first ones take the remainder: 32 layers in 6 segments are 6, 6, 5, 5, 5, 5), and
# checkpoint every run.
#
# ```
#   32 layers, segments = round(√32) = round(5.66) = 6:
#
#   x ─>[ 1 .. 6 ]─> a ─>[ 7 .. 12]─> b ─>[13 .. 17]─> c ─>[18 .. 22]─> d ─> ...
#       checkpoint        checkpoint       checkpoint       checkpoint
#
#     ... d ─>[23 .. 27]─> e ─>[28 .. 32]─> out
#             checkpoint       checkpoint
#
#   kept after forward: x, a, b, c, d, e and out; during backward, one segment more
# ```
#
# PyTorch's `checkpoint_sequential` runs the last segment normally, since backward needs
# its activations first. That pays off only when the engine drops each activation as soon
# as backward has used it. In our engine a node keeps its `inputs` (the Variables it
# sends gradients to) until the whole graph is released, so the last segment's activations
# would stay alive through the entire backward, on top of every recomputed segment. So we
# checkpoint the last one too: `n/k` more layers of forward compute, `n/k` layers less
# memory. (`segments = 1` is one checkpoint around everything: no memory saved.)
#
# Errors, raised before anything runs: `segments` must be an `int` with
# `1 ≤ segments ≤ len(layers)`.


# %% nbgrader={"grade": false, "grade_id": "memory_checkpoint_sequential", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def segment_bounds(n_layers: int, segments: int) -> list[tuple[int, int]]:
    """`(start, stop)` of each segment: consecutive, covering 0..n_layers, sizes differing
    by at most one, larger first."""
    if isinstance(segments, bool) or not isinstance(segments, int):
        raise TypeError(f"segments must be an int, got {type(segments).__name__} {segments!r}")
    if not 1 <= segments <= n_layers:
        raise ValueError(
            f"segments={segments} is out of range for {n_layers} layers: "
            f"use 1 ≤ segments ≤ {n_layers}"
        )
    ### BEGIN SOLUTION
    size, extra = divmod(n_layers, segments)
    bounds, start = [], 0
    for i in range(segments):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds
    ### END SOLUTION


class _Segment:
    """Layers run one after another, with the parameters of all of them."""

    def __init__(self, layers: Sequence[Callable]) -> None:
        self.layers = list(layers)
        self.__name__ = f"layers[{len(self.layers)}]"

    def __call__(self, x: Variable) -> Variable:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Variable]:
        return [p for layer in self.layers for p in _parameters_of(layer)]


def checkpoint_sequential(layers: Iterable[Callable], segments: int, x: Variable) -> Variable:
    """Run `layers` (a list, or an iterable module such as `Sequential`) on `x` in `segments`
    checkpointed runs (Chen et al. 2016): memory ≈ segments + len(layers)/segments outputs."""
    layers = list(layers)
    bounds = segment_bounds(len(layers), segments)
    ### BEGIN SOLUTION
    for start, stop in bounds:
        x = checkpoint(_Segment(layers[start:stop]), x)
    return x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_memory_checkpoint_sequential", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_checkpoint_sequential", points=12)
for _layers in (int(check.rng.integers(10, 40)), 4, 5):
    _segments = int(check.rng.integers(1, _layers + 1))
    _size, _extra = divmod(_layers, _segments)
    _sizes = [_size + (1 if i < _extra else 0) for i in range(_segments)]
    _stops = np.cumsum(_sizes).tolist()
    _want = [(stop - size, stop) for size, stop in zip(_sizes, _stops, strict=False)]
    _got = check.probe(lambda n=_layers, k=_segments: segment_bounds(n, k), "segment_bounds")
    check.equal(
        [tuple(int(i) for i in b) for b in check.no_raise(_got, "segment_bounds")],
        _want,
        f"segment_bounds({_layers}, {_segments})",
        hint="consecutive (start, stop) pairs, sizes differing by at most one, larger first",
    )
for _bad in (0, -1, 33):
    check.raises(
        check.probe(lambda k=_bad: segment_bounds(32, k), f"segment_bounds(32, {_bad})"),
        ValueError,
        f"segment_bounds(32, {_bad})",
    )
_seed = int(check.rng.integers(1 << 30))
_stack = {}


def _seq_grads(segments):
    if not _stack:
        rng = np.random.default_rng(_seed)
        _stack["blocks"] = [_Block(24, 24, rng) for _ in range(9)]
        _stack["data"] = Variable(rng.standard_normal((40, 24)))
    blocks = _stack["blocks"]
    for block in blocks:
        block.W.grad = block.b.grad = None
    if segments is None:
        loss = _Segment(blocks)(_stack["data"]).sum()
    else:
        loss = checkpoint_sequential(blocks, segments, _stack["data"]).sum()
    ledger = memory_ledger(loss)
    loss.backward()
    _stack[segments] = ledger
    graph_bytes = ledger.bytes["activations"] + ledger.bytes["intermediates"]
    return graph_bytes, ledger.nodes, [p.grad.copy() for b in blocks for p in b.parameters()]


_full = check.no_raise(check.probe(lambda: _seq_grads(None), "9 blocks, plain"), "plain")
_ckpt = check.probe(lambda: _seq_grads(3), "9 blocks, 3 segments")
_ckpt = check.no_raise(_ckpt, "checkpoint_sequential(blocks, 3, x)")
for _i, (_a, _b) in enumerate(zip(_full[2], _ckpt[2], strict=False)):
    check.equal(_b, _a, f"gradient {_i} (layer {_i // 2}) with checkpoint_sequential(…, 3, x)")
check.expect(
    _ckpt[0] < 0.6 * _full[0],
    f"with 3 segments of 9 layers the graph holds {_ckpt[0]} bytes, plain {_full[0]}: "
    "checkpointed segments should keep only their inputs",
    hint="checkpoint each segment (a _Segment of its layers)",
)
check.probe(
    lambda: print(
        render_ledgers([("9 blocks, plain", _stack[None], None), ("3 segments", _stack[3], None)])
    ),
    "the ledgers",
)
check.raises(
    check.probe(lambda: checkpoint_sequential(_stack["blocks"], 10, _stack["data"]), "10 of 9"),
    ValueError,
    "checkpoint_sequential(9 blocks, 10, x)",
)
_one = check.no_raise(check.probe(lambda: _seq_grads(1), "one segment"), "one segment")
check.equal(_one[1], 2, "graph nodes with one segment (Checkpoint and sum)")
for _a, _b in zip(_full[2], _one[2], strict=False):
    check.equal(_b, _a, "a gradient with one segment")
check.done()

# %% [markdown]
# ## Part 8: all together, on a real training step
#
# Two copies of the same model (same seed), trained with Adam for three steps on the
# same data: one plainly, one with `checkpoint_sequential`. The weights must come out
# identical to the last bit, the checkpointed graph must hold far less, and the ledger
# (now with Adam's state) must still agree with tracemalloc.

# %%
from tinytorch import nn, optim  # noqa: E402  (module 05 builds on modules 02 and 03)


def make_mlp(depth: int, width: int, seed: int, dtype=np.float64) -> "nn.Sequential":
    """`depth` blocks of Linear + ReLU, identical for the same seed."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, generator=rng, dtype=dtype), nn.ReLU()]
    return nn.Sequential(*layers)


# %% nbgrader={"grade": true, "grade_id": "test_memory_integration", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_memory_integration", points=8)
_x0 = check.rng.standard_normal((64, 32))
_y0 = check.rng.standard_normal((64, 32))
_seed = int(check.rng.integers(1 << 30))
_runs = {}


def _train_run(kind):
    model = make_mlp(8, 32, seed=_seed)
    x, y = Variable(_x0), Variable(_y0)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        out = model(x) if kind == "plain" else checkpoint_sequential(model, 4, x)
        loss = nn.mse_loss(out, y)
        ledger = memory_ledger(loss, optimizer=opt)
        loss.backward()
        opt.step()
    _runs[kind] = ledger
    graph = ledger.bytes["activations"] + ledger.bytes["intermediates"]
    params = [p.data for p in model.parameters()]
    return params, ledger.bytes["optimizer"], sum(p.nbytes for p in params), graph


_plain = check.no_raise(check.probe(lambda: _train_run("plain"), "3 Adam steps, plain"), "plain")
_ckpt = check.probe(lambda: _train_run("4 segments"), "3 Adam steps, 4 segments")
_ckpt = check.no_raise(_ckpt, "3 Adam steps through checkpoint_sequential(model, 4, x)")
for _i, (_p, _q) in enumerate(zip(_plain[0], _ckpt[0], strict=False)):
    check.equal(_q, _p, f"parameter {_i} after 3 Adam steps, checkpointed vs plain")
check.equal(_ckpt[1], 2 * _ckpt[2], "ledger bytes of Adam's state (two moments per parameter)")
check.expect(
    _ckpt[3] <= 0.5 * _plain[3],
    f"the checkpointed graph holds {_ckpt[3]} bytes, plain {_plain[3]}: 4 segments of 16 layers "
    "should keep only the 4 segment inputs and the output",
)


def _whole_step():
    def step():
        model = make_mlp(4, 128, seed=7)
        opt = optim.Adam(model.parameters())
        x = Variable(np.random.default_rng(8).standard_normal((256, 128)))
        nn.mse_loss(model(x), x).backward()
        opt.step()
        return model, opt, nn.mse_loss(model(x), x)  # next step's graph, grads, Adam state

    run = traced(step)
    model, opt, loss = run.result
    ledger = memory_ledger(loss, optimizer=opt)
    print(
        render_layout(
            [("plain", _runs["plain"]), ("4 segments", _runs["4 segments"])],
            "16 layers with Adam, at the end of forward: plain vs checkpointed",
        )
    )
    print(render_layout([("step", ledger)], "A whole step: model, Adam, graph", [run.retained]))
    return int(ledger.total), int(run.retained)


_total, _measured = check.no_raise(check.probe(_whole_step, "a whole step, traced"), "step")
check.expect(
    abs(_total - _measured) <= 0.10 * _measured,
    f"ledger {_total} bytes vs tracemalloc {_measured}: more than 10 % apart with parameters, "
    "gradients, Adam state and a live graph",
)
check.done()

# %% [markdown]
# ## Fresh memory is not free
#
# Every array numpy makes comes from the C allocator, `malloc`. A training step allocates
# its activations, then its gradients, and frees them all by its end; the next step does
# the same. glibc's `malloc` gives memory freed at the top of its heap back to the
# operating system, so each step asks for it again, and the kernel hands it over one
# 4 KiB page at a time, each page a *page fault* that zeroes it. Module 07's GPT, whose
# step holds about 75 MiB, takes about 25 000 page faults a step this way, which made the
# step 1.4 to 1.7 times slower on a 2-core machine (`tinytorch-course bench gpt` prints
# both figures).
#
# `keep_freed_memory()` asks glibc to keep up to 256 MiB of freed memory for reuse
# (`mallopt(M_TOP_PAD)`) and to take every array under 32 MiB from that memory rather than
# from a fresh mapping of its own (`M_MMAP_THRESHOLD`; without it, a call made before the
# first large array is freed leaves every array of 128 KiB or more a fresh mapping, faulted
# in page by page each time). The same step then takes almost no page faults. The setting
# is process-wide: every library in the process (PyTorch included) allocates under it
# until the process ends, and the memory kept still counts as the process's. Where there
# is no glibc (macOS, Windows) it does nothing and returns False. PyTorch users get the
# same effect by loading another allocator (jemalloc, tcmalloc).


# %%
#| export
def keep_freed_memory(nbytes: int = 256 * 2**20) -> bool:
    """Ask glibc's malloc to keep up to `nbytes` of freed memory for reuse instead of
    returning it to the operating system (process-wide, until the process ends). False
    where there is no glibc `mallopt` (macOS, Windows), which changes nothing but speed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    M_TOP_PAD = -2  # <malloc.h>: extra memory to request from, and keep back from, the OS
    M_MMAP_THRESHOLD = -3  # <malloc.h>: blocks this large or larger get a mapping of their own
    largest_threshold = 32 * 2**20  # glibc's limit for M_MMAP_THRESHOLD on 64-bit machines
    kept = mallopt(ctypes.c_int(M_TOP_PAD), ctypes.c_int(nbytes))
    return bool(kept and mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(largest_threshold)))


# %% [markdown]
# ## What you built, and where it goes next
#
# - `training_memory` and friends: the memory of training any GPT-style model, from its
#   shape and four stated assumptions, and what checkpointing can and cannot save.
# - `memory_ledger`: every byte a training step holds, by category, each buffer once,
#   read from the live graph and confirmed by `tracemalloc`.
# - `checkpoint` and `checkpoint_sequential`: Chen et al.'s √n trade, with gradients
#   identical to the plain run. `tinytorch-course bench memory` runs it on a 32-block
#   MLP and prints the peak memory and step-time ratios.
# - `keep_freed_memory`: one allocator setting that spares every step the page faults of
#   memory the previous step gave back.
#
# Next steps, if you want them: make the engine free each activation as soon as backward
# has used it (then the last segment need not be checkpointed); checkpoint at the
# granularity that the scale calculator says is cheapest (for transformers: every layer);
# store activations in 16 bits (the calculator's `bytes_per_value=2`).
