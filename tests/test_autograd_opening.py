"""Module 01's diagrams are printed by the tools of `tinytorch.viz`, so they cannot drift.

Every ```python block in the module's markdown that is followed by a ```text block is
run here with the exported `tinytorch.autograd`, and what it prints must equal the
text block. The numbers of the memory pictures are recomputed from the formulas
stated beside them (the small model's saved-for-backward bytes measured on a live
graph). Then the tools themselves: `draw_graph`, `trace`, `explain`, which watch the
engine only through its public hooks (`observe_ops`, `grad_fn.register_hook`).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import tinytorch.autograd as autograd
import tinytorch.viz as viz
from tinytorch.autograd import Variable, is_grad_enabled, log_softmax, no_grad, topological_order
from tinytorch.viz import draw_graph, explain, trace

MODULE = Path(__file__).resolve().parents[1] / "modules" / "01_autograd" / "autograd.py"
EXAMPLE = re.compile(r"```python\n(?P<code>.*?)```\n\n```text\n(?P<output>.*?)```", re.S)


def markdown_cells(source: str) -> list[str]:
    """The text of each markdown cell of a percent-format module (comment marks removed)."""
    cells = re.split(r"(?m)^# %%", source)
    texts = []
    for cell in cells:
        header, _, body = cell.partition("\n")
        if header.strip() == "[markdown]":
            lines = [line[2:] if line.startswith("# ") else line[1:] for line in body.splitlines()]
            texts.append("\n".join(lines).strip("\n") + "\n")
    return texts


MARKDOWN = markdown_cells(MODULE.read_text(encoding="utf-8"))
OPENING = "".join(MARKDOWN[1:7])  # the six cells after the title cell
EXAMPLES = [match for cell in MARKDOWN for match in EXAMPLE.finditer(cell)]


def run_example(code: str) -> str:
    """What `code` prints, run with what `tinytorch.autograd` and `tinytorch.viz` export."""
    namespace = {name: getattr(autograd, name) for name in autograd.__all__}
    namespace.update({name: getattr(viz, name) for name in viz.__all__})
    namespace["np"] = np
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, str(MODULE), "exec"), namespace)
    return buffer.getvalue()


def test_the_opening_has_the_seed_six_elements():
    headings = re.findall(r"(?m)^## (.+)$", OPENING)
    assert headings == [
        "What we're building",
        "The computational graph",
        "Memory: what training keeps around",
        "The chain rule, step by step",
        "At the scale of a large model",
        "Why this matters",
    ], headings
    opening_examples = [m for m in EXAMPLES if m.group(0) in OPENING]
    assert len(opening_examples) == 3, "explain, draw_graph and trace examples in the opening"


@pytest.mark.parametrize(
    "example",
    EXAMPLES,
    ids=[
        f"example{i}-{m.group('code').strip().splitlines()[0][:30]}" for i, m in enumerate(EXAMPLES)
    ],
)
def test_markdown_output_is_what_the_engine_prints(example):
    printed = run_example(example.group("code"))
    shown = example.group("output")
    diff = "\n".join(
        difflib.unified_diff(
            shown.splitlines(), printed.splitlines(), "markdown", "engine", lineterm=""
        )
    )
    assert printed == shown, (
        f"the module's markdown disagrees with the engine; re-paste the output:\n{diff}"
    )


def test_the_chain_rule_trace_shows_the_seed_numbers():
    trace_example = next(m for m in EXAMPLES if "with trace(" in m.group("code"))
    output = trace_example.group("output")
    assert "Tracks operation: Add(x, 2) = 7" in output
    assert "Tracks operation: Mul(y, 3) = 21" in output
    assert "∂z/∂y = ∂z/∂z × ∂(y*3)/∂y = 1 × 3 = 3" in output
    assert "∂z/∂x = ∂z/∂y × ∂(x + 2)/∂x = 3 × 1 = 3" in output
    assert "Result: x.grad = 3" in output


def grouped(number: float) -> str:
    return f"{number:,}"


def small_model_saved_bytes() -> int:
    """Bytes saved for backward by the opening's MLP on this engine, parameters excluded."""
    rng = np.random.default_rng(0)
    params = [
        Variable(rng.standard_normal((784, 256)).astype(np.float32), requires_grad=True),
        Variable(np.zeros(256, np.float32), requires_grad=True),
        Variable(rng.standard_normal((256, 10)).astype(np.float32), requires_grad=True),
        Variable(np.zeros(10, np.float32), requires_grad=True),
    ]
    w1, b1, w2, b2 = params
    x = Variable(rng.standard_normal((64, 784)).astype(np.float32))
    labels = rng.integers(0, 10, 64)
    loss = -log_softmax((x @ w1 + b1).relu() @ w2 + b2)[np.arange(64), labels].mean()
    parameter_buffers = {id(p.data) for p in params}
    saved = {}
    for node in topological_order(loss):
        for value in getattr(node.grad_fn, "_saved", ()) if node.grad_fn else ():
            if isinstance(value, np.ndarray) and id(value) not in parameter_buffers:
                saved[id(value)] = value.nbytes
    return sum(saved.values())


