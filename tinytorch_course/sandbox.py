"""Run one submitted notebook in an OS-level sandbox (bubblewrap) and bring back its results.

What the student's code sees (a new mount namespace holding only these):

    /usr, /bin, /lib*, a few files of /etc   read-only system files
    sys.base_prefix, sys.prefix               the Python installation and venv, read-only
    /opt/tinytorch-grading                    read-only: a copy of `tinytorch` with only the
                                              modules before the graded one (the others
                                              raise ImportError), `tinytorch_course`,
                                              `tinytorch_datasets`; first on PYTHONPATH
    /box                                      a size-capped tmpfs: HOME, the working folder,
                                              the kernel's runtime folder, the recording

Not the course root, `modules/`, `source/`, the gradebook, `submitted/` or another
student's files. New PID, network (loopback only), IPC and UTS namespaces; the code runs
as an unprivileged uid of its own per worker slot (so the process limit applies), with a
memory limit (a cgroup, or RLIMIT_AS where cgroups are not available), a file-size limit
and a wall-clock limit that kills the whole sandbox. When the run ends, every process of
it is gone: the PID namespace ends with its first process, and the grader kills whatever
is left in the cgroup or runs as the slot's uid.

Inside, `python -m tinytorch_course.execute` executes the notebook and writes one JSON
result on stdout. That result is untrusted data: it is size-capped, parsed as JSON, never
unpickled or executed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .project import _DEFAULT_EXP, CourseError, Module, Project

BOX = "/box"
LIB = "/opt/tinytorch-grading"
FIRST_UID = 61000  # sandboxes run as uids from here, one per worker slot (see Slot)
START_MARGIN_SECONDS = 15.0  # kernel start-up and result transfer, beyond notebook_timeout
RESULT_MAX_BYTES = 64_000_000
TMPFS_BYTES = 256 * 2**20
FILE_BYTES = 64 * 2**20
MAX_PROCESSES = 256
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "fonts",
    "mime.types",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
SKIPPED_IMPORT = 'raise ImportError("not available while grading")\n'


@dataclass
class SandboxResult:
    """What came out of one sandboxed run (all of it untrusted, except `problem`)."""

    notebook: dict | None
    observations: bytes
    stopped: str  # why the notebook stopped early, as the sandbox reported it
    problem: str  # what went wrong with the run itself, decided by the grader
    seconds: float  # the whole run, sandbox start to result
    inside: dict = field(default_factory=dict)  # seconds as the sandbox reported them


def missing_tools() -> list[str]:
    """The programs the sandbox needs that are not installed."""
    return [name for name in ("bwrap", "setpriv", "prlimit") if shutil.which(name) is None]


def check_available() -> None:
    """Raise CourseError naming what is missing for the sandbox, and what to do."""
    missing = missing_tools()
    if missing:
        raise CourseError(
            f"grading runs every submission in a sandbox, and {', '.join(missing)} is not "
            "installed (Debian/Ubuntu: apt-get install bubblewrap util-linux). Without it a "
            "submission runs with your rights: it can read the reference solutions, change "
            "the gradebook, other students' files and the grade table, and leave processes "
            "behind. To grade anyway on a machine that holds nothing of value, pass --no-sandbox"
        )
    if os.geteuid() != 0:
        raise CourseError(
            "the grading sandbox runs each submission as an unprivileged user of its own, "
            "which needs root (run `grade` as root in a machine or container kept for "
            "grading), or pass --no-sandbox and accept what that risks (see the README)"
        )


def _targets(module: Module) -> list[str]:
    """The package modules that `module` (and its companion notebooks) export, except
    the package's `__init__` (plumbing every module needs, copied as it is)."""
    names = [module.export_target, *module.extra_targets]
    for companion in module.companions:
        found = _DEFAULT_EXP.search(companion.read_text(encoding="utf-8"))
        names.append(found["name"] if found else None)
    return [name for name in names if name and name != "__init__"]


