# %% [markdown]
# # Seeing the graph
#
# > `draw_graph`, `trace` and `explain`: text pictures of the graph autograd records.

# %% [markdown]
# These tools are a companion to module 01, not an exercise: they watch the engine from
# outside, as PyTorch's tools do, through its public observation API only:
#
# - `draw_graph(v)` reads the graph through each `grad_fn`'s `inputs`, the way
#   micrograd's `draw_dot` reads `_prev`;
# - `trace()` listens to every `Function.apply` with `observe_ops(hook)`, and to each
#   recorded node's backward with `grad_fn.register_hook(hook)`;
# - `explain(code)` runs code line by line under `trace()`.
#
# Names come from an explicit `names=` dict (pass `globals()`), never from the caller's
# stack frames. Any object with `data`, `grad` and `grad_fn` works, so the tools draw
# the Variables of a notebook's own engine as well as the package's.

# %%
#| default_exp viz

# %%
#| export
import io
import sys
from collections.abc import Callable, Sequence

import numpy as np


def _is_variable(value) -> bool:
    """A Variable of any engine with this API (duck-typed: data, grad, grad_fn)."""
    return hasattr(value, "grad_fn") and hasattr(value, "data") and hasattr(value, "grad")


_INFIX = {"Add": " + ", "Sub": " - ", "Mul": "*", "Div": "/", "Pow": "**", "MatMul": " @ "}
_SYMBOLS = {
    "Add": "+",
    "Sub": "-",
    "Mul": "×",
    "Div": "÷",
    "Pow": "**",
    "MatMul": "@",
    "Neg": "neg",
}
_ONE_OPERAND = {"Sum", "Mean", "Max", "Reshape", "Transpose", "GetItem", "LogSoftmax"}
_METHOD_STYLE = {"Sum": "sum", "Mean": "mean", "Max": "max", "LogSoftmax": "log_softmax"}
_TIGHT = {"Mul", "Div", "Pow", "Neg", "Transpose", "GetItem", "Reshape", *_METHOD_STYLE}


def _format_value(value) -> str:
    """A number as `7` or `0.333333`; a larger array as `[...]` with 4 significant digits."""
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():g}"
    if array.size <= 6:
        return np.array2string(array, precision=4, separator=", ", suppress_small=True)
    return f"<array of shape {array.shape}>"


def _operands(op: type, inputs: Sequence) -> list:
    """The inputs of a call to `op` that are values (Variables, numbers, arrays), not
    settings such as an axis, a shape or an index."""
    if op.__name__ in _ONE_OPERAND:
        return list(inputs[:1])
    return [
        x
        for x in inputs
        if (_is_variable(x) or isinstance(x, (np.ndarray, int, float))) and not isinstance(x, bool)
    ]


def _names(scope: dict | None) -> dict[int, str]:
    """{id(variable): name} for the Variables in `scope` (first name wins)."""
    found: dict[int, str] = {}
    for name, value in list((scope or {}).items()):
        if _is_variable(value) and not name.startswith("_"):
            found.setdefault(id(value), name)
    return found


class _Labels:
    """How to write a Variable in a diagram: its `name`, else the name your code gave
    it, else the expression that computed it (`x*y + b`), else its value."""

    longest = 24  # an expression longer than this is called t1, t2, ... instead

    def __init__(self, names: dict[int, str]):
        self.names = dict(names)
        self.temporaries = 0

    def name(self, value) -> str | None:
        if _is_variable(value):
            return value.name or self.names.get(id(value))
        return None

    def label(self, value) -> str:
        if not _is_variable(value):
            return _format_value(value)
        if self.name(value):
            return self.name(value)
        if value.grad_fn is not None and hasattr(value.grad_fn, "inputs"):
            text = self.expression(value)
            if len(text) > self.longest:
                self.temporaries += 1
                text = self.names[id(value)] = f"t{self.temporaries}"
            return text
        return _format_value(value.data)

    def expression(self, variable) -> str:
        """The op that made `variable`, written with its operands' labels: `x*y + b`."""
        fn = variable.grad_fn
        op = type(fn).__name__
        args = _operands(type(fn), fn.inputs)
        texts = [self._operand_text(op, a, position) for position, a in enumerate(args)]
        if op in _INFIX and len(texts) == 2:
            return _INFIX[op].join(texts)
        if op == "Neg":
            return f"-{texts[0]}"
        if op in _METHOD_STYLE:
            axis = fn.inputs[1] if len(fn.inputs) > 1 else None
            return f"{texts[0]}.{_METHOD_STYLE[op]}({'' if axis is None else f'axis={axis}'})"
        if op == "Transpose":
            return f"{texts[0]}.T"
        if op == "GetItem":
            return f"{texts[0]}[...]"
        if op == "Reshape":
            return f"{texts[0]}.reshape{tuple(fn.inputs[1])}"
        name = op.lower() if op in ("Exp", "Log", "Tanh", "Sigmoid", "ReLU") else op
        return f"{name}({', '.join(texts)})"

    def _operand_text(self, op: str, value, position: int) -> str:
        text = self.label(value)
        is_infix = (
            self.name(value) is None
            and _is_variable(value)
            and value.grad_fn is not None
            and type(value.grad_fn).__name__ in _INFIX
        )
        binds_tighter = op in _TIGHT or (op == "Sub" and position == 1)
        return f"({text})" if is_infix and binds_tighter else text

    def derivative(self, of: str, value) -> str:
        """`∂z/∂x`, with parentheses around an expression: `∂z/∂(x*y)`."""
        text = self.label(value)
        return f"∂{of}/∂{text}" if text.isidentifier() else f"∂{of}/∂({text})"


