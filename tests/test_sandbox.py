"""The untrusted-code sandbox (evaluator/sandbox.py): hostile programs are contained and scored as
failures with the right outcome, honest programs pass, nothing is left running or written outside.

Every hostile case is bounded by the sandbox's own limits (``Limits.timeout_s``), not by a pytest
plugin: if the sandbox failed to kill a case, the test would hang, which is itself the failure.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from pathlib import Path

import pytest

from evaluator import sandbox
from evaluator.sandbox import ExecResult, Limits, missing_libraries, run_many, run_program, sandbox_notes

FAST = Limits(timeout_s=5, memory_mb=1024, max_processes=32)

# Real HumanEval problems (openai/openai_humaneval), copied as literals: task 0, 2, 13, 53.
HUMANEVAL = [
    {'task_id': 'HumanEval/0', 'prompt': 'from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    """ Check if in given list of numbers, are any two numbers closer to each other than\n    given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n    True\n    """\n', 'canonical_solution': '    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n            if idx != idx2:\n                distance = abs(elem - elem2)\n                if distance < threshold:\n                    return True\n\n    return False\n', 'test': "\n\nMETADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True\n    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False\n    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True\n    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False\n    assert candidate([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True\n    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True\n    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False\n\n", 'entry_point': 'has_close_elements'},  # noqa: E501
    {'task_id': 'HumanEval/2', 'prompt': '\n\ndef truncate_number(number: float) -> float:\n    """ Given a positive floating point number, it can be decomposed into\n    and integer part (largest integer smaller than given number) and decimals\n    (leftover part always smaller than 1).\n\n    Return the decimal part of the number.\n    >>> truncate_number(3.5)\n    0.5\n    """\n', 'canonical_solution': '    return number % 1.0\n', 'test': "\n\nMETADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n    assert candidate(3.5) == 0.5\n    assert abs(candidate(1.33) - 0.33) < 1e-6\n    assert abs(candidate(123.456) - 0.456) < 1e-6\n", 'entry_point': 'truncate_number'},  # noqa: E501
    {'task_id': 'HumanEval/13', 'prompt': '\n\ndef greatest_common_divisor(a: int, b: int) -> int:\n    """ Return a greatest common divisor of two integers a and b\n    >>> greatest_common_divisor(3, 5)\n    1\n    >>> greatest_common_divisor(25, 15)\n    5\n    """\n', 'canonical_solution': '    while b:\n        a, b = b, a % b\n    return a\n', 'test': "\n\nMETADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n    assert candidate(3, 7) == 1\n    assert candidate(10, 15) == 5\n    assert candidate(49, 14) == 7\n    assert candidate(144, 60) == 12\n", 'entry_point': 'greatest_common_divisor'},  # noqa: E501
    {'task_id': 'HumanEval/53', 'prompt': '\n\ndef add(x: int, y: int):\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    >>> add(5, 7)\n    12\n    """\n', 'canonical_solution': '    return x + y\n', 'test': '\n\nMETADATA = {}\n\n\ndef check(candidate):\n    import random\n\n    assert candidate(0, 1) == 1\n    assert candidate(1, 0) == 1\n    assert candidate(2, 3) == 5\n    assert candidate(5, 7) == 12\n    assert candidate(7, 5) == 12\n\n    for i in range(100):\n        x, y = random.randint(0, 1000), random.randint(0, 1000)\n        assert candidate(x, y) == x + y\n\n', 'entry_point': 'add'},  # noqa: E501
]
TASKS = {p["entry_point"]: p for p in HUMANEVAL}


def program(task: dict, completion: str | None = None) -> str:
    body = task["canonical_solution"] if completion is None else completion
    return task["prompt"] + body + "\n" + task["test"] + "\n" + f"check({task['entry_point']})\n"


def gcd_program(preamble: str, completion: str = "    return 1\n") -> str:
    """greatest_common_divisor with a WRONG completion (always 1) after some hostile preamble."""
    task = TASKS["greatest_common_divisor"]
    return preamble + "\n" + program(task, completion)


