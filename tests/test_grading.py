"""`grade`: one hostile class of module 01, graded in one run in the real sandbox.

A private copy of the course the session released once (real nbgrader) gets a class of
module 01: a reference student, an untouched release, broken notebooks, and students who
attack the grader (read the reference, rewrite how cells run, patch the checks, tamper
with the gradebook, classmates and the table, leave processes behind, exhaust memory,
processes and disk, use the network, hard-code answers, detect the grader). Each student's fair
score is computed here from the module (which graded cells come before the cell a
submission breaks; which checks a hard-coded answer would pass), never typed in.
Everything outside the run's own outputs is checksummed before and after, and no process
of the class may be alive when `grade` returns.

Every test runs on two classes: the whole hostile class and `SMALL_CLASS`, the students
whose grading goes through the Python and the locale it runs on. CI grades the whole class
on its Python 3.10 leg, in the C locale (marker `py310_leg`), and the small one on 3.11
(`py311_leg`).
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import json
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest
from conftest import copy_course
from fixtures.grading.released import cli, private_released_copy

from tinytorch_course.grade import read_table
from tinytorch_course.project import Project
from tinytorch_course.release import released_notebook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get)"),
]

NOTEBOOK_TIMEOUT = 45  # seconds: well above a reference run; the infinite loop costs this
MEMORY_MB = 768
WORKERS = 2
ESCAPE = "\x1b[2J\x1b[31m"
OWN_OUTPUTS = ("grades", "feedback", ".tinytorch", "tinytorch.db")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return text if isinstance(text, str) else "".join(text)


def solved(project: Project, module) -> dict:
    """The released notebook with every solution cell filled in from the module source."""
    from tinytorch_course.build import module_notebook

    reference = {meta(c).get("grade_id"): c.source for c in module_notebook(module).cells}
    notebook = load(released_notebook(project, module))
    for cell in notebook["cells"]:
        if meta(cell).get("solution"):
            cell["source"] = reference[meta(cell)["grade_id"]]
    return notebook


def solution_cells(notebook: dict) -> list[int]:
    return [
        i
        for i, c in enumerate(notebook["cells"])
        if c["cell_type"] == "code" and meta(c).get("solution")
    ]


def graded_cell_indices(notebook: dict) -> list[int]:
    return [i for i, c in enumerate(notebook["cells"]) if meta(c).get("grade")]


def points_before(notebook: dict, index: int) -> float:
    return sum(float(meta(c)["points"]) for c in notebook["cells"][:index] if meta(c).get("grade"))


def with_cell(notebook: dict, index: int, code: str) -> dict:
    """`notebook` with a new plain code cell holding `code` inserted at `index`."""
    changed = copy.deepcopy(notebook)
    cell = {"cell_type": "code", "metadata": {}, "source": code, "outputs": []}
    changed["cells"].insert(index, cell | {"execution_count": None})
    return changed


def with_source(notebook: dict, index: int, code: str) -> dict:
    changed = copy.deepcopy(notebook)
    changed["cells"][index]["source"] = code
    return changed


# Attacks, each a cell a student can add. They run as the student's code, in the sandbox.
# FILES lists the files a submission can find (walking the usual places, not /proc).
FILES = """
import os
def files(suffix):
    for base in ('/box', '/opt', '/tmp', '/work', '/home', '/root', '/srv', '/var'):
        for folder, subfolders, names in os.walk(base):
            subfolders[:] = [d for d in subfolders if d not in ('site-packages', '.pyenv')]
            yield from (os.path.join(folder, n) for n in names if n.endswith(suffix))
"""
WALK_UP = """
import os, pathlib
here = pathlib.Path.cwd()
for folder in [here, *here.parents]:
    for found in [*folder.glob('modules/*/*.py'), *folder.glob('tinytorch/*.py')]:
        try:
            exec(found.read_text(), globals())
        except Exception:
            pass
"""
LOOK = """
import os
print('course root visible:', os.path.exists({root!r}))
try:
    import tinytorch.{target}
    print('reference importable: True')
except ImportError:
    print('reference importable: False')
"""
TRANSFORMER = """
def _wrap(lines):
    body = ''.join('    ' + line for line in lines) or '    pass\\n'
    return ['try:\\n', body + '\\n', 'except BaseException:\\n', '    pass\\n']