# %%


# %%
#| export
class _GraphDrawing:
    """Lays out the graph that made a Variable as text: each op's operands stacked on the
    left, joined by a bracket to the op, whose result flows to the right. A sub-result
    used twice is drawn once, then referred to by its label."""

    def __init__(self, root, labels: _Labels, backward: bool = False, max_ops: int = 40):
        self.root, self.labels, self.backward = root, labels, backward
        self.max_ops, self.drawn = max_ops, set()
        self.of = labels.name(root) or "L"
        self.stub, self.arrow = (" ←──", "←── ") if backward else (" ──", "──> ")

    def render(self) -> str:
        lines, _ = self.block(self.root)
        return "\n".join(line.rstrip() for line in lines)

    def node_text(self, value, is_root: bool = False) -> str:
        if self.backward:
            text = self.labels.derivative(self.of, value)
            if is_root and value.data.size == 1:
                return f"{text} = 1"
            grad = value.grad if _is_variable(value) else None
            return (
                f"{text} = {_format_value(grad)}" if grad is not None and grad.size == 1 else text
            )
        name = self.labels.name(value)
        if name and _is_variable(value) and value.grad_fn is not None:
            return f"{name} = {self.labels.expression(value)}"
        return self.labels.label(value)

    def children(self, variable) -> list:
        fn = variable.grad_fn
        args = _operands(type(fn), fn.inputs)
        if self.backward:  # only what receives a gradient
            args = [a for a in args if _is_variable(a) and a.requires_grad]
        return args

    def block(self, value) -> tuple[list[str], int]:
        """(lines, the row where this value's arrow leaves to the right)."""
        is_op = (
            _is_variable(value) and value.grad_fn is not None and hasattr(value.grad_fn, "inputs")
        )
        if is_op and id(value) in self.drawn:  # drawn already: refer to it
            label = self.labels.label(value)
            return [self.labels.derivative(self.of, value) if self.backward else label], 0
        if not is_op:
            return [self.node_text(value)], 0
        self.drawn.add(id(value))
        if len(self.drawn) > self.max_ops:
            raise ValueError(
                f"draw_graph draws up to {self.max_ops} operations and this graph has more: "
                "draw a smaller part of it (pass draw_graph(..., max_ops=N) to raise the limit)"
            )
        symbol = (
            f"[{_SYMBOLS.get(type(value.grad_fn).__name__, type(value.grad_fn).__name__.lower())}]"
        )
        result = f"{symbol}{self.arrow}{self.node_text(value, value is self.root)}"
        blocks = [self.block(child) for child in self.children(value)]
        if len(blocks) == 1:
            lines, anchor = blocks[0]
            lines = list(lines)
            lines[anchor] += f"{self.stub}{result}"
            return lines, anchor
        return self.join(blocks, "──" + result)

    def join(self, blocks: list[tuple[list[str], int]], result: str) -> tuple[list[str], int]:
        """Stack operand blocks, right-aligned, and bracket their arrows into one op."""
        widths = [max(max(map(len, lines)), len(lines[a]) + len(self.stub)) for lines, a in blocks]
        column = max(widths)
        rows: list[str] = []
        anchors: list[int] = []
        for index, ((lines, anchor), width) in enumerate(zip(blocks, widths, strict=True)):
            if index:
                rows.append("")
            indent = " " * (column - width)
            for row, line in enumerate(lines):
                if row == anchor:
                    anchors.append(len(rows))
                    rows.append(indent + (line + self.stub).ljust(width, "─"))
                else:
                    rows.append(indent + line.ljust(width))
        first, last = anchors[0], anchors[-1]
        junction = (first + last) // 2
        for row in range(len(rows)):
            rows[row] = rows[row].ljust(column)
            if row == first:
                rows[row] += "┐"
            elif row == last:
                rows[row] += "┘"
            elif first < row < last:
                middle = row in anchors
                rows[row] += (
                    ("┼" if middle else "├") if row == junction else ("┤" if middle else "│")
                )
            if row == junction:
                rows[row] += result
        return rows, junction