def assert_contained(res: ExecResult) -> None:
    """Nothing of the run survives and its temporary directory is gone."""
    info = res.sandbox
    assert info, f"the sandbox bootstrap never reported (stderr: {res.stderr[-500:]})"
    cwd, uid, pidns = info["cwd"], info.get("uid"), info.get("pidns")
    survivors = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            if stat[stat.rindex(b")") + 2 :][:1] in (b"Z", b"X"):
                continue  # already dead (a zombie awaiting its reaper), not running
            st_uid = os.stat(f"/proc/{name}").st_uid
            if uid not in (None, os.getuid()) and st_uid == uid:
                survivors.append(int(name))
                continue
            if pidns and os.readlink(f"/proc/{name}/ns/pid") == pidns:
                survivors.append(int(name))
                continue
            if os.readlink(f"/proc/{name}/cwd").startswith(cwd):
                survivors.append(int(name))
        except OSError:
            continue
    assert not survivors, f"sandbox processes still running: {[_describe(p) for p in survivors]}"
    assert not os.path.exists(cwd), f"temporary directory {cwd} was not removed"


def _describe(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/stat").read_text()[:200]
    except OSError as exc:
        return f"{pid}: {exc}"


@pytest.fixture(scope="module")
def notes() -> dict:
    return sandbox_notes()


@pytest.fixture(autouse=True, params=["warm", "fresh"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways: forked from a warm sandbox interpreter, and in a fresh one."""
    monkeypatch.setattr(sandbox, "WARM_INTERPRETER", request.param == "warm")
    return str(request.param)


def _warm_here() -> bool:
    plan = sandbox._plan(sandbox.sys.executable)
    return plan.init and plan.mountns and plan.netns


def test_each_program_gets_its_own_process_tree(mode: str) -> None:
    """Programs see only their own processes, in a pid and IPC namespace of their own, warm or not."""
    src = ("import json, os\nprint(json.dumps([sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), "
           "os.readlink('/proc/self/ns/ipc')]))\n")  # fmt: skip
    if not _warm_here():
        pytest.skip("this host has no pid/mount namespaces for the sandbox")
    first, second = run_program(src, limits=FAST, marker=False), run_program(src, limits=FAST, marker=False)
    assert first.outcome == second.outcome == "passed", (first.detail, first.stderr)
    (pids, ipc1), (_, ipc2) = json.loads(first.stdout), json.loads(second.stdout)
    assert pids == [1, 2]  # the init and the program, nothing else
    assert first.sandbox["pidns"] != second.sandbox["pidns"]
    assert bool(first.sandbox.get("warm")) == (mode == "warm")
    if mode == "warm":  # a fresh interpreter per program shares the host's IPC namespace
        assert ipc1 != ipc2 and os.readlink("/proc/self/ns/ipc") not in (ipc1, ipc2)
    assert_contained(first)
    assert_contained(second)


def test_a_program_cannot_change_what_the_next_one_sees(mode: str) -> None:
    """A program that rebinds library functions (in the warm interpreter's forked copy) leaves the
    next program's libraries untouched, and that program still passes or fails on its own merit."""
    tamper = "import json, os\njson.dumps = lambda *a, **k: 'P fake'\nos.environ['LEAK'] = '1'\n"
    probe = "import json, os\nassert json.dumps(1) == '1' and 'LEAK' not in os.environ\n"
    for src, outcome in ((tamper, "passed"), (probe, "passed"), (tamper + "assert False\n", "failed")):
        res = run_program(src, limits=FAST)
        assert res.outcome == outcome, (src, res.detail, res.stderr)
        assert_contained(res)


def test_a_large_program_arrives_whole() -> None:
    """Programs far larger than one socket message (BigCodeBench-sized and more) run intact."""
    filler = "".join(f"# {i:06d} {'x' * 90}\n" for i in range(3000))  # ~300 KB of comments
    res = run_program(filler + program(HUMANEVAL[0]) + "assert 'x' * 90 not in open('/proc/self/cmdline').read()\n",
                      limits=FAST)  # fmt: skip
    assert res.outcome == "passed", (res.detail, res.stderr[-500:])
    assert_contained(res)


def test_a_lost_warm_interpreter_is_replaced(mode: str) -> None:
    if mode != "warm" or not _warm_here():
        pytest.skip("warm interpreter only")
    assert run_program(program(HUMANEVAL[1]), limits=FAST).passed
    zygote = sandbox._Zygote._local.zygotes[sandbox.sys.executable]
    os.kill(zygote.proc.pid, 9)
    zygote.proc.wait()
    res = run_program(program(HUMANEVAL[1]), limits=FAST)
    assert res.passed and res.sandbox.get("warm"), (res.detail, res.stderr)
    assert sandbox._Zygote._local.zygotes[sandbox.sys.executable] is not zygote
    assert_contained(res)


def test_warm_interpreters_end_with_their_worker_thread(mode: str) -> None:
    if mode != "warm" or not _warm_here():
        pytest.skip("warm interpreter only")
    pids: list[int] = []

    def worker() -> None:
        run_program("pass\n", limits=FAST)
        pids.append(sandbox._Zygote._local.zygotes[sandbox.sys.executable].proc.pid)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert pids
    # the thread is gone, so its zygote got its parent-death SIGKILL: soon dead or a zombie
    for _ in range(100):
        if sandbox._is_zombie(pids[0]):
            break
        threading.Event().wait(0.05)
    assert sandbox._is_zombie(pids[0])


# ------------------------------------------------------------------------------ positive side
@pytest.mark.parametrize("task", HUMANEVAL, ids=[t["task_id"] for t in HUMANEVAL])
def test_humaneval_canonical_solutions_pass(task: dict) -> None:
    res = run_program(program(task), limits=Limits())
    assert res.outcome == "passed", (res.detail, res.stderr)
    assert_contained(res)


def test_wrong_solution_fails_with_the_failing_assert() -> None:
    res = run_program(gcd_program(""), limits=FAST)
    assert res.outcome == "failed"
    assert "assert candidate(10, 15) == 5" in res.detail, res.detail
    assert_contained(res)


@pytest.mark.parametrize(
    ("src", "outcome", "needle"),
    [
        ("def f(:\n", "error", "SyntaxError"),
        ("print(undefined_name)\n", "error", "NameError: name 'undefined_name' is not defined"),
        ("raise ValueError('boom')\n", "error", "ValueError: boom"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "killed", "SIGSEGV"),
    ],
    ids=["syntax", "name", "value", "signal"],
)
def test_error_outcomes(src: str, outcome: str, needle: str) -> None:
    res = run_program(src, limits=FAST)
    assert res.outcome == outcome, (res.outcome, res.detail, res.stderr)
    assert needle in res.detail
    assert_contained(res)


def test_run_many_returns_results_in_order() -> None:
    progs = []
    for i in range(8):
        task = HUMANEVAL[i % len(HUMANEVAL)]
        progs.append(f"print({i})\n" + (program(task) if i % 2 == 0 else program(task, "    return None\n")))
    results = run_many(progs, limits=FAST, workers=4)
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(8)]
    assert [r.outcome for r in results] == ["passed", "failed"] * 4
    for r in results:
        assert_contained(r)


def test_missing_libraries() -> None:
    name = "no_such_library_" + secrets.token_hex(4)
    assert missing_libraries(["json", name, "math"]) == [name]


def test_notes_describe_isolation(notes: dict) -> None:
    assert set(notes) >= {"network", "user", "limits", "landlock", "notes"}
    if os.geteuid() == 0:
        # as root the child must not stay root, or RLIMIT_NPROC would not apply
        assert notes["user"]["dropped"] or any("NOT dropping" in n for n in notes["notes"])
    if not notes["network"]["cut"]:
        assert any("network NOT cut" in n for n in notes["notes"])


# ------------------------------------------------------------------------------ hostile suite
def test_infinite_loop_times_out() -> None:
    res = run_program(gcd_program("while True:\n    pass\n"), limits=Limits(timeout_s=2, cpu_s=30))
    assert res.outcome == "timeout", res.detail
    assert_contained(res)


def test_cpu_limit() -> None:
    res = run_program("while True:\n    pass\n", limits=Limits(timeout_s=20, cpu_s=1))
    assert res.outcome == "timeout" and "CPU" in res.detail, res.detail
    assert_contained(res)


def test_fork_bomb_is_contained() -> None:
    src = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    res = run_program(gcd_program(src), limits=Limits(timeout_s=3, max_processes=32))
    assert res.outcome == "timeout", (res.outcome, res.detail)
    assert_contained(res)


def test_fork_escaping_the_session_is_killed() -> None:
    src = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
        "os._exit(0)\n"
    )  # fmt: skip
    res = run_program(gcd_program(src), limits=FAST)
    assert res.outcome == "failed", res.detail
    assert_contained(res)


def test_10gb_allocation_is_killed_for_memory() -> None:
    res = run_program(gcd_program("x = bytearray(10 * 1024 ** 3)\n"), limits=FAST)
    assert res.outcome == "killed" and "memory" in res.detail, (res.outcome, res.detail)
    assert_contained(res)


def test_gradual_allocation_is_killed_for_memory() -> None:
    src = "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n"
    res = run_program(gcd_program(src), limits=Limits(timeout_s=20, memory_mb=512))
    assert res.outcome == "killed" and "memory" in res.detail, (res.outcome, res.detail)
    assert_contained(res)


def test_1gb_of_output_is_capped_and_killed() -> None:
    src = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    limits = Limits(timeout_s=20, max_output_bytes=1 << 20)
    res = run_program(gcd_program(src), limits=limits)
    assert res.outcome == "killed" and "output" in res.detail, (res.outcome, res.detail)
    assert len(res.stdout) <= (1 << 20) + 100
    assert_contained(res)


def test_writes_outside_the_temp_dir_fail(tmp_path: Path, notes: dict) -> None:
    token = secrets.token_hex(6)
    targets = [
        Path("/root") / f"pwned-{token}",
        Path("/tmp") / f"pwned-{token}",
        Path(os.environ.get("HOME", "/root")) / f"pwned-{token}",
        tmp_path / f"pwned-{token}",
        Path(__file__).resolve().parent / f"pwned-{token}",
    ]
    src = (
        "import os\nwritten = []\n"
        f"for p in [os.path.expanduser('~/home-{token}')] + {[str(t) for t in targets]!r}:\n"
        "    try:\n        open(p, 'w').write('x')\n        written.append(p)\n"
        "    except OSError:\n        pass\n"
        "print(written)\n"
    )
    res = run_program(gcd_program(src), limits=FAST)
    assert res.outcome == "failed"
    leaked = [t for t in targets if t.exists()]
    for t in leaked:
        t.unlink()
    if notes["filesystem_writes_confined"] or os.geteuid() == 0:
        # Landlock confines writes; without it, a dropped uid still cannot write into root's /root, the
        # repository or pytest's tmp_path, but world-writable /tmp is open: the notes must say so.
        allowed = set() if notes["filesystem_writes_confined"] else {Path("/tmp") / f"pwned-{token}"}
        assert set(leaked) <= allowed, leaked
    else:
        pytest.skip(f"non-root without Landlock: writes are not confined here ({notes['landlock']}); leaked {leaked}")
    assert_contained(res)


def test_environment_secret_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "fake-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("SANDBOX_FAKE_TOKEN", secret)
    monkeypatch.setenv("CATALOG_DB_URL", "postgresql://user:" + secret + "@db/x")
    src = (
        "import os, glob\nfound = []\n"
        "for k, v in os.environ.items():\n"
        f"    if {secret!r} in v or k == 'CATALOG_DB_URL':\n        found.append(k)\n"
        "for p in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        f"        if {secret!r}.encode() in open(p, 'rb').read():\n            found.append(p)\n"
        "    except OSError:\n        pass\n"
        "print('FOUND', found)\n"
        "assert not found\n"
    )
    res = run_program(src, limits=FAST, marker=True)
    assert res.outcome == "passed", (res.detail, res.stdout)
    assert "FOUND []" in res.stdout
    assert_contained(res)


def test_socket_to_a_local_listener_does_not_connect(notes: dict) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                connections.append(conn)
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    src = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "s.sendall(b'exfiltrated')\n"
    )
    try:
        res = run_program(gcd_program(src), limits=FAST)
    finally:
        stop.set()
        th.join()
        srv.close()
    assert res.outcome in ("error", "failed"), (res.outcome, res.detail)
    if notes["network"]["cut"]:
        assert not connections, "a sandboxed program reached a local listener"
        assert res.outcome == "error"
    else:
        assert any("network NOT cut" in n for n in notes["notes"])
    assert_contained(res)


def test_killing_the_parent_does_not_reach_us() -> None:
    me = os.getpid()
    src = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {me}, 1):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
    )
    res = run_program(gcd_program(src), limits=FAST)
    assert res.outcome == "failed"  # we are still here to assert anything at all
    assert_contained(res)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "exit()\n",
                                       "raise SystemExit\n", "import os\nos.execv('/bin/true', ['true'])\n"])  # fmt: skip