def module_lib(project: Project, module: Module, folder: Path) -> Path:
    """`folder` filled with what the sandbox imports: `tinytorch` with only the modules
    before `module` (later ones are stubs that raise ImportError), and copies of the
    course's `tinytorch_course` and `tinytorch_datasets`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    package = folder / project.package_dir.name
    package.mkdir(parents=True)
    shutil.copy2(project.package_dir / "__init__.py", package / "__init__.py")
    position = project.modules.index(module)
    for index, other in enumerate(project.modules):
        for name in _targets(other):
            relative = f"{name.replace('.', '/')}.py"
            (package / relative).parent.mkdir(parents=True, exist_ok=True)
            if index < position:
                shutil.copy2(project.package_dir / relative, package / relative)
            else:
                message = (
                    f"tinytorch.{name} is built in module {other.key}; while module "
                    f"{module.key} is graded, the kernel has only the modules before it"
                )
                (package / relative).write_text(f"raise ImportError({message!r})\n", "utf-8")
    here = Path(__file__).resolve().parent
    shutil.copytree(here, folder / "tinytorch_course", ignore=ignore)
    datasets = project.root / "tinytorch_datasets"
    if datasets.is_dir():
        shutil.copytree(datasets, folder / "tinytorch_datasets", ignore=ignore)
    # jsonschema (imported by nbformat) imports rfc3987_syntax when it can, which takes
    # seconds (it builds a grammar); nbclient never needs it, so the sandbox hides it.
    (folder / "rfc3987_syntax.py").write_text(SKIPPED_IMPORT, encoding="utf-8")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


class Limits:
    """Memory and process limits of one worker slot: cgroup v1 where we can create one
    (memory, pids), else RLIMIT_AS. `how` says which is in force."""

    def __init__(self, name: str, memory_bytes: int):
        self.memory_bytes = memory_bytes
        self.groups: list[Path] = []
        for controller, settings in (
            ("memory", {"memory.limit_in_bytes": memory_bytes, "memory.swappiness": 0}),
            ("pids", {"pids.max": MAX_PROCESSES}),
        ):
            group = CGROUP_ROOT / controller / name
            try:
                group.mkdir(exist_ok=True)
                for key, value in settings.items():
                    if (group / key).exists():
                        (group / key).write_text(str(value), encoding="utf-8")
                self.groups.append(group)
            except OSError:
                continue
        self.memory_cgroup = any(g.parent.name == "memory" for g in self.groups)
        self.how = f"memory limit {memory_bytes / 2**20:g} MiB by " + (
            "cgroup (v1 memory controller)" if self.memory_cgroup else "RLIMIT_AS"
        )

    def enter_command(self) -> list[str]:
        """A shell prefix that moves itself into the cgroups, then execs the rest."""
        moves = "".join(f'echo $$ > "{g}/cgroup.procs" && ' for g in self.groups)
        return ["sh", "-c", moves + 'exec "$@"', "sh"]

    def out_of_memory(self) -> bool:
        for group in self.groups:
            path = group / "memory.failcnt"
            if path.exists() and path.read_text(encoding="utf-8").strip() not in ("", "0"):
                return True
        return False

    def reset(self) -> None:
        for group in self.groups:
            path = group / "memory.failcnt"
            if path.exists():
                path.write_text("0", encoding="utf-8")

    def kill_all(self) -> None:
        for group in self.groups:
            try:
                pids = (group / "cgroup.procs").read_text(encoding="utf-8").split()
            except OSError:
                continue
            for pid in pids:
                _kill(int(pid))

    def remove(self) -> None:
        self.kill_all()
        for group in self.groups:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


class Slot:
    """A worker slot: a uid no other grading run on this machine uses while this one
    holds it (an exclusive lock per uid), and its memory and process limits."""

    LOCKS = Path(tempfile.gettempdir()) / "tinytorch-grading-uids"

    def __init__(self, memory_bytes: int, tries: int = 1000):
        self.LOCKS.mkdir(mode=0o700, exist_ok=True)
        for number in range(tries):
            handle = (self.LOCKS / f"{FIRST_UID + number}.lock").open("w", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            kill_uid(FIRST_UID + number)  # left over from a run that was itself killed
            self.uid, self._lock = FIRST_UID + number, handle
            break
        else:
            raise CourseError(f"no free grading uid in {FIRST_UID}..{FIRST_UID + tries - 1}")
        self.limits = Limits(f"tinytorch-grading-{self.uid}", memory_bytes)

    def release(self) -> None:
        self.limits.remove()
        kill_uid(self.uid)
        self._lock.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def processes_of(uid: int) -> list[int]:
    """Every live process whose real uid is `uid` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Uid:"):
                if int(line.split()[1]) == uid:
                    found.append(int(status.parent.name))
                break
    return found


def kill_uid(uid: int) -> None:
    """Kill every process of `uid` until none is left (forks may race the first pass)."""
    for _ in range(20):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            _kill(pid)
        time.sleep(0.02)


def _system_mounts() -> list[str]:
    args = []
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def python_dirs() -> list[Path]:
    """The Python installation and the venv (read-only in the sandbox)."""
    dirs = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    return sorted(d for d in dirs if not str(d).startswith("/usr"))


def check_course_hidden(project: Project) -> None:
    """Refuse to run when the course root lies inside a folder the sandbox shows."""
    root = project.root.resolve()
    for folder in [*python_dirs(), Path("/usr")]:
        if root == folder or folder in root.parents:
            raise CourseError(
                f"the course root {root} is inside {folder}, which the grading sandbox must "
                "show to submissions (the Python installation): move the course elsewhere"
            )


def _parent_dirs(targets: list[str]) -> list[str]:
    """`--dir` for every folder above the mount points, readable by everyone (bwrap would
    make them private to root, and the sandbox's user could not reach the mounts)."""
    parents = {str(p) for t in targets for p in Path(t).parents if str(p) != "/"}
    args = []
    for folder in sorted(parents, key=lambda p: (p.count("/"), p)):
        args += ["--perms", "0755", "--dir", folder]
    return args