def draw_graph(root, backward: bool = False, max_ops: int = 40, names: dict | None = None) -> str:
    """The graph that computed `root`, drawn as text. `backward=True` draws the gradients
    flowing back instead (∂root/∂ each Variable that requires grad). Labels are Variable
    names, else their names in `names` (e.g. `globals()`), else expressions."""
    return _GraphDrawing(root, _Labels(_names(names)), backward, max_ops).render()


# %%
#| export
class trace:
    """`with trace(names=globals()):` prints each operation as autograd records it and,
    after `backward()`, each step of the chain rule with its numbers.

    It listens through the engine's public hooks: `observe` (default
    `tinytorch.autograd.observe_ops`) for every `apply`, and `grad_fn.register_hook` on
    each node recorded inside the block for its backward. `names` maps names to
    Variables (read when printing); `file` is where to print (default stdout)."""

    def __init__(self, file=None, names: dict | None = None, observe: Callable | None = None):
        self.file, self.names = file, names
        self._observe = observe
        self._outputs: dict = {}
        self._steps: list[tuple] = []
        self._active = False
        self._blocks: list = []

    def __enter__(self) -> "trace":
        if self._observe is None:
            from .autograd import observe_ops

            self._observe = observe_ops
        block = self._observe(self._on_op)
        block.__enter__()
        self._blocks.append(block)
        self._active = True
        return self

    def __exit__(self, *exc_info) -> bool:
        self._flush()
        self._active = False
        self._blocks.pop().__exit__(*exc_info)
        return False

    def _say(self, text: str) -> None:
        print(text, file=self.file or sys.stdout)

    def _labels(self) -> _Labels:
        return _Labels(_names(self.names))

    def _on_op(self, op: type, inputs: tuple, output) -> None:
        self._flush()
        labels = self._labels()
        args = ", ".join(labels.label(x) for x in _operands(op, inputs))
        ctx = output.grad_fn
        if ctx is None:
            self._say(
                f"Computes without tracking: {op.__name__}({args}) = {_format_value(output.data)}"
            )
            return
        self._outputs[ctx] = output
        ctx.register_hook(
            lambda grad_inputs, grad_outputs: self._on_backward(ctx, grad_inputs, grad_outputs)
        )
        self._say(f"Tracks operation: {op.__name__}({args}) = {_format_value(output.data)}")
        saved = ctx.saved_tensors
        if saved:
            self._say(f"    saves {', '.join(_format_value(v) for v in saved)} for backward")

    def _on_backward(self, fn, grad_inputs: tuple, grad_outputs: tuple) -> None:
        if self._active:
            self._steps.append((fn, grad_outputs[0], grad_inputs))

    def _flush(self) -> None:
        """Print the backward pass recorded since the last operation, if any."""
        if not self._steps:
            return
        steps, self._steps = self._steps, []
        labels = self._labels()
        root = self._outputs.get(steps[0][0])
        of = labels.name(root) or "L"
        seed = steps[0][1]
        start = (
            "start with gradient 1" if np.all(seed == 1) else "the gradient passed to backward()"
        )
        rows = [(f"∂{of}/∂{of} = {_format_value(seed)}", start)]
        reached: dict[int, object] = {}
        for fn, grad_output, grads in steps:
            output = self._outputs.get(fn)
            received = [(v, g) for v, g in zip(fn.inputs, grads, strict=True) if g is not None]
            for value, grad in received:
                equals = "+=" if id(value) in reached else "="
                reached[id(value)] = value
                rows.append(
                    (
                        self._step(labels, of, output, value, grad_output, grad, equals),
                        f"{type(fn).__name__}.backward",
                    )
                )
        width = max(len(text) for text, _ in rows)
        self._say(f"Backward pass ({labels.label(root)}.backward()):")
        for text, note in rows:
            self._say(f"    {text.ljust(width)}   {note}")
        for value in reached.values():
            if value.grad_fn is None and value.grad is not None:
                self._say(f"Result: {labels.label(value)}.grad = {_format_value(value.grad)}")

    @staticmethod
    def _step(labels: _Labels, of: str, output, value, grad_output, grad, equals: str) -> str:
        """`∂z/∂x = ∂z/∂y × ∂(x + 2)/∂x = 3 × 1 = 3` for scalars, `∂z/∂x = [..]` otherwise."""
        target = labels.derivative(of, value)
        scalar = output is not None and np.size(grad_output) == 1 and np.size(grad) == 1
        if not scalar or grad_output == 0:
            return f"{target} {equals} {_format_value(grad)}"
        local = np.asarray(grad).item() / np.asarray(grad_output).item()
        outer = labels.derivative(of, output)
        inner = f"∂({labels.expression(output)})/∂{labels.label(value)}"
        numbers = f"{_format_value(grad_output)} × {_format_value(local)} = {_format_value(grad)}"
        return f"{target} {equals} {outer} × {inner} = {numbers}"