def test_early_exit_is_a_failure(exit_call: str) -> None:
    res = run_program(gcd_program(exit_call), limits=FAST)
    assert res.outcome == "failed", (res.outcome, res.detail)
    assert "exited before the tests finished" in res.detail
    assert_contained(res)


def test_exit_inside_the_candidate_is_a_failure() -> None:
    res = run_program(gcd_program("", "    import os\n    os._exit(0)\n"), limits=FAST)
    assert res.outcome == "failed"
    assert_contained(res)


# A check() that only uses abs(): a wrong completion (returns 99) passes if abs can be faked.
ABS_CHECK = (
    "def solve(x):\n    return 99\n\n"
    "def check(candidate):\n    assert abs(candidate(1.33) - 0.33) < 1e-6\n    return None\n\ncheck(solve)\n"
)


@pytest.mark.parametrize(
    ("preamble", "needle"),
    [
        ("import builtins\nbuiltins.abs = lambda x: 0\n", "builtins.abs"),
        ("def abs(x):\n    return 0\n", "shadows builtin 'abs'"),
        ("abs = lambda x: 0\n", "shadows builtin 'abs'"),
        ("import builtins\nglobals()['__builtins__'] = dict(vars(builtins), abs=lambda x: 0)\n", "__builtins__"),
        ("import builtins\nclass E(Exception):\n    pass\nAssertionError = E\nbuiltins.AssertionError = E\n", ""),
        ("print = lambda *a, **k: None\nexit = quit = lambda *a: None\nimport sys, os\nsys.exit = lambda *a: None\n"
         "os._exit = lambda *a: None\nos.write = lambda fd, b: len(b)\n", ""),
        ("import sys\n"
         "def tr(frame, event, arg):\n"
         "    if frame.f_code.co_name == 'check' and event == 'line' and 'assert' in __import__('linecache')"
         ".getline(frame.f_code.co_filename, frame.f_lineno):\n"
         "        frame.f_lineno = frame.f_lineno + 1\n"
         "    return tr\n"
         "sys.settrace(tr)\n", "trace"),
    ],
    ids=["builtins-module", "def-shadow", "lambda-shadow", "swap-builtins", "assertionerror", "print-exit-write",
         "settrace-skip"],
)
def test_overriding_builtins_does_not_pass(preamble: str, needle: str) -> None:
    res = run_program(preamble + ABS_CHECK, limits=FAST)
    assert res.outcome in ("failed", "error"), (res.outcome, res.detail)
    assert needle in res.detail, res.detail
    assert_contained(res)


