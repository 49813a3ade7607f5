"""tinytorch.memory: the scale calculator and the text it backs, the ledger against
tracemalloc, and gradient checkpointing (bit-for-bit gradients, memory saved, bad input)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import nn, optim
from tinytorch.autograd import Variable, no_grad
from tinytorch.memory import (
    GPT3_175B,
    BufferCounter,
    Ledger,
    TransformerConfig,
    activation_bytes,
    checkpoint,
    checkpoint_sequential,
    format_bytes,
    layer_activation_bytes,
    memory_ledger,
    owning_array,
    render_gpt3_comparison,
    render_layout,
    render_ledgers,
    segment_bounds,
    smallest_batch_saving,
    total_saving,
    traced,
    training_memory,
    training_state_bytes,
    transformer_param_count,
    walk_graph,
)
from tinytorch_course.boxes import misaligned_boxes

SOURCE = Path(__file__).resolve().parents[1] / "modules" / "05_memory" / "memory.py"


def markdown_text() -> str:
    """The module's markdown cells as plain text (the `# ` comment prefix removed)."""
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    text, in_markdown = [], False
    for line in lines:
        if line.startswith("# %%"):
            in_markdown = line.startswith("# %% [markdown]")
            continue
        if in_markdown:
            text.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(text)


def mlp(depth: int, width: int, seed: int, dtype=np.float64) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    blocks = [
        nn.Sequential(nn.Linear(width, width, generator=rng, dtype=dtype), nn.ReLU())
        for _ in range(depth)
    ]
    return nn.Sequential(*blocks)


def gradients(model: nn.Module) -> list[np.ndarray]:
    return [p.grad.copy() for p in model.parameters()]


# ------------------------------------------------------------------ scale calculator


def test_gpt3_parameter_count_is_175_billion_from_the_architecture():
    count = transformer_param_count(GPT3_175B)
    assert abs(count / 175e9 - 1) < 0.005, count
    assert training_state_bytes(count)["Optimizer"] == 2 * 4 * count


def test_layer_activations_match_korthikantis_16_bit_formula():
    for batch in (1, 3):
        s, h, a = GPT3_175B.seq_len, GPT3_175B.d_model, GPT3_175B.n_heads
        expected = s * batch * h * 34 + 5 * a * s * s * batch  # sbh(34 + 5as/h)
        assert layer_activation_bytes(GPT3_175B, batch, bytes_per_value=2) == expected


def test_checkpointed_activations_keep_segment_inputs_plus_one_segment():
    config = TransformerConfig(n_layers=12, d_model=8, n_heads=2, seq_len=4, vocab_size=16)
    layer = layer_activation_bytes(config, 2)
    boundary = 4 * config.seq_len * 2 * config.d_model
    assert activation_bytes(config, 2) == 12 * layer
    assert activation_bytes(config, 2, segments=12) == 12 * boundary + layer
    assert activation_bytes(config, 2, segments=5) == 5 * boundary + 3 * layer
    with pytest.raises(ValueError, match="segments=13"):
        activation_bytes(config, 2, segments=13)
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        training_state_bytes(10, optimizer="adagrad")


def test_opening_picture_is_what_the_calculator_renders():
    text = markdown_text()
    rendered = render_gpt3_comparison()
    assert rendered in text, (
        "re-render the GPT-3 picture in the opening from render_gpt3_comparison()"
    )
    assert not misaligned_boxes(rendered.splitlines())


def activations_per_nn_block() -> int:
    """How many batch × width arrays the graph of an nn Linear + ReLU block holds (live)."""
    batch, width, depth = 8, 16, 4
    model = mlp(depth, width, seed=0)
    loss = model(Variable(np.ones((batch, width)))).sum()
    ledger = memory_ledger(loss)
    held = ledger.bytes["activations"] + ledger.bytes["intermediates"] - loss.data.nbytes
    per_block, rest = divmod(held, batch * width * 8 * depth)
    assert rest == 0, f"the graph holds {held} bytes: not a whole number of activations per block"
    return per_block