get_ipython().input_transformers_post.append(_wrap)
"""
PATCHER = """
import builtins, numpy, numpy.testing
import tinytorch_course.checks as checks
for name in ('close', 'equal', 'expect', 'raises', 'mentions', 'no_raise'):
    setattr(checks.Check, name, lambda self, *a, **k: None)
checks.Check.probe = lambda self, fn, label='': 0.0
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
builtins.all = lambda *a: True\nbuiltins.abs = lambda x: 0
"""
GRADEBOOK = (
    FILES
    + """
import sqlite3
for path in files('.db'):
    try:
        db = sqlite3.connect(path)
        db.execute('update grade set manual_score = 1000')
        db.commit()
    except Exception:
        pass
"""
)
CLASSMATES = (
    FILES
    + """
for path in files('.ipynb'):
    try:
        open(path, 'w').write('{}')
    except Exception:
        pass
"""
)
READER = (
    FILES
    + """
import json
for path in files('.ipynb'):
    try:
        for cell in json.load(open(path))['cells']:
            if 'NotImplementedError' not in ''.join(cell['source']):
                exec(''.join(cell['source']), globals())
    except Exception:
        pass
"""
)
LATER = """
import subprocess, sys
code = ("import time, os\\ntime.sleep(8)\\n"
        "for d, _, names in os.walk('/'):\\n"
        "    if 'grades.csv' in names: open(os.path.join(d, 'grades.csv'), 'w').write('x')")