def test_honest_abs_check_passes() -> None:
    res = run_program(ABS_CHECK.replace("return 99", "return x % 1.0"), limits=FAST)
    assert res.outcome == "passed", res.detail


FORGER = r'''
import os, re, sys, gc
cands = set()
def grab(data):
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    cands.update(re.findall(r"[0-9a-f]{32}", str(data)))
grab(" ".join(sys.argv))
for p in ("/proc/self/cmdline", "/proc/self/environ", __file__ if "__file__" in globals() else "/nonexistent"):
    try:
        grab(open(p, "rb").read())
    except OSError:
        pass
grab(sys._getframe().f_code.co_consts)
for fd in range(3, 64):
    try:
        os.set_blocking(fd, False)
        grab(os.read(fd, 1 << 20))
    except OSError:
        pass
for c in cands or {"0" * 32}:
    line = ("P " + c + "\n").encode()
    print("P " + c)
    for fd in range(1, 64):
        try:
            os.write(fd, line)
        except OSError:
            pass
sys.stdout.flush()
os._exit(0)
'''


def test_forging_the_marker_from_own_source_argv_env_or_fds_fails() -> None:
    res = run_program(gcd_program(FORGER), limits=FAST)
    assert res.outcome == "failed", (res.outcome, res.detail)
    assert res.detail in ("forged completion marker", "exited before the tests finished (exit status 0, no completion marker)") or \
        "exited before" in res.detail  # fmt: skip
    assert_contained(res)


def test_printing_a_fake_success_line_fails() -> None:
    src = "print('PASSED'); print('P ' + '0' * 32)\nimport os\nos._exit(0)\n"
    res = run_program(gcd_program(src), limits=FAST)
    assert res.outcome == "failed"
    assert_contained(res)
