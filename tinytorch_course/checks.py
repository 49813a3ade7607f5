"""Record/replay checks for graded cells (a minimal STAND-IN for the lead's checks.py).

This file exists so that the grading pipeline (issue 10) can be built and tested before
the real check framework lands on `main`; it implements the same API and is replaced by
it on merge. A graded cell:

    check = Check("test_add", points=10)
    a = check.rng.standard_normal(3)
    got = check.probe(lambda: add(a, a), "add(a, a)")
    check.close(got, 2 * a, "add(a, a)")
    check.done()

Live (in the student's kernel) each probe calls its function and, when
`TINYTORCH_CHECK_RECORD` names a file, appends the plain-data value there. `judge`
re-runs the instructor's cell source in this (trusted) process where each probe returns
the recorded value instead of calling anything.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import zlib
from dataclasses import dataclass

import numpy as np

RECORD_ENV = "TINYTORCH_CHECK_RECORD"
SEED_ENV = "TINYTORCH_CHECK_SEED"
_ALLOWED_KINDS = "biuf"


class CheckFailed(AssertionError):
    """A comparison failed; the first line of the message is the whole hint."""


@dataclass
class Raised:
    """What a probe's function raised instead of returning a value."""

    type: str
    types: list
    message: str


@dataclass
class JudgedCell:
    grade_id: str
    points: float
    source: str


@dataclass
class Verdict:
    grade_id: str
    points: float
    passed: bool
    message: str


class _Replay:
    """The values recorded for each grade_id, handed out in order."""

    def __init__(self, values: dict[str, list]):
        self.values = values


_REPLAY: _Replay | None = None


def _encode(value, depth: int = 0):
    if depth > 20:
        raise TypeError("nested too deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"num": repr(value), "int": isinstance(value, int)}
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array of dtype {value.dtype}")
        data = np.ascontiguousarray(value)
        return {
            "array": base64.b64encode(data.tobytes()).decode("ascii"),
            "dtype": data.dtype.str,
            "shape": list(data.shape),
        }
    if isinstance(value, (list, tuple)):
        return {"seq": [_encode(v, depth + 1) for v in value], "tuple": isinstance(value, tuple)}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, Raised):
        return {"raised": [value.type, list(value.types), value.message]}
    raise TypeError(f"a probe returned {type(value).__name__}, not plain data")


def _decode(data, depth: int = 0):
    if depth > 20:
        raise ValueError("nested too deep")
    if data is None or isinstance(data, (bool, str)):
        return data
    if not isinstance(data, dict):
        raise ValueError("malformed observation")
    if "num" in data:
        return int(data["num"]) if data.get("int") else float(data["num"])
    if "array" in data:
        dtype = np.dtype(str(data["dtype"]))
        if dtype.kind not in _ALLOWED_KINDS:
            raise ValueError(f"dtype {dtype}")
        shape = tuple(int(n) for n in data["shape"])
        raw = base64.b64decode(data["array"])
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if "seq" in data:
        items = [_decode(v, depth + 1) for v in data["seq"]]
        return tuple(items) if data.get("tuple") else items
    if "dict" in data:
        return {str(k): _decode(v, depth + 1) for k, v in data["dict"].items()}
    if "raised" in data:
        kind, kinds, message = data["raised"]
        return Raised(str(kind), [str(k) for k in kinds], str(message))
    raise ValueError("malformed observation")


def cell_seed(seed: int, grade_id: str) -> list[int]:
    return [int(seed) % 2**63, zlib.crc32(grade_id.encode("utf-8"))]