def test_opening_numbers_come_from_the_formulas():
    text = " ".join(markdown_text().split())  # line breaks inside sentences do not matter
    config, layers = GPT3_175B, GPT3_175B.n_layers
    count = transformer_param_count(config)
    per_sequence = activation_bytes(config, 1)
    s, h, a = config.seq_len, config.d_model, config.n_heads
    interior_over_input = (66 * s * h + 9 * a * s * s) / (4 * s * h)
    claims = [
        f"4 B × {count / 1e9:.1f} billion ≈ {4 * count / 1e9:.0f} GB",
        f"{per_sequence / 1e9:.0f} GB per sequence of 2048 tokens",
        f"is {interior_over_input:.0f} times its input",
        f"saves 45 % of the total from a batch of {smallest_batch_saving(config, 0.45, layers)} "
        "sequences up",
        f"{total_saving(config, 1, layers):.0%} at 1 sequence".replace("%", " %"),
        f"{total_saving(config, 2, layers):.0%} at 2".replace("%", " %"),
        f"{total_saving(config, 8, layers):.0%} at 8".replace("%", " %"),
        f"about {2100e9 / per_sequence:.0f} sequences in fp32",
        f"2 + 2 + 12 = 16 bytes per parameter (Rajbhandari et al. 2020, ZeRO), the same "
        f"{16 * count / 1e9:.0f} GB",
        f"16-bit activations take "
        f"{activation_bytes(config, 1, 2) / per_sequence:.0%} of the fp32".replace("%", " %"),
    ]
    for claim in claims:
        assert claim in text, f"the opening should say {claim!r} (computed from the formulas)"
    weights = 32 * (512 * 512 + 512) * 4  # the benchmark's MLP, float32
    per_block = activations_per_nn_block()
    assert f"so a Linear + ReLU block keeps {per_block} A:" in text
    activation = 256 * 512 * 4
    for claim in (
        f"has {weights / 2**20:.0f} MiB of weights",
        f"holds another {32 * per_block * activation / 2**20:.0f} MiB ({per_block} activations of "
        f"{activation // 1024} KiB per block), and Adam and the gradients add "
        f"{3 * weights / 2**20:.0f} MiB more",
        f"that is {3 * 3 * activation / 2**20:.1f} MiB for three blocks",
    ):
        assert claim in text, f"the module should say {claim!r} (computed here)"


# ------------------------------------------------------------------ counting buffers


def test_views_and_slices_count_their_base_buffer_once():
    base = np.zeros((64, 32), np.float32)
    counter = BufferCounter()
    assert counter.add(base[:, :3], "activations")
    for view in (base.T, base.reshape(-1), base[::2], base[1:, 1:].T):
        assert owning_array(view) is base
        assert not counter.add(view, "gradients")
    assert counter.bytes_by_category() == {"activations": base.nbytes}


VIEWS = [
    lambda a: a.T,
    lambda a: a[1:],
    lambda a: a[:, ::2],
    lambda a: a.reshape(-1)[: a.size // 2].reshape(-1, 1) if a.flags.c_contiguous else a[::-1],
    lambda a: a[None],
    lambda a: a.view(),
]


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(2, 5), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.lists(st.integers(0, len(VIEWS) - 1), max_size=4))),
)
def test_any_mix_of_views_counts_each_base_once(sizes, picks):
    bases = [np.zeros((n, n + 1)) for n in sizes]
    counter = BufferCounter()
    for which, chain in picks:
        array = bases[which % len(bases)]
        for index in chain:
            array = VIEWS[index](array)
        counter.add(array, "activations")
    used = {which % len(bases) for which, _ in picks}
    assert counter.bytes_by_category().get("activations", 0) == sum(bases[i].nbytes for i in used)


def test_a_shared_parameter_and_a_reused_input_are_counted_once():
    rng = np.random.default_rng(0)
    W = Variable(rng.standard_normal((16, 16)), requires_grad=True)
    x = Variable(rng.standard_normal((8, 16)))
    loss = ((x @ W).relu() @ W + x @ W.T).sum()  # W three times, x twice
    ledger = memory_ledger(loss)
    assert ledger.bytes["parameters"] == W.data.nbytes
    assert ledger.bytes["inputs"] == x.data.nbytes
    assert ledger.buffers["parameters"] == 1 and ledger.buffers["inputs"] == 1


