"""The check framework: a graded cell runs live in a kernel, then is replayed by the judge
against what the kernel recorded. The student's side runs in a subprocess here, as it runs
in its own kernel when graded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tinytorch_course.checks import (
    Check,
    CheckFailed,
    JudgedCell,
    Raised,
    decode,
    encode,
    judge,
    numerical_gradients,
)

CELL = textwrap.dedent(
    """
    from tinytorch_course.checks import Check

    check = Check("test_scale", points=10)
    a = check.rng.standard_normal((2, 3))
    got = check.probe(lambda: scale(a, 3.0), "scale(a, 3.0)")
    hint = "multiply every element by the factor"
    check.close(got, np.multiply(a, 3.0), "scale(a, 3.0)", hint=hint)
    err = check.probe(lambda: scale("text", 3.0), "scale('text', 3.0)")
    check.raises(err, TypeError, "scale('text', 3.0)")
    check.done()
    """
)
CELLS = [JudgedCell("test_scale", 10, CELL)]

CORRECT = """
import numpy as np
def scale(a, factor):
    if isinstance(a, str):
        raise TypeError("scale needs numbers, got str")
    return np.asarray(a) * factor
"""


def run_student(tmp_path: Path, solution: str, seed: int = 0, cell: str = CELL):
    """Run the student's code, then the graded cell, in a fresh Python process with
    recording on; returns (process result, recording bytes)."""
    record = tmp_path / f"record-{seed}.jsonl"
    record.unlink(missing_ok=True)
    script = tmp_path / "student.py"
    script.write_text(solution + "\n" + cell, encoding="utf-8")
    env = {"TINYTORCH_CHECK_RECORD": str(record), "TINYTORCH_CHECK_SEED": str(seed)}
    env["PYTHONIOENCODING"] = "utf-8"  # as in a kernel (the pass line has a ✓)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**_base_env(), **env},
        timeout=60,
    )
    return result, record.read_bytes() if record.exists() else b""


def _base_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TINYTORCH_CHECK")}


def test_a_correct_solution_passes_live_and_in_the_judge(tmp_path):
    result, recording = run_student(tmp_path, CORRECT, seed=5)
    assert "✓ test_scale passed (10 points)" in result.stdout, result.stderr
    [verdict] = judge(CELLS, recording, seed=5)
    assert verdict.passed and verdict.score == 10, verdict.message


def test_a_wrong_value_fails_on_the_first_line_with_the_index_and_the_hint(tmp_path):
    wrong = CORRECT.replace(
        "return np.asarray(a) * factor",
        "a = np.array(a)\n    a[1, 2] *= 2\n    return a * factor",
    )
    result, recording = run_student(tmp_path, wrong, seed=1)
    assert result.returncode != 0
    live = result.stderr.splitlines()[-1]  # the traceback's last line
    [verdict] = judge(CELLS, recording, seed=1)
    assert not verdict.passed
    assert "at index (1, 2)" in verdict.message and "hint: multiply" in verdict.message
    assert verdict.message in live  # the student saw the same first line


def test_an_unfinished_part_fails_with_what_it_raised(tmp_path):
    stub = "def scale(a, factor):\n    raise NotImplementedError('write this part')\n"
    result, recording = run_student(tmp_path, stub)
    [verdict] = judge(CELLS, recording, seed=0)
    assert not verdict.passed
    assert "raised NotImplementedError: write this part" in verdict.message


def test_tampering_with_the_comparisons_in_the_kernel_earns_nothing(tmp_path):
    tamper = textwrap.dedent(
        """
        import builtins
        from tinytorch_course import checks
        checks.Check.close = lambda *a, **k: None
        checks.Check.raises = lambda *a, **k: None
        np.allclose = lambda *a, **k: True
        def scale(a, factor):
            return np.zeros((2, 3))
        """
    )
    result, recording = run_student(tmp_path, "import numpy as np\n" + tamper, seed=3)
    assert "✓ test_scale passed" in result.stdout  # the kernel was fooled...
    [verdict] = judge(CELLS, recording, seed=3)
    assert not verdict.passed  # ...the judge was not
    assert "scale(a, 3.0)" in verdict.message


def test_answers_hard_coded_for_the_local_inputs_fail_under_the_graders_seed(tmp_path):
    result, recording = run_student(tmp_path, CORRECT, seed=0)
    values = [json.loads(line) for line in recording.decode().splitlines()]
    first = decode(values[1]["value"])  # what seed 0 asks for, hard-coded below
    cheat = CORRECT.replace("return np.asarray(a) * factor", f"return np.array({first.tolist()!r})")
    _, local = run_student(tmp_path, cheat, seed=0)
    _, graded = run_student(tmp_path, cheat, seed=987654321)
    assert judge(CELLS, local, seed=0)[0].passed
    assert not judge(CELLS, graded, seed=987654321)[0].passed


def test_a_forged_recording_must_still_hold_the_right_values(tmp_path):
    _, recording = run_student(tmp_path, CORRECT, seed=2)
    lines = recording.decode().splitlines()
    forged = [json.loads(line) for line in lines]
    forged[1]["value"] = encode(np.zeros((2, 3)))
    data = "\n".join(json.dumps(r) for r in forged).encode()
    assert not judge(CELLS, data, seed=2)[0].passed
    assert judge(CELLS, recording + b"garbage\n{not json\n", seed=2)[0].passed


def test_a_cell_that_never_ran_or_stopped_midway_scores_zero_with_the_reason(tmp_path):
    [verdict] = judge(CELLS, b"", seed=0)
    assert not verdict.passed and verdict.message.startswith("did not run")
    _, recording = run_student(tmp_path, CORRECT, seed=0)
    first_two = b"\n".join(recording.splitlines()[:2])  # begin + first probe only
    [verdict] = judge(CELLS, first_two, seed=0)
    assert not verdict.passed and "stopped before `scale('text', 3.0)`" in verdict.message


def test_a_test_that_uses_the_notebook_outside_a_probe_is_reported_as_a_test_bug(tmp_path):
    cell = CELL.replace("a = check.rng.standard_normal((2, 3))", "a = scale([1.0], 2.0)")
    result, recording = run_student(tmp_path, CORRECT, cell=cell)
    assert result.returncode == 0  # live it works: the bug only shows when judged
    [verdict] = judge([JudgedCell("test_scale", 10, cell)], recording, seed=0)
    assert not verdict.passed
    assert "error in the test itself: the test uses `scale` outside check.probe" in (
        verdict.message
    )


def test_recorded_data_never_carries_objects():
    class Secret:
        pass

    assert decode(encode(Secret())).type == "Secret"
    assert decode(encode(np.array(["a"], dtype=object))).type == "ndarray"
    for value in [(1, 2.5, "x"), [None, True], {"k": np.arange(3)}, np.float32(2.5)]:
        back = decode(encode(value))
        assert type(back) is type(value)
    with pytest.raises(ValueError):
        decode({"t": "nd", "dtype": "|O", "shape": [1], "b64": ""})
    with pytest.raises(ValueError):
        decode({"t": "nd", "dtype": "<f8", "shape": [4], "b64": "AAAA"})


def test_probe_returns_raised_and_comparisons_name_it():
    check = Check("test_local", points=1)
    got = check.probe(lambda: 1 / 0, "1 / 0")
    assert isinstance(got, Raised) and "ArithmeticError" in got.types
    check.raises(got, ArithmeticError, "1 / 0")
    with pytest.raises(CheckFailed, match=r"^`1 / 0` raised ZeroDivisionError: division by zero"):
        check.close(got, 1.0, "1 / 0")
    with pytest.raises(CheckFailed, match=r"should mention 'by one'"):
        check.mentions(got, ["division", "by one"], "1 / 0")


def test_close_reports_shape_before_values():
    check = Check("test_local", points=1)
    with pytest.raises(CheckFailed, match=r"has shape \(3,\), expected \(2, 3\)"):
        check.close(np.zeros(3), np.zeros((2, 3)), "x")


def test_numerical_gradients_match_the_derivative():
    a = np.array([0.5, -1.0, 2.0])
    [grad] = numerical_gradients(np.tanh, [a], np.ones(3))
    np.testing.assert_allclose(grad, 1 - np.tanh(a) ** 2, rtol=1e-6)


def test_an_error_used_as_a_value_fails_with_what_raised_and_is_never_true():
    check = Check("test_local", points=1)
    got = check.probe(lambda: 1 / 0, "ratio()")
    for use in (bool, float, np.asarray, lambda g: g + 1, lambda g: g[0]):
        with pytest.raises(CheckFailed, match=r"^`ratio\(\)` raised ZeroDivisionError"):
            use(got)
    with pytest.raises(CheckFailed, match=r"^`ratio\(\)` raised ZeroDivisionError"):
        check.expect(got, "ratio() should be true")


def test_a_message_check_on_an_unwritten_part_says_the_part_is_not_written():
    check = Check("test_local", points=1)

    def stub():
        raise NotImplementedError("write this part")

    got = check.probe(stub, "DataLoader(ds, batch_size=0)")
    with pytest.raises(CheckFailed, match=r"^`loader` raised NotImplementedError: write this"):
        check.mentions(got, ["batch_size"], "loader")


def test_the_judge_gives_every_thread_its_own_verdicts(tmp_path):
    """`grade` judges two submissions at once, in threads: one thread's replay must never
    see another's (a class was once scored 88 for a student who earned 100)."""
    slow = CELL.replace("check.done()", "sum(range(300_000))\ncheck.done()")
    cells = [JudgedCell("test_scale", 10, slow)]
    _, right = run_student(tmp_path, CORRECT, seed=2, cell=slow)
    wrong = CORRECT.replace("* factor", "* factor + 1")
    _, wrong_recording = run_student(tmp_path, wrong, seed=3, cell=slow)
    jobs = [(right, 2, True), (wrong_recording, 3, False)] * 12

    def verdict(job):
        recording, seed, _ = job
        [result] = judge(cells, recording, seed=seed)
        return result.passed, result.message

    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(verdict, jobs))
    assert [passed for passed, _ in verdicts] == [expected for *_, expected in jobs], verdicts
    assert all("hint: multiply" in message for passed, message in verdicts if not passed)