def explain(code: str, **leaves) -> str:
    """Run `code` (one statement per line) under `trace()` and return each line beside what
    autograd did for it. Keyword arguments become leaf Variables with
    `requires_grad=True`; `Variable` and `np` are available to the code.

        print(explain("y = x + 2\\nz = y * 3\\nz.backward()", x=5.0))
    """
    from .autograd import Variable

    scope = {"Variable": Variable, "np": np}
    scope.update({name: Variable(value, requires_grad=True) for name, value in leaves.items()})
    tracer = trace(names=scope)
    rows = [
        (
            f"{name} = Variable({value!r}, requires_grad=True)",
            f"Creates leaf {name} (requires_grad=True)",
        )
        for name, value in leaves.items()
    ]
    for line in code.strip().splitlines():
        before = dict(scope)
        tracer.file = io.StringIO()
        with tracer:
            exec(line, scope)
        said = tracer.file.getvalue().splitlines()
        for name, value in scope.items():
            if _is_variable(value) and before.get(name) is not value and value.grad_fn is None:
                said.append(
                    f"Creates leaf {name}"
                    + (" (requires_grad=True)" if value.requires_grad else "")
                )
        rows.append((line, said[0] if said else ""))
        rows.extend(("", more) for more in said[1:])
    width = max(len("Your code:"), *(len(code_line) for code_line, _ in rows)) + 4
    lines = [
        f"{'Your code:'.ljust(width)}What autograd does:",
        "─" * 10 + " " * (width - 10) + "─" * 19,
    ]
    lines += [f"{code_line.ljust(width)}{said}".rstrip() for code_line, said in rows]
    return "\n".join(lines)


# %% [markdown]
# ## The package's front door
#
# `import tinytorch as tt` then `tt.Variable`, `tt.nn`, `tt.optim`: each name is imported
# on first use (PEP 562), so a package holding only some modules' exports still imports,
# and a part not exported yet is an error naming the module that builds it.

# %%
#| export __init__
import importlib as _importlib

# Each submodule of the package, and the course module whose notebook exports it.
_BUILT_BY = {
    "autograd": "01_autograd",
    "viz": "01_autograd",
    "nn": "02_nn",
    "optim": "03_optim",
    "data": "04_training",
    "training": "04_training",
    "memory": "05_memory",
    "conv": "06",
    "attention": "07",
}
_FROM_AUTOGRAD = ("Variable", "Function", "no_grad", "enable_grad", "set_grad_enabled")
_FROM_AUTOGRAD += ("is_grad_enabled", "gradcheck", "GradcheckError")


def _submodule(name: str):
    """`tinytorch.<name>`, imported on first use (PEP 562), or an AttributeError naming the
    course module that builds it when it has not been exported yet."""
    try:
        module = _importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(
            f"tinytorch.{name} is not in this package yet: module {_BUILT_BY[name]} builds it "
            "(finish that notebook, then run nbdev-export in your workspace)"
        ) from None
    globals()[name] = module
    return module


def __getattr__(name: str):
    if name in _BUILT_BY:
        return _submodule(name)
    if name in _FROM_AUTOGRAD:
        return getattr(_submodule("autograd"), name)
    raise AttributeError(f"module 'tinytorch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_BUILT_BY, *_FROM_AUTOGRAD})