def test_small_model_memory_numbers_follow_from_the_stated_model():
    n_in, hidden, n_out, batch, bytes_per_number = 784, 256, 10, 64, 4
    parameters = n_in * hidden + hidden + hidden * n_out + n_out
    saved_numbers = batch * n_in + 2 * batch * hidden + batch * n_out
    assert small_model_saved_bytes() == saved_numbers * bytes_per_number, (
        "the engine saves what the text says"
    )
    adam = 2 * parameters * bytes_per_number
    total = 2 * parameters * bytes_per_number + saved_numbers * bytes_per_number + adam
    for number in (
        parameters,
        parameters * bytes_per_number,
        saved_numbers,
        saved_numbers * bytes_per_number,
        adam,
        total,
        2 * parameters,
    ):
        assert grouped(number) in OPENING, (
            f"{grouped(number)} (derived) is missing from the opening"
        )
    for megabytes in (parameters * 4 / 1e6, saved_numbers * 4 / 1e6, adam / 1e6, total / 1e6):
        assert f"{megabytes:.2f} MB" in OPENING, (
            f"{megabytes:.2f} MB (derived) is missing from the opening"
        )


def test_the_large_model_picture_is_referenced_not_repeated():
    """Module 05 holds the large-model memory picture; the opening gives its first figure
    (fp32 weights of 175e9 parameters) and points there."""
    weights_gb = 175e9 * 4 / 1e9
    assert f"{weights_gb:.0f} GB" in OPENING and "module 05" in OPENING
    assert "Korthikanti" not in OPENING, "the activation formulas live in module 05"


def test_history_is_accurate():
    for fact in (
        "Linnainmaa",
        "1970",
        "Werbos",
        "1974",
        "Rumelhart, Hinton and Williams",
        "1986",
        "Theano (2007)",
    ):
        assert fact in OPENING, fact
    assert "pre-2015" not in OPENING


# ------------------------------------------------------------------ draw_graph


def connectors_are_closed(drawing: str) -> bool:
    """Every ┐ has a ┘ below it in the same column, joined by │ ├ ┤ ┼ only."""
    rows = drawing.splitlines()
    for top, row in enumerate(rows):
        for column, char in enumerate(row):
            if char != "┐":
                continue
            below = top + 1
            while below < len(rows) and column < len(rows[below]) and rows[below][column] in "│├┤┼":
                below += 1
            if below == len(rows) or column >= len(rows[below]) or rows[below][column] != "┘":
                return False
    return True


def test_draw_graph_labels_come_from_names_then_code_then_expressions():
    x = Variable(2.0, requires_grad=True, name="input")
    doubled = x * 2
    drawing = draw_graph(doubled.exp() + 1, names=locals())
    assert "input ──┐" in drawing  # Variable.name wins over the code's name `x`
    assert "doubled = input*2" in drawing  # the name in this function's code
    assert "exp(doubled)" in drawing  # no name: the expression
    assert connectors_are_closed(drawing)


def test_draw_graph_draws_a_shared_subgraph_once_and_stays_linear():
    a = Variable(0.1, requires_grad=True)
    node = a
    for _ in range(10):
        node = node * node + node
    drawing = draw_graph(node)
    assert drawing.count("[×]") == 10 and drawing.count("[+]") == 10
    assert connectors_are_closed(drawing)
    assert re.search(r"\bt1 = ", drawing), "long expressions get short names"


def test_draw_graph_backward_shows_only_what_receives_a_gradient():
    w = Variable([1.0, 2.0], requires_grad=True)
    constant = Variable([3.0, 4.0])
    loss = (w * constant).sum()
    names = locals()
    forward, backward = draw_graph(loss, names=names), draw_graph(loss, True, names=names)
    assert "constant ──┘" in forward and "∂loss/∂constant" not in backward
    assert "∂loss/∂w ←──" in backward and "∂loss/∂loss = 1" in backward
    loss.backward()
    scalar = Variable(2.0, requires_grad=True)
    out = scalar * 3
    out.backward()
    assert "∂out/∂scalar = 3 ←──" in draw_graph(out, backward=True, names=locals())


@pytest.mark.parametrize("seed", range(20))
def test_draw_graph_of_random_graphs_draws_each_op_once_with_closed_brackets(seed):
    rng = np.random.default_rng(seed)
    pool = [
        Variable(float(rng.uniform(0.5, 1.5)), requires_grad=True, name=f"v{i}") for i in range(3)
    ]
    ops = {"+": lambda a, b: a + b, "*": lambda a, b: a * b, "-": lambda a, b: a - b}
    for _ in range(int(rng.integers(1, 12))):
        if rng.random() < 0.2:
            pool.append(pool[int(rng.integers(len(pool)))].exp() * 0.1)
        else:
            symbol = str(rng.choice(list(ops)))
            a, b = (pool[int(i)] for i in rng.integers(len(pool), size=2))
            pool.append(ops[symbol](a, b))
    root = pool[-1]
    reachable = {id(v) for v in topological_order(root) if v.grad_fn is not None}
    forward, backward = draw_graph(root), draw_graph(root, backward=True)
    drawn_ops = sum(forward.count(f"[{s}]") for s in ("+", "×", "-", "exp"))
    assert drawn_ops == len(reachable), forward  # each op node once, however many paths
    assert connectors_are_closed(forward) and connectors_are_closed(backward), (
        forward + "\n" + backward
    )