class Check:
    """The probes and comparisons of one graded cell."""

    def __init__(self, grade_id: str, points: float = 0):
        self.grade_id = grade_id
        self.points = points
        seed = int(os.environ.get(SEED_ENV, "0") or 0) if _REPLAY is None else _JUDGE_SEED
        self.rng = np.random.default_rng(cell_seed(seed, grade_id))
        self._index = 0
        self.finished = False

    def probe(self, fn, label: str = ""):
        if _REPLAY is not None:
            values = _REPLAY.values.get(self.grade_id, [])
            if self._index >= len(values):
                raise CheckFailed(f"{label}: no value was recorded (the cell did not finish)")
            value = values[self._index]
            self._index += 1
            return value
        try:
            value = fn()
        except Exception as error:  # what raised is an observation too
            kinds = [k.__name__ for k in type(error).__mro__]
            value = Raised(type(error).__name__, kinds, str(error))
        encoded = _encode(value)
        path = os.environ.get(RECORD_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"cell": self.grade_id, "value": encoded}) + "\n")
        return _decode(encoded)

    def _fail_if_raised(self, got, what: str, hint: str) -> None:
        if isinstance(got, Raised):
            message = (
                f"{what} raised {got.type}: {got.message.splitlines()[0] if got.message else ''}"
            )
            raise CheckFailed(message + (f"; hint: {hint}" if hint else ""))

    def close(self, got, expected, what: str, rtol=1e-5, atol=1e-8, hint: str = "") -> None:
        self._fail_if_raised(got, what, hint)
        got_a, want = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
        if got_a.shape != want.shape:
            raise CheckFailed(f"{what}: shape {got_a.shape}, expected {want.shape}")
        if not np.allclose(got_a, want, rtol=rtol, atol=atol):
            error = np.abs(got_a - want)
            index = np.unravel_index(int(np.argmax(error)), error.shape) if error.size else ()
            raise CheckFailed(
                f"{what}: got {got_a[index]!r} at {index}, expected {want[index]!r}"
                + (f"; hint: {hint}" if hint else "")
            )

    def equal(self, got, expected, what: str, hint: str = "") -> None:
        self._fail_if_raised(got, what, hint)
        same = (
            np.array_equal(got, expected)
            if isinstance(got, np.ndarray) or isinstance(expected, np.ndarray)
            else got == expected
        )
        if not same:
            raise CheckFailed(
                f"{what}: got {got!r}, expected {expected!r}" + (f"; hint: {hint}" if hint else "")
            )

    def expect(self, condition, message: str) -> None:
        if not condition:
            raise CheckFailed(message)

    def raises(self, got, error_type, what: str, hint: str = "") -> None:
        name = error_type if isinstance(error_type, str) else error_type.__name__
        if not isinstance(got, Raised) or name not in got.types:
            raise CheckFailed(
                f"{what}: expected {name} to be raised, got {got!r}"
                + (f"; hint: {hint}" if hint else "")
            )

    def no_raise(self, got, what: str):
        self._fail_if_raised(got, what, "")
        return got

    def done(self) -> None:
        self.finished = True
        if _REPLAY is None:
            print(f"✓ {self.grade_id} passed ({self.points:g} points)")


class _Placeholder:
    """What every notebook-defined name is during replay: inert."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


class _Names(dict):
    def __missing__(self, key):
        if hasattr(builtins, key):
            raise KeyError(key)
        return _Placeholder()


_JUDGE_SEED = 0


def parse_observations(observations: bytes) -> dict[str, list]:
    values: dict[str, list] = {}
    for line in observations.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            values.setdefault(str(record["cell"]), []).append(_decode(record["value"]))
        except (ValueError, KeyError, TypeError):
            continue
    return values


def judge(cells: list[JudgedCell], observations: bytes, seed: int) -> list[Verdict]:
    """Replay each cell's (instructor) source against the recorded values."""
    global _REPLAY, _JUDGE_SEED
    values = parse_observations(observations)
    verdicts = []
    for cell in cells:
        if cell.grade_id not in values:
            verdicts.append(Verdict(cell.grade_id, cell.points, False, "no values were recorded"))
            continue
        _REPLAY, _JUDGE_SEED = _Replay(values), seed
        names = _Names(__name__="__judge__")
        try:
            exec(compile(cell.source, f"<{cell.grade_id}>", "exec"), names)  # noqa: S102
            verdicts.append(Verdict(cell.grade_id, cell.points, True, ""))
        except Exception as error:
            first = str(error).splitlines()[0] if str(error) else ""
            message = (
                first if isinstance(error, CheckFailed) else f"{type(error).__name__}: {first}"
            )
            verdicts.append(Verdict(cell.grade_id, cell.points, False, message))
        finally:
            _REPLAY = None
    return verdicts