def test_walk_graph_is_iterative_and_visits_each_node_once():
    x = Variable(np.ones(3), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    graph = walk_graph(y)
    assert len(graph.nodes) == 20_000
    diamond = x * 2.0
    for _ in range(30):  # 2**30 paths; visiting per path would never finish
        diamond = diamond + diamond
    assert len(walk_graph(diamond).nodes) == 31
    with pytest.raises(TypeError, match="expected a Variable"):
        walk_graph(np.ones(3))


def test_the_traced_step_in_the_opening_matches_a_live_graph():
    """The opening says each Linear + ReLU block holds 3 activations until the loss is dropped."""
    rng = np.random.default_rng(1)
    batch, width = 32, 16
    params = [
        (
            Variable(rng.standard_normal((width, width)), requires_grad=True),
            Variable(np.zeros(width), requires_grad=True),
        )
        for _ in range(3)
    ]
    h = Variable(rng.standard_normal((batch, width)))
    for W, b in params:
        h = (h @ W + b).relu()
    loss = h.mean()
    one = batch * width * 8
    before = memory_ledger(loss)
    held = before.bytes["activations"] + before.bytes["intermediates"] - loss.data.nbytes
    assert held == 9 * one
    loss.backward()
    after = memory_ledger(loss)
    assert after.bytes["activations"] == 0
    assert after.bytes["intermediates"] - loss.data.nbytes == 9 * one


# ------------------------------------------------------------------ ledger vs tracemalloc


def _mlp_forward(dtype):
    model = mlp(4, 96, seed=2, dtype=dtype)
    x = Variable(np.random.default_rng(3).standard_normal((200, 96)).astype(dtype))
    return nn.mse_loss(model(x), x), None


def _views_forward():
    rng = np.random.default_rng(4)
    W = Variable(rng.standard_normal((128, 256)), requires_grad=True)
    x = Variable(rng.standard_normal((256, 128)))
    h = (x @ W).reshape(256, 16, 16).transpose(0, 2, 1).reshape(256, 256)
    return (h.T @ h).tanh().sum(), None


def _adam_step_and_graph():
    model = mlp(3, 128, seed=5)
    opt = optim.Adam(model.parameters())
    x = Variable(np.random.default_rng(6).standard_normal((150, 128)))
    nn.mse_loss(model(x), x).backward()
    opt.step()
    return nn.mse_loss(model(x), x), opt


def _checkpointed_forward():
    model = mlp(6, 128, seed=7)
    x = Variable(np.random.default_rng(8).standard_normal((200, 128)))
    return checkpoint_sequential(model, 3, x).sum(), model


@pytest.mark.parametrize(
    "build",
    [
        lambda: _mlp_forward(np.float32),
        lambda: _mlp_forward(np.float64),
        _views_forward,
        _adam_step_and_graph,
        _checkpointed_forward,
    ],
    ids=["mlp-float32", "mlp-float64", "views", "adam-step", "checkpointed"],
)
def test_ledger_agrees_with_tracemalloc_within_10_percent(build):
    run = traced(build)
    loss, optimizer = run.result
    ledger = memory_ledger(loss, optimizer=optimizer if isinstance(optimizer, optim.Adam) else None)
    assert abs(ledger.total - run.retained) <= 0.10 * run.retained, ledger.render(
        "ledger", run.retained
    )


def test_ledger_boxes_are_rectangles_with_wide_characters_in_titles():
    loss, _ = _mlp_forward(np.float32)
    ledger = memory_ledger(loss)
    text = render_ledgers([("plain 模型", ledger, 123456), ("checkpointed", ledger, None)])
    assert not misaligned_boxes(text.splitlines())
    assert isinstance(ledger, Ledger) and ledger.total == sum(ledger.bytes.values())


def test_layout_is_the_openings_picture_with_live_numbers():
    plain_loss, _ = _mlp_forward(np.float32)
    model = mlp(4, 96, seed=2, dtype=np.float32)
    x = Variable(np.ones((200, 96), np.float32))
    plain, ckpt = memory_ledger(plain_loss), memory_ledger(checkpoint_sequential(model, 2, x).sum())
    text = render_layout([("plain", plain), ("ckpt", ckpt)], "plain vs checkpointed", [1, None])
    lines = text.splitlines()
    assert not misaligned_boxes(lines)
    assert len({len(line) for line in lines}) == 1  # the outer box is one rectangle
    for name, ledger in (("plain", plain), ("ckpt", ckpt)):
        for key in ledger.bytes:
            row = f"│ {name}"
            assert any(row in line and format_bytes(ledger.bytes[key]) in line for line in lines)
        assert f"{name} {format_bytes(ledger.total)}" in text
    assert "Lives across training steps:" in text and "tracemalloc measured (plain)" in text
    single = render_layout([("yours", plain)], "one run")
    assert f"{plain.buffers['activations']} buffers" in single and not misaligned_boxes(
        single.splitlines()
    )


# ------------------------------------------------------------------ checkpointing


@pytest.mark.parametrize("segments", [1, 2, 3, 5, 8])
def test_checkpoint_sequential_gradients_are_bit_for_bit_identical(segments):
    rng = np.random.default_rng(9)
    x = Variable(rng.standard_normal((24, 20)), requires_grad=True)
    y = Variable(rng.standard_normal((24, 20)))
    plain, ckpt = mlp(8, 20, seed=10), mlp(8, 20, seed=10)
    nn.mse_loss(plain(x), y).backward()
    x_grad = x.grad.copy()
    x.grad = None
    out = checkpoint_sequential(ckpt, segments, x)
    nn.mse_loss(out, y).backward()
    assert all(np.array_equal(a, b) for a, b in zip(gradients(plain), gradients(ckpt), strict=True))
    assert np.array_equal(x_grad, x.grad)
    assert np.array_equal(out.data, plain(x).data)


def test_checkpoint_of_several_inputs_and_explicit_parameters():
    rng = np.random.default_rng(11)
    a = Variable(rng.standard_normal((5, 4)), requires_grad=True)
    b = Variable(rng.standard_normal((5, 4)))  # needs no gradient
    W = Variable(rng.standard_normal((4, 4)), requires_grad=True)

    def fn(u, v):
        return ((u * v) @ W).tanh() + u

    results = []
    for run in (fn, lambda u, v: checkpoint(fn, u, v, parameters=[W])):
        a.grad = W.grad = None
        run(a, b).sum().backward()
        results.append((a.grad.copy(), W.grad.copy(), b.grad))
    (ga1, gw1, gb1), (ga2, gw2, gb2) = results
    assert np.array_equal(ga1, ga2) and np.array_equal(gw1, gw2)
    assert gb1 is None and gb2 is None


def test_nested_checkpoints_and_accumulation_across_steps():
    rng = np.random.default_rng(12)
    model_a, model_b = mlp(4, 12, seed=13), mlp(4, 12, seed=13)
    x = Variable(rng.standard_normal((6, 12)))

    def nested(m):
        def outer(h):
            return m[3](checkpoint(m[2], m[1](h)))

        return checkpoint(
            outer, checkpoint(m[0], x), parameters=[*m[1].parameters(), *m[3].parameters()]
        )

    for _ in range(2):  # gradients accumulate with += across backward calls, like the plain run
        model_a(x).sum().backward()
        nested(model_b).sum().backward()
    assert all(
        np.array_equal(g, h) for g, h in zip(gradients(model_a), gradients(model_b), strict=True)
    )


def test_residual_connections_and_retained_graphs_match_the_plain_run():
    rng = np.random.default_rng(20)
    x = Variable(rng.standard_normal((10, 8)), requires_grad=True)
    model_a, model_b = mlp(3, 8, seed=21), mlp(3, 8, seed=21)
    results = []
    for model, wrap in ((model_a, lambda f, h: f(h)), (model_b, checkpoint)):
        x.grad = None
        h = x
        for block in model:
            h = wrap(block, h) + h  # the segment's input is also used outside it
        loss = (h * h).mean()
        loss.backward(retain_graph=True)
        loss.backward()  # recomputes again from the retained inputs
        results.append((gradients(model), x.grad.copy()))
    (grads_a, gx_a), (grads_b, gx_b) = results
    assert all(np.array_equal(g, h) for g, h in zip(grads_a, grads_b, strict=True))
    assert np.array_equal(gx_a, gx_b)


def test_checkpointing_holds_less_memory_during_a_step():
    rng = np.random.default_rng(14)
    x = Variable(rng.standard_normal((128, 128)))
    peaks = {}
    for name, segments in (("plain", None), ("checkpointed", 4)):
        model = mlp(16, 128, seed=15)

        def step(model=model, segments=segments):
            out = model(x) if segments is None else checkpoint_sequential(model, segments, x)
            out.sum().backward()

        step()  # gradients exist before the measured step
        for p in model.parameters():
            p.grad.fill(0)
        peaks[name] = traced(step).peak
    assert peaks["checkpointed"] < 0.5 * peaks["plain"], peaks


def test_checkpoint_node_saves_only_its_inputs_and_output():
    model = mlp(5, 64, seed=16)
    x = Variable(np.random.default_rng(17).standard_normal((32, 64)))
    loss = checkpoint_sequential(model, 5, x).sum()
    graph = walk_graph(loss)
    assert len(graph.nodes) == 6  # five Checkpoint nodes and the sum
    assert repr(loss.grad_fn) and "Checkpoint" in type(graph.nodes[1]).__name__
    ledger = memory_ledger(loss)
    one = 32 * 64 * 8
    # saved: the inputs of segments 2..5 (x is an input) and the last output; nothing else
    assert ledger.bytes["activations"] == 5 * one
    assert ledger.bytes["intermediates"] == loss.data.nbytes


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("segments", [0, -2, 9])
def test_segments_out_of_range_name_the_value_and_the_range(segments):
    with pytest.raises(ValueError, match=rf"segments={segments} .* 8 layers: use 1 ≤ segments ≤ 8"):
        checkpoint_sequential(mlp(8, 4, seed=0), segments, Variable(np.ones((2, 4))))


@pytest.mark.parametrize("segments", [2.0, "3", True, None])
def test_segments_must_be_an_int(segments):
    with pytest.raises(TypeError, match="segments must be an int"):
        segment_bounds(8, segments)


def test_segment_bounds_split_evenly_larger_first():
    for n in range(1, 40):
        for k in range(1, n + 1):
            bounds = segment_bounds(n, k)
            sizes = [stop - start for start, stop in bounds]
            assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == k
            assert all(b[1] == c[0] for b, c in zip(bounds, bounds[1:], strict=False))
            assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    assert round(math.sqrt(32)) == 6 and segment_bounds(32, 6)[0] == (0, 6)


def test_inside_no_grad_checkpoint_just_calls_fn():
    model = mlp(2, 8, seed=18)
    x = Variable(np.ones((3, 8)), requires_grad=True)
    with no_grad():
        out = checkpoint_sequential(model, 2, x)
        single = checkpoint(model, x)
    assert out.grad_fn is None and not out.requires_grad and single.grad_fn is None
    assert np.array_equal(out.data, model(x).data)


def test_nothing_requires_grad_means_no_checkpoint_node():
    x = Variable(np.ones((3, 4)))
    out = checkpoint(lambda v: v * 2.0, x)
    assert out.grad_fn is None and np.array_equal(out.data, 2 * np.ones((3, 4)))


def test_output_that_does_not_depend_on_inputs_raises_in_backward_naming_fn():
    x = Variable(np.ones(3), requires_grad=True)

    def constant(v):
        return Variable(np.ones(3))

    out = checkpoint(constant, x)
    with pytest.raises(RuntimeError, match=r"checkpoint\(constant\).*does not depend"):
        out.sum().backward()


def test_output_that_ignores_inputs_but_uses_parameters_gives_no_input_gradient():
    W = Variable(np.ones(3), requires_grad=True)
    x = Variable(np.ones(3), requires_grad=True)
    checkpoint(lambda v: W * 2.0, x, parameters=[W]).sum().backward()
    assert x.grad is None and np.array_equal(W.grad, np.full(3, 2.0))


def test_fn_must_return_a_variable_and_inputs_must_be_variables():
    x = Variable(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"checkpoint\(<lambda>\): fn returned ndarray"):
        checkpoint(lambda v: v.data * 2, x)
    with pytest.raises(TypeError, match="input 1 is a ndarray"):
        checkpoint(lambda u, v: u, x, np.ones(3))


def test_second_backward_through_a_checkpoint_is_a_clear_error():
    model = mlp(2, 4, seed=19)
    loss = checkpoint(model, Variable(np.ones((2, 4)), requires_grad=True)).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_scale_picture_lines_are_plain_ascii_numbers_not_mojibake():
    text = render_gpt3_comparison(batch=2)
    assert re.search(r"Total:\s+\d+ GB", text) and "â" not in text
    memory = training_memory(GPT3_175B, 2, segments=GPT3_175B.n_layers)
    assert set(memory) == {"Parameters", "Gradients", "Optimizer", "Activations"}


# ------------------------------------------------------------------ the student's release


def stubbed(source: str) -> str:
    """The module as nbgrader releases it: solution regions become `raise
    NotImplementedError()`, hidden tests disappear."""
    out, skipping = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
            skipping = True
            if marker == "### BEGIN SOLUTION":
                out.append(line.replace("### BEGIN SOLUTION", "raise NotImplementedError()"))
        elif marker in ("### END SOLUTION", "### END HIDDEN TESTS"):
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.slow
def test_released_notebook_runs_and_fails_only_in_graded_cells():
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    notebook = jupytext.reads(stubbed(SOURCE.read_text(encoding="utf-8")), fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", allow_errors=True
    )
    client.execute(cwd=str(SOURCE.parent))
    failing, graded = [], []
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            graded.append(meta["grade_id"])
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and not meta.get("grade"):
            failing.append(f"cell {index}: {errors[0]['ename']}: {errors[0]['evalue']}")
        if meta.get("grade"):
            assert errors, f"{meta['grade_id']} passes with every solution stubbed"
    assert not failing, failing
    assert len(graded) == 9


KEPT_MEMORY = """
import resource, sys
import numpy as np
from tinytorch.memory import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "kept" else None  # first thing, as a script does

def faults_of_steps(mib):  # five "training steps" that allocate and free 64 MiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        arrays = [np.ones(mib * 2**18, np.float32) for _ in range(64 // mib)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_steps(1)
print(kept, *(faults_of_steps(mib) for mib in (1, 4, 16)))
"""


def faults_per_array_size(setting: str) -> tuple[str, list[int]]:
    """Page faults of five 64 MiB steps in 1, 4 and 16 MiB arrays, in a fresh process
    (the setting is process-wide), with glibc's defaults or after keep_freed_memory()."""
    done = subprocess.run(
        [sys.executable, "-c", KEPT_MEMORY, setting], capture_output=True, text=True, check=True
    )
    kept, *faults = done.stdout.split()
    return kept, [int(f) for f in faults]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt; elsewhere it does nothing")
def test_keep_freed_memory_stops_the_page_faults_of_repeated_steps():
    _, plain = faults_per_array_size("plain")
    kept, kept_faults = faults_per_array_size("kept")
    if kept != "True":
        pytest.skip("no glibc mallopt here")
    import resource  # Unix only

    pages = 5 * 64 * 2**20 // resource.getpagesize()  # touched by the five steps
    assert plain[0] > pages / 2, f"1 MiB arrays: {plain[0]} faults of {pages} pages by default"
    for mib, after in zip((1, 4, 16), kept_faults, strict=True):
        assert after < pages / 20, f"{mib} MiB arrays: {after} faults of {pages} pages kept"