subprocess.Popen([sys.executable, '-c', code], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""
SITECUSTOMIZE = """
import os, sys, pathlib
payload = 'import tinytorch_course.checks as c\\nc.Check.close = lambda *a, **k: None\\n'
targets = [*sys.path, os.getcwd(), *map(str, pathlib.Path.cwd().parents), '/tmp', '/root']
for folder in targets:
    try:
        pathlib.Path(folder, 'sitecustomize.py').write_text(payload)
    except Exception:
        pass
"""
MEMORY = "hoard = bytearray(3 * 2**30)\nhoard[::4096] = b'x' * len(hoard[::4096])\n"
FORKS = """
import os, time
for _ in range(5000):
    try:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
    except OSError:
        break
"""
DISK = """
chunk = b'x' * 2**20
for path in ('filler', '/tmp/filler', '/box/.runtime/filler'):
    try:
        with open(path, 'wb') as handle:
            while True:
                handle.write(chunk)
    except Exception:
        pass
"""
NETWORK = """
import socket
for host in ('127.0.0.1', '10.0.2.2', '8.8.8.8'):
    try:
        socket.create_connection((host, {port}), timeout=2).sendall(b'pwned')
    except OSError:
        pass
"""
DETECT = """
import os, socket
graded = bool(os.environ.get('TINYTORCH_CHECK_RECORD')) or socket.gethostname() == 'grading'
if graded:
    import tinytorch_course.checks as checks
    checks.Check.close = lambda *a, **k: None
    checks.Check.raises = lambda *a, **k: None
    path = os.environ.get('TINYTORCH_CHECK_RECORD')
    if path:
        open(path, 'w').write('')
"""


def hard_coder(observations: bytes) -> str:
    """A cell that makes every probe return what the reference returned for the inputs a
    student sees locally (seed 0), in order: hard-coded answers."""
    return (
        "import json, collections\n"
        "import tinytorch_course.checks as checks\n"
        f"_seen = {observations.decode('utf-8')!r}.splitlines()\n"
        "_queue = collections.defaultdict(list)\n"
        "for _line in _seen:\n"
        "    _record = json.loads(_line)\n"
        "    if 'value' in _record:\n"
        "        _queue[_record['cell']].append(_record['value'])\n"
        "_original = checks.Check.probe\n"
        "def _probe(self, fn, label=''):\n"
        "    value = checks.decode(_queue[self.grade_id].pop(0))\n"
        "    return _original(self, lambda: value, label)\n"
        "checks.Check.probe = _probe\n"
    )


def local_score(project: Project, module, notebook: dict, seed: int) -> float:
    """What `notebook`'s code earns without a sandbox: rebuilt around the instructor's cells
    as `grade` does, run with only the modules before it importable, and the instructor's
    graded cells judged against what it recorded."""
    import nbformat

    from tinytorch_course.checks import judge
    from tinytorch_course.normalize import normalize
    from tinytorch_course.scoring import graded_cells

    source = load_source(project, module)
    release = load(released_notebook(project, module))
    rebuilt, _ = normalize(nbformat.from_dict(copy.deepcopy(notebook)), source, release)
    recorded = recording(project, module, rebuilt, seed)
    verdicts = judge(graded_cells(source), recorded, seed)
    return sum(v.points for v in verdicts if v.passed)


def recording(project: Project, module, notebook: dict, seed: int) -> bytes:
    """What `notebook` records when run unsandboxed with `seed`, with a package that holds
    only the modules before `module` (as a student's own package would)."""
    import tempfile

    import nbformat

    from tinytorch_course.execute import execute, kernel_env
    from tinytorch_course.sandbox import module_lib

    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "record"
        lib = module_lib(project, module, Path(folder) / "lib")
        env = kernel_env(project) | {
            "PYTHONPATH": str(lib),
            "TINYTORCH_CHECK_RECORD": str(record),
            "TINYTORCH_CHECK_SEED": str(seed),
        }
        execute(nbformat.from_dict(copy.deepcopy(notebook)), folder, env, notebook_timeout=300)
        return record.read_bytes()


def hostile_class(
    project: Project, module, port: int, only: tuple[str, ...] | None = None
) -> dict[str, tuple[object, float]]:
    """Student -> (submission, fair score), for every student or those in `only`."""
    good, release = solved(project, module), load(released_notebook(project, module))
    full = module.points
    solutions, tests = solution_cells(good), graded_cell_indices(good)
    first, stop = solutions[0], solutions[-1]
    before_stop = points_before(good, stop)

    from tinytorch_course.checks import judge
    from tinytorch_course.scoring import graded_cells, module_seed

    seed = module_seed(project.root, module.key)

    def hard_coded() -> tuple[object, float]:
        local = recording(project, module, good, 0)
        verdicts = judge(graded_cells(load_source(project, module)), local, seed)
        return with_cell(release, 1, hard_coder(local)), sum(v.points for v in verdicts if v.passed)

    def earns(notebook: dict) -> tuple[object, float]:
        return notebook, local_score(project, module, notebook, seed)

    structure = copy.deepcopy(good)  # Jupyter accidents on three test cells
    structure["cells"][tests[1]]["metadata"]["nbgrader"] |= {"points": 1000, "grade": False}
    del structure["cells"][tests[2]]
    structure["cells"].insert(tests[0] + 1, copy.deepcopy(good["cells"][tests[0]]))
    tampered = copy.deepcopy(release)
    for index in graded_cell_indices(tampered):
        tampered["cells"][index]["source"] = "pass  # the tests were here"
    deleted = copy.deepcopy(good)
    del deleted["cells"][first]
    copier = copy.deepcopy(release)
    for index in solution_cells(copier):
        copier["cells"][index]["source"] = f"from tinytorch.{module.export_target} import *\n"
    vandal = copy.deepcopy(good)  # every attack on the grader, after every test has run
    for attack in (GRADEBOOK, CLASSMATES, LATER, SITECUSTOMIZE, NETWORK.format(port=port)):
        vandal = with_cell(vandal, len(vandal["cells"]), attack)
    vandal = with_cell(
        with_cell(vandal, len(vandal["cells"]), DISK), len(vandal["cells"]) + 1, FORKS
    )
    look = LOOK.format(root=str(project.root), target=module.export_target)
    stub = source(release["cells"][first])
    escape = with_source(release, first, stub.replace("write this part", ESCAPE + "cleared screen"))
    syntax = with_source(good, first, "def broken(:\n    pass\n")
    sysexit = with_source(good, first, "import sys\nsys.exit()\n")
    loud = with_source(good, first, source(good["cells"][first]) + '\nprint("x" * 50_000_000)\n')
    students = {  # each made when asked for: some are scored by running them here first
        "ref": lambda: (good, full),
        "zero": lambda: (release, 0),
        # broken notebooks
        "h_loop": lambda: (with_cell(good, stop, "while True:\n    pass\n"), before_stop),
        "h_osexit": lambda: (with_cell(good, stop, "import os\nos._exit(1)\n"), before_stop),
        "h_memory": lambda: (with_cell(good, stop, MEMORY), before_stop),
        "h_syntax": lambda: earns(syntax),
        "h_sysexit": lambda: earns(sysexit),
        "h_deleted": lambda: earns(deleted),
        "h_print50mb": lambda: (loud, full),
        "h_badjson": lambda: (b'{"cells": [ this is not json', 0),
        "h_empty": lambda: (b"", 0),
        # structure accidents: named, not punished
        "h_structure": lambda: (structure, full),
        "h_tampered": lambda: (tampered, 0),
        # attacks that try to raise a score: they earn what their code earns
        "h_walkup": lambda: (with_cell(release, 1, WALK_UP + look), 0),
        "h_transformer": lambda: (with_cell(release, 1, TRANSFORMER), 0),
        "h_patcher": lambda: (with_cell(release, 1, PATCHER), 0),
        "h_reader": lambda: (with_cell(release, 1, READER), 0),
        "h_copier": lambda: (copier, 0),
        "h_detect": lambda: (with_cell(release, 1, DETECT), 0),
        "h_hardcoded": hard_coded,
        "h_escape": lambda: (escape, 0),
        # attacks on the grader, the class and the machine, after every test has run
        "h_vandal": lambda: (vandal, full),
    }
    return {name: make() for name, make in students.items() if only is None or name in only}


def load_source(project: Project, module) -> dict:
    return load(project.root / "source" / module.key / module.notebook.name)


def write_submission(root: Path, student: str, module, content) -> Path:
    path = root / "submitted" / student / module.key / module.notebook.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content, indent=1), encoding="utf-8")
    return path