def test_draw_graph_refuses_huge_graphs_with_advice():
    x = Variable(1.0, requires_grad=True)
    for _ in range(50):
        x = x + 1
    with pytest.raises(ValueError, match="max_ops"):
        draw_graph(x)
    assert draw_graph(x, max_ops=60).count("[+]") == 50


# ----------------------------------------------------------------------- trace


def traced(action, names: dict | None = None) -> str:
    buffer = io.StringIO()
    with trace(file=buffer, names=names):
        action()
    return buffer.getvalue()


def test_trace_prints_operations_as_they_run():
    plain_apply = autograd.Function.__dict__["apply"]
    x = Variable([1.0, 2.0], requires_grad=True)
    result = {}
    output = traced(lambda: result.setdefault("y", x * 2), names={"x": x})
    assert output == (
        "Tracks operation: Mul(x, 2) = [2., 4.]\n    saves [1., 2.], 2 for backward\n"
    )
    assert autograd.Function.__dict__["apply"] is plain_apply, "the observer leaves with the block"


def test_trace_says_when_nothing_is_recorded():
    x = Variable(3.0, requires_grad=True)

    def untracked():
        with no_grad():
            return x * 2

    assert traced(untracked, {"x": x}) == "Computes without tracking: Mul(x, 2) = 6\n"
    assert is_grad_enabled()


def test_trace_marks_accumulation_from_two_paths():
    names = {"a": Variable(1.0, requires_grad=True)}

    def diamond():
        names["left"] = names["a"] * 2
        names["right"] = names["a"] * 3
        (names["left"] + names["right"]).backward()

    output = traced(diamond, names)
    steps = re.findall(r"∂L/∂a (\+?=) ∂L/∂(left|right) × ∂\(a\*[23]\)/∂a = 1 × ([23]) = \3", output)
    assert sorted(equals for equals, _, _ in steps) == ["+=", "="], output  # set, then add
    assert sorted(path for _, path, _ in steps) == ["left", "right"], output
    assert "Result: a.grad = 5" in output


def test_trace_is_removed_after_an_exception():
    plain_apply = autograd.Function.__dict__["apply"]
    with pytest.raises(KeyError):
        with trace(file=io.StringIO()):
            raise KeyError("boom")
    assert autograd.Function.__dict__["apply"] is plain_apply


def test_the_hooks_cost_nothing_outside_a_trace_and_see_only_nodes_made_inside():
    """A node recorded inside a trace keeps its hook, but reports nothing once the block
    has ended; a graph made outside is not observed at all."""
    buffer = io.StringIO()
    x = Variable(2.0, requires_grad=True)
    with trace(file=buffer):
        y = x * 3
    before = buffer.getvalue()
    y.backward()
    assert buffer.getvalue() == before and x.grad == 3


def test_node_hooks_see_and_may_replace_the_input_gradients():
    x = Variable(2.0, requires_grad=True)
    y = x * 3
    seen = []
    y.grad_fn.register_hook(
        lambda grad_inputs, grad_outputs: (
            seen.append(grad_outputs) or (grad_inputs[0] * 10, grad_inputs[1])
        )
    )
    y.backward()
    assert float(seen[0][0]) == 1.0 and float(x.grad) == 30.0


def test_observe_ops_sees_every_apply_and_nests():
    calls = []
    x = Variable(1.0, requires_grad=True)
    with autograd.observe_ops(lambda op, inputs, out: calls.append(("outer", op.__name__))):
        with autograd.observe_ops(lambda op, inputs, out: calls.append(("inner", op.__name__))):
            _ = x + 1
        _ = x * 2
    _ = x - 1
    assert calls == [("outer", "Add"), ("inner", "Add"), ("outer", "Mul")]  # inner wraps outer


def test_explain_is_the_one_call_the_cli_demo_uses():
    text = explain("y = x + 2\nz = y * 3\nz.backward()", x=5.0)
    lines = text.splitlines()
    assert lines[0].startswith("Your code:") and lines[0].rstrip().endswith("What autograd does:")
    assert "x = Variable(5.0, requires_grad=True)" in lines[2] and "Creates leaf x" in lines[2]
    assert any(
        line.startswith("y = x + 2") and "Tracks operation: Add(x, 2) = 7" in line for line in lines
    )
    assert "Result: x.grad = 3" in text
    column = lines[0].index("What autograd does:")
    assert all(len(line) <= column or line[column - 1] == " " for line in lines), (
        "the right column is aligned"
    )
