"""The checks that graded test cells run: the student's code makes values, a judge decides.

A graded test cell reads like an ordinary test:

    check = Check("test_add", points=10)
    a = check.rng.standard_normal(3)
    got = check.probe(lambda: add(a, 1.0), "add(a, 1.0)")
    check.close(got, a + 1.0, "add(a, 1.0)")
    check.done()

and runs in two places:

- **live**, in the notebook's kernel: `probe` calls the student's code and returns what it
  made, as plain data (arrays, numbers, strings, tuples...); the comparisons run at once,
  so the student sees each failure right below the part it tests. With
  `TINYTORCH_CHECK_RECORD` set, every probed value is also appended to that file.
- **replayed**, by `judge`, in a process that never runs student code: the instructor's
  copy of the cell runs again, each `probe` returns the value the kernel recorded (without
  calling anything), and the same comparisons decide the score. A kernel that rewrote how
  cells run, what numpy compares or what the helpers say changes nothing here: only the
  recorded values count, and they must be right for inputs drawn from the grader's seed.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dataclasses
import io
import json
import math
import os
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType

import numpy as np

__all__ = [
    "Check",
    "CheckFailed",
    "Raised",
    "Opaque",
    "JudgedCell",
    "Verdict",
    "judge",
    "numerical_gradients",
]

RECORD_ENV = "TINYTORCH_CHECK_RECORD"
SEED_ENV = "TINYTORCH_CHECK_SEED"
MAX_TEXT = 2000  # characters kept of a recorded string or error message
MAX_DEPTH = 16  # nesting of tuples/lists/dicts in one probed value
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class CheckFailed(AssertionError):
    """A graded check failed; the first line of the message says what and why."""


class CheckError(Exception):
    """The test itself is wrong (a name used outside a probe, a malformed cell)."""


class NotRecorded(CheckFailed):
    """Replay reached a probe the kernel never recorded: the cell stopped before it."""


class _NotAValue:
    """Using a `Raised` or `Opaque` as a value (a number, an array, a condition) fails the
    check with what the student's code did, instead of a confusing TypeError, and never
    counts as true."""

    def _not_a_value(self, *args, **kwargs):
        where = f"`{self.label}` " if self.label else "the code under test "
        raise CheckFailed(where + self.describe())


for _dunder in (
    "__bool__ __float__ __int__ __index__ __array__ __iter__ __len__ __getitem__ __add__ "
    "__radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __neg__ __abs__ "
    "__lt__ __le__ __gt__ __ge__ __matmul__ __rmatmul__ __pow__ __rpow__"
).split():
    setattr(_NotAValue, _dunder, _NotAValue._not_a_value)


@dataclass(frozen=True, eq=True)
class Raised(_NotAValue):
    """What a probe's code raised instead of returning a value."""

    type: str
    types: tuple[str, ...]
    message: str
    label: str = field(default="", compare=False)

    @classmethod
    def from_exception(cls, error: BaseException) -> Raised:
        try:
            message = str(error)
        except Exception:  # an exception whose __str__ fails
            message = "<the message could not be printed>"
        names = tuple(c.__name__ for c in type(error).__mro__)
        return cls(type(error).__name__, names, message[:MAX_TEXT])

    def first_line(self) -> str:
        line = next((s.strip() for s in self.message.splitlines() if s.strip()), "")
        return f"{self.type}: {line}" if line else self.type

    def describe(self) -> str:
        return f"raised {self.first_line()}"


@dataclass(frozen=True, eq=True)
class Opaque(_NotAValue):
    """A probed value that is not plain data (an object of the student's, say)."""

    type: str
    text: str
    label: str = field(default="", compare=False)

    def describe(self) -> str:
        return f"gave a {self.type} ({self.text}), not plain values"


# ----------------------------------------------------------------------------------------
# Plain data <-> JSON. Nothing recorded is ever unpickled or executed.