def bwrap_command(lib: Path, data_files: list[Path], uid: int, memory: Limits) -> list[str]:
    python = Path(sys.executable)
    mounts = _system_mounts()
    for folder in python_dirs():
        mounts += ["--ro-bind", str(folder), str(folder)]
    mounts += ["--ro-bind", str(lib), LIB]
    targets = [mounts[i + 2] for i, a in enumerate(mounts) if a in ("--ro-bind", "--symlink")]
    args = ["bwrap", *_parent_dirs(targets), *mounts, "--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", BOX]
    for path in data_files:
        args += ["--ro-bind", str(path), f"{BOX}/{path.name}"]
    args += [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "grading",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        BOX,
        "--",
        "prlimit",
        f"--nproc={MAX_PROCESSES}",
        f"--fsize={FILE_BYTES}",
        "--core=0",
        *([] if memory.memory_cgroup else [f"--as={memory.memory_bytes}"]),
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        str(python),
        "-m",
        "tinytorch_course.execute",
    ]
    return args


def sandbox_env(seed: int) -> dict[str, str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": BOX,
        "PYTHONPATH": LIB,
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "JUPYTER_RUNTIME_DIR": f"{BOX}/.runtime",
        "IPYTHONDIR": f"{BOX}/.ipython",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{BOX}/.matplotlib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "TINYTORCH_CHECK_RECORD": f"{BOX}/.observations",
        "TINYTORCH_CHECK_SEED": str(seed),
    }


def _read_capped(stream, limit: int, into: list, overflow: threading.Event) -> None:
    size = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return
        if size + len(chunk) > limit:
            overflow.set()
            into.append(chunk[: max(0, limit - size)])
            size = limit
            while stream.read(65536):  # drain, keep nothing, so the writer never blocks
                pass
            return
        into.append(chunk)
        size += len(chunk)


def run(
    notebook: dict,
    lib: Path,
    data_files: list[Path],
    slot: Slot,
    seed: int,
    notebook_timeout: float,
    cell_timeout: float,
    max_output_chars: int,
) -> SandboxResult:
    """Execute `notebook` in the sandbox of worker `slot`; never raises for what the
    submission does."""
    uid, limits = slot.uid, slot.limits
    request = json.dumps(
        {
            "notebook": notebook,
            "notebook_timeout": notebook_timeout,
            "cell_timeout": cell_timeout,
            "max_output_chars": max_output_chars,
        }
    ).encode("utf-8")
    command = [*limits.enter_command(), *bwrap_command(lib, data_files, uid, limits)]
    start = time.monotonic()
    limits.reset()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox_env(seed),
        start_new_session=True,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    overflow = threading.Event()
    readers = [
        threading.Thread(
            target=_read_capped, args=(process.stdout, RESULT_MAX_BYTES, out, overflow)
        ),
        threading.Thread(target=_read_capped, args=(process.stderr, 65536, err, threading.Event())),
    ]
    for reader in readers:
        reader.daemon = True
        reader.start()
    try:
        process.stdin.write(request)
        process.stdin.close()
    except BrokenPipeError:
        pass
    problem = ""
    try:
        process.wait(timeout=notebook_timeout + START_MARGIN_SECONDS)
    except subprocess.TimeoutExpired:
        problem = (
            f"stopped: still running {notebook_timeout + START_MARGIN_SECONDS:g} s after it "
            "started; the sandbox was killed"
        )
    finally:
        _kill(process.pid)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        process.wait()
        limits.kill_all()
        kill_uid(uid)
    for reader in readers:
        reader.join(timeout=5)
    seconds = time.monotonic() - start
    if overflow.is_set() and not problem:
        problem = f"not graded: the run produced more than {RESULT_MAX_BYTES:,} bytes of results"
    result = None
    if not problem:
        try:
            result = json.loads(b"".join(out).decode("utf-8"))
            if not isinstance(result, dict) or not isinstance(result.get("notebook"), dict):
                raise ValueError("no notebook in the result")
        except (UnicodeDecodeError, ValueError) as error:
            tail = b"".join(err).decode("utf-8", errors="replace").strip().splitlines()[-3:]
            problem = f"the sandboxed run gave no result ({error}): {' / '.join(tail)}"
            result = None
    if limits.out_of_memory():
        oom = f"the notebook used more than its {limits.memory_bytes / 2**20:g} MiB of memory"
        problem = f"{problem}; {oom}" if problem else ""
        if result is not None:
            result["stopped"] = oom
    if result is None:
        return SandboxResult(None, b"", "", problem or "no result", seconds)
    import base64
    import binascii

    try:
        observations = base64.b64decode(str(result.get("observations", "")), validate=True)
    except (binascii.Error, ValueError):
        observations = b""
    inside = {}
    for key in ("seconds", "kernel_seconds"):
        value = result.get(key)
        inside[key] = float(value) if isinstance(value, (int, float)) else 0.0
    stopped = str(result.get("stopped", ""))[:2000]
    return SandboxResult(result["notebook"], observations, stopped, problem, seconds, inside)
