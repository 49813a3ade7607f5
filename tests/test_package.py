"""The package's public face: `import tinytorch as tt`, `__all__` of `tinytorch.autograd`,
names of later modules found lazily, and a clear error for a part not exported yet."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinytorch as tt
import tinytorch.autograd as autograd

PACKAGE = Path(tt.__file__).resolve().parent


def test_import_tinytorch_as_tt_gives_the_pytorch_names():
    x = tt.Variable([1.0, 2.0], requires_grad=True)
    with tt.no_grad():
        assert not (x * 2).requires_grad
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    assert tt.Function is autograd.Function and tt.gradcheck is autograd.gradcheck
    assert tt.nn.Linear and tt.optim.SGD and "nn" in dir(tt)


def test_autograd_exports_what_users_call_and_keeps_helpers_private():
    assert set(autograd.__all__) == {
        "Variable", "Function", "no_grad", "enable_grad", "set_grad_enabled",
        "is_grad_enabled", "observe_ops", "gradcheck", "GradcheckError",
        "exp", "log", "tanh", "sigmoid", "relu", "log_softmax", "matmul",
    }  # fmt: skip


def test_a_package_with_only_module_01_exported_imports_and_names_what_is_missing(tmp_path):
    partial = tmp_path / "tinytorch"
    partial.mkdir()
    for name in ("__init__.py", "autograd.py", "viz.py"):
        shutil.copy2(PACKAGE / name, partial / name)
    # -S: no site hooks, so an editable install of the course cannot supply the missing
    # submodules; numpy's folder is added by hand
    site = str(Path(np.__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path.append({site!r})\n"
        "import tinytorch as tt\n"
        "print(tt.Variable(2.0) * 3)\n"
        "try:\n    tt.nn\nexcept AttributeError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "Variable(6.)" in result.stdout
    assert "tinytorch.nn is not in this package yet: module 02_nn builds it" in result.stdout


def test_nn_looks_up_layers_of_later_modules_and_says_which_builds_them():
    with pytest.raises(AttributeError, match=r"tinytorch\.conv \(module 06\)"):
        tt.nn.Conv2d  # noqa: B018


def test_a_leaf_gradient_never_shares_memory_with_what_the_caller_or_another_leaf_holds():
    """The engine adopts the buffers it made and copies the rest (no reference counts)."""
    gradient = np.ones(3)
    x = tt.Variable(np.zeros(3), requires_grad=True)
    x.backward(gradient)  # a leaf root: the caller's array
    (x + 0).backward(gradient)  # passed through by Add
    x.reshape(3, 1).backward(gradient.reshape(3, 1))  # a view of the incoming gradient
    gradient[:] = 100
    assert x.grad.tolist() == [3.0, 3.0, 3.0]
    a, b = (tt.Variable(np.zeros(2), requires_grad=True) for _ in range(2))
    (a + b).backward(np.ones(2))
    assert not np.shares_memory(a.grad, b.grad)
    w = tt.Variable(np.ones((2, 2)), requires_grad=True)
    (tt.Variable(np.ones((3, 2))) @ w).sum().backward()
    first = w.grad
    (tt.Variable(np.ones((3, 2))) @ w).sum().backward()
    assert w.grad is first and w.grad.tolist() == [[6.0, 6.0], [6.0, 6.0]]  # adopted, then +=