def encode(value, depth: int = 0):
    """`value` as JSON-ready data; anything that is not plain data becomes an Opaque."""
    if depth > MAX_DEPTH:
        return _opaque(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value[:MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in _ARRAY_KINDS:
            return _opaque(value)
        return {
            "t": "nd",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "scalar": isinstance(value, np.generic),
            "b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
        }
    if isinstance(value, Raised):
        return {"t": "raised", "type": value.type, "types": list(value.types), "msg": value.message}
    if isinstance(value, (tuple, list)):
        items = [encode(item, depth + 1) for item in value]
        return {"t": "tuple" if isinstance(value, tuple) else "list", "v": items}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"t": "dict", "v": [[k, encode(v, depth + 1)] for k, v in value.items()]}
    return _opaque(value)


def _opaque(value) -> dict:
    try:
        text = repr(value)
    except Exception:
        text = "<no repr>"
    return {"t": "opaque", "type": type(value).__name__, "text": text[:200]}


def decode(data, depth: int = 0):
    """The value `encode` made; raises ValueError on anything malformed."""
    if depth > MAX_DEPTH + 1:
        raise ValueError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, str):
        return data[:MAX_TEXT]
    if not isinstance(data, dict):
        raise ValueError(f"unexpected {type(data).__name__}")
    kind = data.get("t")
    if kind == "nd":
        return _decode_array(data)
    if kind == "float":
        return float(data["v"])
    if kind in ("tuple", "list"):
        items = [decode(item, depth + 1) for item in data["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {str(k): decode(v, depth + 1) for k, v in data["v"]}
    if kind == "raised":
        types = tuple(str(t) for t in data["types"])
        return Raised(str(data["type"]), types, str(data["msg"])[:MAX_TEXT])
    if kind == "opaque":
        return Opaque(str(data["type"]), str(data["text"])[:200])
    raise ValueError(f"unknown kind {kind!r}")


def _decode_array(data: dict):
    dtype = np.dtype(str(data["dtype"]))
    if dtype.kind not in _ARRAY_KINDS:
        raise ValueError(f"dtype {dtype} is not plain numbers")
    shape = tuple(int(n) for n in data["shape"])
    if any(n < 0 for n in shape):
        raise ValueError("negative shape")
    raw = base64.b64decode(data["b64"], validate=True)
    if len(raw) != dtype.itemsize * math.prod(shape):
        raise ValueError("array bytes do not match its shape")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return array[()] if data.get("scalar") else array


# ----------------------------------------------------------------------------------------
# Where probed values go (live) and come from (replay).


class _Recorder:
    """Appends one JSON line per probed value to the file named by TINYTORCH_CHECK_RECORD."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.handle = None

    def write(self, record: dict) -> None:
        path = os.environ.get(RECORD_ENV)
        if not path:
            return
        if path != self.path:
            self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            self.path = path
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()


_recorder = _Recorder()


@dataclass
class _Replay:
    grade_id: str
    records: list[dict]
    seed: int
    done: bool = False


_replay: _Replay | None = None
_JUDGE_LOCK = threading.Lock()


def _labelled(value, label: str):
    """A `Raised`/`Opaque` that knows which probe made it (for its failure message)."""
    if isinstance(value, (Raised, Opaque)):
        return dataclasses.replace(value, label=label)
    return value


def _live_seed() -> int:
    try:
        return int(os.environ.get(SEED_ENV, "0"))
    except ValueError:
        return 0


def _first_line(text: str) -> str:
    return next((s.strip() for s in str(text).splitlines() if s.strip()), "")


def _show(value, width: int = 160) -> str:
    """A one-line, bounded rendering of a value for a failure message."""
    if isinstance(value, Raised):
        return f"an error ({value.first_line()})"
    if isinstance(value, Opaque):
        return f"a {value.type} ({value.text})"
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        text = np.array2string(
            array, precision=8, separator=", ", threshold=12, edgeitems=3, max_line_width=10**6
        )
        text = " ".join(text.split())
    else:
        text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(x) -> str:
    return f"{x:.10g}" if isinstance(x, (float, np.floating)) else str(x)


# ----------------------------------------------------------------------------------------
# The API a graded cell uses.


class Check:
    """One graded test cell: its inputs (`rng`), its probes and its comparisons."""

    def __init__(self, grade_id: str, points: float) -> None:
        self.grade_id = grade_id
        self.points = points
        self._count = 0
        if _replay is not None:
            if grade_id != _replay.grade_id:
                raise CheckError(
                    f"the cell graded as {_replay.grade_id!r} declares Check({grade_id!r})"
                )
            seed = _replay.seed
        else:
            seed = _live_seed()
            _recorder.write({"cell": grade_id, "begin": True})
        self.rng = np.random.default_rng([seed, zlib.crc32(grade_id.encode("utf-8"))])

    # --- values from the student's code ---------------------------------------------------

    def probe(self, fn: Callable[[], object], label: str = ""):
        """Run `fn` (the only place a test touches the notebook's objects) and return what
        it made as plain data; a `Raised` if it raised an Exception."""
        index, self._count = self._count, self._count + 1
        label = label or f"probe {index + 1}"
        if _replay is not None:
            return self._replayed(index, label)
        try:
            value = fn()
        except Exception as error:
            value = Raised.from_exception(error)
        data = encode(value)
        _recorder.write({"cell": self.grade_id, "n": index, "label": label, "value": data})
        return _labelled(decode(data), label)

    def _replayed(self, index: int, label: str):
        records = _replay.records
        if index >= len(records):
            raise NotRecorded(
                f"stopped before `{label}`: the notebook recorded no value for it (the cell was "
                "interrupted by an error outside the tests, a time limit, or a crash)"
            )
        record = records[index]
        if record.get("n") != index or record.get("label") != label:
            raise NotRecorded(
                f"the recorded values do not match this test at `{label}`: the notebook changed "
                "how its test cells run"
            )
        try:
            return _labelled(decode(record.get("value")), label)
        except (ValueError, KeyError, TypeError) as error:
            raise NotRecorded(f"the value recorded for `{label}` is malformed ({error})") from None

    # --- comparisons ------------------------------------------------------------------------

    def fail(self, message: str, hint: str = "") -> None:
        raise CheckFailed(f"{message}; hint: {hint}" if hint else message)

    def expect(self, condition, message: str, hint: str = "") -> None:
        """Fail with `message` unless `condition` (computed outside probes) holds."""
        if not condition:
            self.fail(message, hint)

    def no_raise(self, got, what: str, hint: str = ""):
        """`got` itself, unless the code that made it raised or returned no plain data."""
        if isinstance(got, (Raised, Opaque)):
            self.fail(f"`{what}` {got.describe()}", hint)
        return got

    def close(
        self, got, expected, what: str, rtol: float = 1e-5, atol: float = 1e-8, hint: str = ""
    ) -> None:
        """`got` has `expected`'s shape and its values within rtol/atol (numpy.allclose)."""
        got = self.no_raise(got, what, hint)
        want = np.asarray(expected, dtype=np.float64)
        try:
            array = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(f"`{what}` is {_show(got)}, expected numbers like {_show(want)}", hint)
        if array.shape != want.shape:
            self.fail(f"`{what}` has shape {array.shape}, expected {want.shape}", hint)
        ok = np.isclose(array, want, rtol=rtol, atol=atol, equal_nan=True)
        if ok.all():
            return
        excess = np.where(ok, -np.inf, np.abs(array - want) - (atol + rtol * np.abs(want)))
        excess = np.nan_to_num(excess, nan=np.inf)
        at = np.unravel_index(int(np.argmax(excess)), array.shape) if array.ndim else ()
        g, w = array[at], want[at]
        where = f" at index {tuple(int(i) for i in at)}" if array.ndim else ""
        wrong = int(ok.size - ok.sum())
        relative = abs(g - w) / abs(w) if w != 0 else math.inf
        self.fail(
            f"`{what}`{where} is {_number(g)}, expected {_number(w)} (error {abs(g - w):.3g}, "
            f"relative {relative:.3g}; {wrong} of {ok.size} values differ beyond rtol={rtol:g})",
            hint,
        )

    def equal(self, got, expected, what: str, hint: str = "") -> None:
        """`got` equals `expected` exactly (arrays: same shape and values)."""
        got = self.no_raise(got, what, hint)
        if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
            same = np.shape(got) == np.shape(expected) and np.array_equal(got, expected)
        else:
            same = type(got) is type(expected) and got == expected
            if isinstance(expected, (int, float)) and not isinstance(expected, bool):
                same = isinstance(got, (int, float, np.number)) and got == expected
        if not same:
            self.fail(f"`{what}` is {_show(got)}, expected {_show(expected)}", hint)

    def raises(self, got, error: type | str, what: str, hint: str = "") -> None:
        """`got` is a `Raised` of type `error` (or of a subclass of it)."""
        name = error if isinstance(error, str) else error.__name__
        if not isinstance(got, Raised):
            self.fail(f"`{what}` gave {_show(got)} without raising; expected {name}", hint)
        if name not in got.types:
            self.fail(f"`{what}` raised {got.first_line()}; expected {name}", hint)

    def mentions(self, got, fragments: Iterable[str], what: str, hint: str = "") -> None:
        """The message of `got` (a `Raised`, or a string) contains each fragment."""
        if isinstance(got, Raised) and "NotImplementedError" in got.types:
            self.fail(f"`{what}` {got.describe()}", hint)  # the part is not written yet
        text = got.message if isinstance(got, Raised) else got
        if not isinstance(text, str):
            self.fail(f"`{what}` gave {_show(got)}, expected a message", hint)
        missing = [f for f in fragments if f.lower() not in text.lower()]
        if missing:
            self.fail(
                f"the message of `{what}` should mention {', '.join(map(repr, missing))}; it "
                f"was: {_first_line(text) or '(empty)'}",
                hint,
            )

    def done(self) -> None:
        """Every check above passed: say so (live) or record the pass (replay)."""
        if _replay is not None:
            _replay.done = True
        else:
            print(f"✓ {self.grade_id} passed ({self.points:g} points)")


def numerical_gradients(numpy_fn, arrays, grad_output, eps: float = 1e-6) -> list[np.ndarray]:
    """Each input's gradient of sum(grad_output * numpy_fn(*arrays)) by central
    differences in float64, with numpy alone (so no student code can fool it)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            up = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original - eps
            down = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original
            gradient[index] = (up - down) / (2 * eps)
        gradients.append(gradient)
    return gradients


# ----------------------------------------------------------------------------------------
# The judge: replays the instructor's cells against recorded values.


@dataclass(frozen=True)
class JudgedCell:
    """A graded cell as the instructor wrote it (hidden tests included)."""

    grade_id: str
    points: float
    source: str


@dataclass
class Verdict:
    grade_id: str
    points: float
    passed: bool
    message: str = ""

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class _Runs:
    """The records of each cell's last run in a recording."""

    by_cell: dict[str, list[dict]] = field(default_factory=dict)
    malformed: int = 0


def read_records(data: bytes) -> _Runs:
    """Parse a recording: one JSON object per line; a `begin` starts a cell's run afresh.
    Lines that are not well-formed are counted and skipped."""
    runs = _Runs()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            cell = record["cell"]
            if not isinstance(cell, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            runs.malformed += 1
            continue
        if record.get("begin"):
            runs.by_cell[cell] = []
        elif cell in runs.by_cell:
            runs.by_cell[cell].append(record)
    return runs


class _Placeholder:
    """Stands for a name the notebook defines; any use of it outside a probe is a test bug."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _misuse(self, *args, **kwargs):
        name = object.__getattribute__(self, "_name")
        raise CheckError(f"the test uses `{name}` outside check.probe")

    def __getattr__(self, attribute):
        self._misuse()

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_name')} (not available to the judge)>"


for _dunder in (
    "__call__ __getitem__ __setitem__ __iter__ __len__ __bool__ __contains__ __setattr__ "
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __pow__ "
    "__rpow__ __matmul__ __rmatmul__ __neg__ __lt__ __le__ __gt__ __ge__ __float__ __int__ "
    "__index__ __array__ __mro_entries__ __instancecheck__ __subclasscheck__ __enter__"
).split():
    setattr(_Placeholder, _dunder, _Placeholder._misuse)


def _global_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _global_names(const)
    return names


def _run_cell(cell: JudgedCell, records: list[dict], seed: int) -> Verdict:
    global _replay
    verdict = Verdict(cell.grade_id, cell.points, passed=False)
    try:
        code = compile(cell.source, f"<{cell.grade_id}>", "exec")
    except SyntaxError as error:
        verdict.message = f"the test cell does not compile: {error}"
        return verdict
    namespace: dict = {"__name__": "__judge__", "__builtins__": builtins, "np": np, "math": math}
    for name in _global_names(code) - set(dir(builtins)) - set(namespace):
        namespace[name] = _Placeholder(name)
    _replay = _Replay(cell.grade_id, records, seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            exec(code, namespace)
        if _replay.done:
            verdict.passed = True
        else:
            verdict.message = "the test cell never called check.done()"
    except CheckFailed as error:
        verdict.message = _first_line(error) or type(error).__name__
    except CheckError as error:
        verdict.message = f"error in the test itself: {_first_line(error)}"
    except Exception as error:  # the values recorded broke the test's own code
        verdict.message = f"{type(error).__name__}: {_first_line(error)}"
    finally:
        _replay = None
    return verdict


def judge(cells: list[JudgedCell], recording: bytes, seed: int) -> list[Verdict]:
    """Each graded cell's verdict: the instructor's `source` replayed against the values
    that the student's kernel recorded (`recording`, untrusted), with inputs drawn from
    `seed`. Never runs student code. One judgement at a time: the replay state and the
    silenced stdout are process-wide, and `grade` judges from several threads."""
    runs = read_records(recording)
    with _JUDGE_LOCK:
        return [_verdict(cell, runs, seed) for cell in cells]


def _verdict(cell: JudgedCell, runs: _Runs, seed: int) -> Verdict:
    records = runs.by_cell.get(cell.grade_id)
    if records is None:
        message = "did not run: the notebook stopped before this test cell"
        return Verdict(cell.grade_id, cell.points, False, message)
    return _run_cell(cell, records, seed)