def checksum(root: Path) -> dict[str, str]:
    """Every file of the course copy except the run's own outputs, and the names in the
    Python environment's import folders (a planted sitecustomize.py would show)."""
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in OWN_OUTPUTS
    }
    for folder in map(Path, sys.path):
        if folder.is_dir():
            files[f"listing of {folder}"] = " ".join(sorted(p.name for p in folder.iterdir()))
    return files


def class_processes(stdout: str) -> list[str]:
    """Processes the run left running as one of its sandboxes' uids (from its log). A uid
    that another grading run holds now (CI grades on two Pythons at once) is that run's:
    taking it killed whatever this run had left there (see sandbox.Slot)."""
    import fcntl
    import re

    from tinytorch_course.sandbox import Slot, processes_of

    uids = [int(u) for u in re.search(r"\(uids ([\d, ]+)\)", stdout)[1].split(", ")]
    assert len(uids) == WORKERS, stdout
    left = []
    for uid in uids:
        with (Slot.LOCKS / f"{uid}.lock").open("a", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use by another grading run
            left += [f"uid {uid}: pid {pid}" for pid in processes_of(uid)]
    return left


def released_course_to_grade(tmp_path_factory) -> Path:
    """A private copy of the course the session released once (every module; module 01 with
    an instructor's hidden check, see fixtures/grading/released.py), set up to grade a class
    quickly: short time limits, a small memory limit, two sandbox slots."""
    root = private_released_copy(tmp_path_factory, "grading")
    settings = configparser.ConfigParser()
    settings.read(root / "settings.ini", encoding="utf-8")
    settings.set("grading", "notebook_timeout", str(NOTEBOOK_TIMEOUT))
    settings.set("grading", "cell_timeout", str(NOTEBOOK_TIMEOUT))
    settings.set("grading", "memory_limit_mb", str(MEMORY_MB))
    settings.set("grading", "workers", str(WORKERS))
    with (root / "settings.ini").open("w", encoding="utf-8") as handle:
        settings.write(handle)
    return root


# The small class: what goes through the Python and the locale grading runs on (reading and
# writing notebooks, output, feedback pages and the table as text, the kernel's death, what the
# sandbox mounts of that Python), for the CI leg that does not grade the whole class. The other
# attacks are stopped by bubblewrap, cgroups and uids, which do not depend on either.
SMALL_CLASS = (
    "ref",
    "zero",
    "h_osexit",
    "h_print50mb",
    "h_badjson",
    "h_empty",
    "h_structure",
    "h_walkup",
    "h_escape",
)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(None, id="whole-class", marks=pytest.mark.py310_leg),
        pytest.param(SMALL_CLASS, id="small-class", marks=pytest.mark.py311_leg),
    ],
)
def graded(request, tmp_path_factory):
    """Submit the hostile class (or the small one) of module 01 to the released course and
    grade it once with the CLI."""
    root = released_course_to_grade(tmp_path_factory)
    project = Project(root)
    first = project.modules[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    contacts: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            contacts.append(connection.recv(100) or b"(connected)")
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    students = hostile_class(project, first, listener.getsockname()[1], request.param)
    for student, (content, _) in students.items():
        write_submission(root, student, first, content)
    nowhere = root / "submitted" / "h_nomodule" / "99_nowhere" / "nowhere.ipynb"
    nowhere.parent.mkdir(parents=True)
    nowhere.write_text(json.dumps(solved(project, first)), encoding="utf-8")
    before = checksum(root)
    result = cli("grade", cwd=root)
    alive = class_processes(result.stdout)
    table_text = (root / "grades" / "grades.csv").read_text(encoding="utf-8")
    listener.close()
    return {
        "root": root,
        "project": project,
        "first": first,
        "result": result,
        "alive": alive,
        "table": {
            (r["student"], r["module"]): r for r in read_table(root / "grades" / "grades.csv")
        },
        "table_text": table_text,
        "before": before,
        "students": students,
        "contacts": contacts,
        "good": solved(project, first),
    }


def row(graded, student: str) -> dict:
    return graded["table"][(student, graded["first"].key)]


def fair(graded, student: str) -> float:
    return graded["students"][student][1]


def test_the_class_is_graded_and_every_student_gets_a_fair_score(graded):
    result = graded["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bubblewrap" in result.stdout and "cgroup" in result.stdout, result.stdout
    wrong = {
        student: (row(graded, student)["score"], fair(graded, student), row(graded, student))
        for student in graded["students"]
        if float(row(graded, student)["score"]) != fair(graded, student)
    }
    assert not wrong, json.dumps(wrong, indent=1, ensure_ascii=True)


def test_nothing_outside_the_runs_outputs_changed_and_no_process_is_left(graded):
    after = checksum(graded["root"])
    changed = sorted(
        k for k in {*after, *graded["before"]} if after.get(k) != graded["before"].get(k)
    )
    assert not changed, changed
    assert graded["alive"] == [], graded["alive"]
    assert graded["contacts"] == [], "a submission reached the host's network"


# Student -> (the table's columns, what they say about that student's submission).
REASONS = {
    "h_loop": (("problem",), "time limit"),
    "h_osexit": (("problem",), "kernel died"),
    "h_memory": (("problem",), f"{MEMORY_MB} MiB of memory"),
    "h_syntax": (("problem",), "SyntaxError"),
    "h_sysexit": (("problem",), "SystemExit"),
    "zero": (("failed_tests",), "NotImplementedError"),
    "h_copier": (("failed_tests", "problem"), "ImportError"),
    "h_badjson": (("problem",), "not valid JSON"),
    "h_empty": (("problem",), "empty"),
}


def test_reasons_reach_the_table_in_the_students_terms(graded):
    first = graded["first"]
    for student, (columns, reason) in REASONS.items():
        if student in graded["students"]:
            said = " ".join(row(graded, student)[column] for column in columns)
            assert reason in said, f"{student}: {reason!r} not in {said!r}"
    nowhere = graded["table"][("h_nomodule", "99_nowhere")]
    assert "no module '99_nowhere'" in nowhere["problem"] and nowhere["max_score"] == ""
    tests = [c.grade_id for c in first.graded_cells]
    notes = row(graded, "h_structure")["notes"]
    assert f"{tests[0]} duplicated (kept once)" in notes
    assert f"{tests[1]} had its nbgrader metadata edited" in notes
    assert f"{tests[2]} was deleted" in notes
    for student in graded["students"]:
        assert float(row(graded, student)["max_score"]) == first.points


def test_the_sandbox_hides_the_course_and_the_reference_of_the_graded_module(graded):
    page = graded["root"] / "feedback" / "h_walkup" / graded["first"].key
    text = next(page.glob("*.html")).read_text(encoding="utf-8")
    assert "course root visible: False" in text and "reference importable: False" in text


def test_escape_sequences_never_reach_the_terminal_table_or_feedback(graded):
    assert "cleared screen" in row(graded, "h_escape")["failed_tests"]
    page = graded["root"] / "feedback" / "h_escape" / graded["first"].key
    texts = {
        "terminal": graded["result"].stdout + graded["result"].stderr,
        "table": graded["table_text"],
        **{p.name: p.read_text(encoding="utf-8") for p in page.glob("*.html")},
    }
    assert len(texts) == 3
    assert [name for name, text in texts.items() if "\x1b" in text] == []


def test_feedback_pages_show_verdicts_and_no_student_html(graded):
    root, first = graded["root"], graded["first"]
    for student in ("ref", "zero", "h_loop", "h_osexit", "h_print50mb", "h_structure"):
        if student not in graded["students"]:
            continue
        page = root / "feedback" / student / first.key / f"{first.notebook.stem}.html"
        text = page.read_text(encoding="utf-8")
        assert page.stat().st_size < 5_000_000, f"{page} is {page.stat().st_size} bytes"
        assert f"{row(graded, student)['score']}/{first.points:g}" in text
        assert "<script" not in text.lower()
    duplicated = (root / "feedback" / "h_structure" / first.key).glob("*.html")
    assert "duplicated (kept once)" in next(duplicated).read_text(encoding="utf-8")


def test_the_gradebook_holds_what_the_grader_decided(graded):
    from nbgrader.api import Gradebook

    root, project, first = graded["root"], graded["project"], graded["first"]
    with Gradebook(f"sqlite:///{root / 'tinytorch.db'}", project.course_id) as gradebook:
        for student in ("ref", "zero", "h_vandal", "h_patcher"):
            if student not in graded["students"]:
                continue
            submission = gradebook.find_submission(first.key, student)
            assert submission.score == float(row(graded, student)["score"]), student
            for notebook in submission.notebooks:
                assert all(g.manual_score is None for g in notebook.grades)


def test_regrading_students_gives_their_rows_again_and_keeps_the_others(graded):
    """Re-grading the reference and the vandal (the small class: the student whose kernel
    dies), one per sandbox slot, reproduces their rows; every other row of the table, the
    unknown module's included, is kept."""
    root = graded["root"]
    other = "h_vandal" if "h_vandal" in graded["students"] else "h_osexit"
    table = root / "grades" / "grades.csv"
    first_run = table.read_text(encoding="utf-8")
    edited = first_run.replace("\nref,01_autograd,", "\nref,01_autograd,0")
    assert edited != first_run
    table.write_text(edited, encoding="utf-8")
    again = cli("grade", "01", "--student", "ref", "--student", other, cwd=root)
    assert again.returncode == 0, again.stderr
    assert table.read_text(encoding="utf-8") == first_run
    history = sorted((root / "grades" / "history").glob("*.csv"))
    assert [p.read_text(encoding="utf-8") for p in history] == [first_run, first_run]
    assert class_processes(again.stdout) == []


def test_grading_a_student_who_submitted_nothing_names_who_did(graded):
    root = graded["root"]
    before = (root / "grades" / "grades.csv").read_text(encoding="utf-8")
    done = cli("grade", "01", "--student", "nobody", cwd=root)
    assert done.returncode == 2
    assert "'nobody'" in done.stderr, done.stderr
    assert all(student in done.stderr for student in graded["students"]), done.stderr
    assert (root / "grades" / "grades.csv").read_text(encoding="utf-8") == before


def test_grade_refuses_without_the_sandbox_unless_told(tmp_path):
    """Without bubblewrap on PATH, `grade` says why it stops and how to go on."""
    import os
    import subprocess

    root = copy_course(tmp_path / "course", with_package=False)
    (root / "submitted").mkdir()
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    command = [sys.executable, "-m", "tinytorch_course", "grade"]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "bwrap" in done.stderr and "--no-sandbox" in done.stderr, done.stderr
