"""Run untrusted Python programs (model-written code plus its tests) and score them honestly.

API
---
``Limits``          frozen dataclass of per-program limits (wall clock, CPU, address space, file size,
                    processes/threads, captured output).
``run_program``     runs one program, returns an ``ExecResult`` (outcome, detail, capped stdout/stderr,
                    duration, return code).
``run_many``        runs many programs in parallel across cores; results come back in input order.
``sandbox_notes``   what isolation is in force on this host (so a benchmark run can record it).
``missing_libraries``  which of a list of importable names the sandbox interpreter cannot import
                    (BigCodeBench: record ``skipped: missing library X``).

Process layout and isolation
----------------------------
The parent spawns, in a new session (``start_new_session``) and a fresh temporary directory that
is the child's cwd, HOME and TMPDIR, with stdin on /dev/null, an environment of a minimal PATH and
a few locale/thread-count variables (nothing inherited: no tokens, no ``CATALOG_DB_URL``)::

    unshare --net --pid --mount --mount-proc --fork --kill-child [-r]  python -I -S -B -c BOOT <cfg> <report>

(``-r`` maps the caller to root inside a user namespace when the caller is not root; the namespace
part is dropped, with a note, where ``unshare`` does not work).  ``BOOT`` is a fixed bootstrap in
this module; it reads its configuration, the per-run marker and the program text from a pipe
(``cfg-fd``), closes that pipe, and then, when it is pid 1 of the new pid namespace, forks: pid 1
stays behind as a tiny init (reaps orphans, reports the program's wait status) and the child

1. sets ``RLIMIT_CORE=0``, ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``
   (processes *and threads*), ``RLIMIT_NOFILE``;
2. sets ``PR_SET_NO_NEW_PRIVS`` and, where the kernel has Landlock, restricts itself: file-system
   writes only beneath its temporary directory (and ``/dev/null``), no TCP bind/connect (ABI >= 4),
   no signals to and no abstract-socket connections with processes outside the sandbox (ABI >= 6);
3. as root, drops to a fresh unprivileged uid/gid (random in a high range, no supplementary groups),
   so ``RLIMIT_NPROC`` is enforced (the kernel exempts root) and parallel sandboxes cannot signal or
   trace each other; the temporary directory is chowned to that uid.  When the interpreter lives
   under a directory that uid cannot traverse (``/root/.pyenv`` here), the mount namespace gets a
   tmpfs over that directory exposing only the interpreter's subtree (which also hides the rest of
   ``/root``);
4. adds site-packages (and the plain paths of ``.pth`` files, without executing their ``import``
   lines: ``-S`` saves ~20 ms per program) to ``sys.path``;
5. compiles and ``exec``s the program as ``__main__`` from memory (no file on disk).

Warm interpreter (the default where the host has pid and mount namespaces): starting Python and
its namespaces is most of the cost of a short program (~50 of ~65 ms), so each worker thread keeps
one sandbox interpreter, ``unshare --net --mount [-r] python -I -S -B -c BOOT zygote`` (``_Zygote``),
that has done the imports, the interpreter exposure and the site-packages scan once.  Per program it
forks a session leader that unshares fresh pid, mount and IPC namespaces; its child is pid 1 (the
init above) with a /proc of its own, and forks the program process, which applies steps 1-5 exactly
as a fresh interpreter does.  The program's stdout, stderr and report pipes are made by the parent
and passed with the configuration, marker and program over a unix socket (SCM_RIGHTS), so the marker
still never appears in argv, the environment or a file, and the zygote, which never runs program
code, cannot be signalled, traced or read by it (other uid, Landlock, and not in its pid namespace).
Every process of the tree has a parent-death signal, so nothing outlives the worker.  The zygote
probes that it can make those namespaces before it serves; where it cannot (or
``EVALUATOR_SANDBOX_WARM=0``), one fresh interpreter per program is started as described above.

The network namespace has only a downed loopback, so nothing (not even 127.0.0.1) is reachable.
The wall-clock timeout kills the process group, which takes ``unshare``, init and therefore the
whole pid namespace with it; the parent then scans ``/proc`` for anything still in that pid
namespace, with that uid, or in that session, kills it, and repeats until nothing is left.
stdout/stderr are read incrementally and the program is killed once either exceeds the cap.

Scoring: why an early exit or a forged marker cannot pass
---------------------------------------------------------
A program passes only if the bootstrap writes ``P <marker>`` on the report pipe, which it does only
after ``exec`` of the whole program (completion, tests and the final ``check(...)``) returned
normally and a few integrity checks hold.  The marker is ``secrets.token_hex(16)`` per run, and it is
never in the program text, the command line, the environment or a file: it travels on the
configuration pipe, which the bootstrap drains and closes before any program code runs, so reading
``__file__``, ``sys.argv``, ``/proc/self/cmdline``, ``/proc/self/environ``, its own code objects'
constants or any inherited fd does not reveal it.  It is compared against the report pipe, not
stdout, so output caps and interleaving do not matter.  ``sys.exit``/``os._exit``/``exec*``/a signal
before the end leaves no pass line: outcome ``failed`` ("exited before the tests finished").
The integrity checks after ``exec`` (each a ``failed`` with a named reason): no entry of the
``builtins`` module replaced or deleted (``builtins.abs = lambda x: 0``), the module's
``__builtins__`` not swapped, no builtin name shadowed by a function/class the program itself
defines (``def abs(x): return 0`` at module level), no trace/profile hook left installed.  ``assert``
raises the interpreter's own AssertionError whatever the name is bound to, and the bootstrap holds
its own references to ``os.write``/``os._exit``, so rebinding ``print``, ``AssertionError``,
``exit`` or ``sys.exit`` changes nothing.

Residual risk (documented, not defended): the program and its tests share one interpreter, so code
written against this harness can still cheat in-process: read the marker from the bootstrap's stack
frame or heap (``sys._getframe(1).f_locals``, ``gc``), jump over asserts with ``sys.settrace`` and
remove the hook, or return an object whose ``__eq__`` is always true.  No separate-process design
fixes that while the tests call the untrusted function in the same process; the protection above
is against ordinary cheating (early exit, printing a fake success line, reading its own source).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["passed", "failed", "timeout", "error", "killed", "skipped"]

PROGRAM_FILENAME = "<program>"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_UID_BASE = 1_900_000_000
_UID_SPAN = 200_000_000
_REPORT_CAP = 64 * 1024
# Fork programs from a warm sandbox interpreter where the host allows (see _Zygote); set
# EVALUATOR_SANDBOX_WARM=0 to start one fresh interpreter per program instead.
WARM_INTERPRETER = os.environ.get("EVALUATOR_SANDBOX_WARM", "1") != "0"


@dataclass(frozen=True)
class Limits:
    """Per-program limits.  ``cpu_s`` defaults to the wall-clock timeout (rounded up)."""

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_mb: int = 2048  # RLIMIT_AS (address space)
    file_size_mb: int = 64  # RLIMIT_FSIZE
    max_processes: int = 64  # RLIMIT_NPROC: processes and threads of the sandbox uid
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_output_bytes: int = 1 << 20  # per stream (stdout, stderr); the program is killed past it

    def cpu_seconds(self) -> int:
        return int(self.cpu_s if self.cpu_s is not None else max(1, -(-self.timeout_s // 1)))


@dataclass
class ExecResult:
    outcome: Outcome
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    returncode: int | None = None
    leftovers_killed: int = 0  # stray processes found and killed after the program ended
    sandbox: dict[str, Any] = field(default_factory=dict)  # what the bootstrap applied (uid, landlock, ...)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# The bootstrap: runs inside the sandbox, before (and after) the untrusted program.
# --------------------------------------------------------------------------------------------
BOOT = r'''
import os, sys
def _parse(data):
    import json
    head, _, body = data.partition(b"\n")
    cfg = json.loads(head)
    n = cfg["marker_len"]
    return cfg, body[:n], body[n:]

def _reporter(rep_fd):
    import json
    _write = os.write
    def report(kind, obj):
        try:
            _write(rep_fd, (kind + " " + json.dumps(obj) + "\n").encode())
        except Exception:
            pass
    return report

def _boot():
    # one program per interpreter: configuration, marker and program arrive on a pipe
    cfg_fd, rep_fd = int(sys.argv[1]), int(sys.argv[2])
    chunks = []
    while True:
        b = os.read(cfg_fd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(cfg_fd)
    cfg, mk, body = _parse(b"".join(chunks))
    del chunks
    notes = {}
    if cfg["init"] and os.getpid() == 1:
        if cfg["expose"]:
            notes["expose"] = _expose(cfg["expose"], cfg["cwd"])
        _become_init(rep_fd)
    _program(cfg, mk, body, rep_fd, notes)

def _become_init(rep_fd):
    # fork: the parent stays behind as pid 1 of the pid namespace (reaps orphans, reports the
    # program's wait status) and never returns; the child returns and becomes the program
    pid = os.fork()
    if pid == 0:
        return
    report = _reporter(rep_fd)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1); os.dup2(devnull, 2)
    report("H", {"pidns": os.readlink("/proc/self/ns/pid"), "role": "init"})
    status = None
    while True:
        try:
            p, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if p == pid:
            status = st
            break
    report("W", {"status": status})
    os._exit(0)

def _program(cfg, mk, body, rep_fd, notes):
    import resource
    _write, _exit = os.write, os._exit
    report = _reporter(rep_fd)
    L = cfg["limits"]
    def lim(res, soft, hard=None):
        try:
            resource.setrlimit(res, (soft, soft if hard is None else hard))
        except (ValueError, OSError) as e:
            notes.setdefault("rlimit_errors", []).append("%s: %s" % (res, e))
    lim(resource.RLIMIT_CORE, 0)
    lim(resource.RLIMIT_CPU, L["cpu_s"], L["cpu_s"] + 1)
    lim(resource.RLIMIT_AS, L["memory_mb"] << 20)
    lim(resource.RLIMIT_FSIZE, L["file_size_mb"] << 20)
    lim(resource.RLIMIT_NOFILE, L["max_open_files"])
    lim(resource.RLIMIT_NPROC, L["nproc"])
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    notes["no_new_privs"] = libc.prctl(38, 1, 0, 0, 0) == 0
    notes["landlock"] = _landlock(libc, cfg["cwd"]) if cfg["landlock"] else "disabled"
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
    os.chdir(cfg["cwd"])
    notes["uid"] = os.getuid()
    notes["pid"] = os.getpid()
    notes["cwd"] = cfg["cwd"]
    try:
        notes["pidns"] = os.readlink("/proc/self/ns/pid")
    except OSError:
        pass
    report("H", notes)
    if not cfg.get("site_done"):
        _site()
    text = body.decode("utf-8", "replace")
    del body
    _run(text, mk if cfg["use_marker"] else None, report, _write, _exit, rep_fd)

def _zygote():
    # A warm sandbox interpreter: started once per worker inside the network and mount
    # namespaces, it forks one process tree per program (fresh pid, mount and IPC namespaces,
    # /proc of its own), so a program costs a fork instead of an interpreter start.
    # what the bootstrap and the programs' error reports import, imported once here instead of
    # in every forked program
    import ctypes, json, socket, linecache, traceback, builtins, resource
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent():
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL

    die_with_parent()  # gone with the thread that started it
    ctl = socket.socket(fileno=int(sys.argv[2]))
    expose = json.loads(sys.argv[3])
    notes = {}
    if expose:
        stage = "/tmp/.sandbox-stage-%d" % os.getpid()
        os.mkdir(stage, 0o700)
        try:
            notes["expose"] = _expose(expose, stage)
        finally:
            os.rmdir(stage)
    _site()
    notes["warm"] = True
    CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x20000, 0x8000000, 0x20000000
    MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8

    def fork_isolated():
        # in a session leader: new pid, mount and IPC namespaces, then fork; the child is pid 1 of
        # the new pid namespace with a /proc that shows only its own processes.  Returns fork()'s
        # value; a failure is written to stderr and exits 70 (in whichever process it happens).
        if libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC) != 0:
            os.write(2, b"sandbox: unshare(pid, mount, ipc) failed (errno %d)\n" % ctypes.get_errno())
            os._exit(70)
        g = os.fork()
        if g == 0:
            die_with_parent()
            if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
                os.write(2, b"sandbox: mounting /proc failed (errno %d)\n" % ctypes.get_errno())
                os._exit(70)
        return g

    def exit_code(st):
        code = os.waitstatus_to_exitcode(st)
        return code if code >= 0 else 128 - code

    # Refuse to serve (the parent then starts one interpreter per program) unless that works here.
    pid = os.fork()
    if pid == 0:
        g = fork_isolated()
        os._exit(0 if g == 0 else exit_code(os.waitpid(g, 0)[1]))
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        ctl.sendall(b"F probe failed\n")
        os._exit(0)
    ctl.sendall(b"R " + json.dumps(notes).encode() + b"\n")
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 16, 3)
        except OSError:
            os._exit(0)
        while data and b" " not in data:  # the length prefix, however the stream was cut
            more = ctl.recv(64)
            if not more:
                os._exit(0)
            data += more
        if not data:
            os._exit(0)
        need = int(data[: data.index(b" ")])
        data = data[data.index(b" ") + 1 :]
        while len(data) < need:
            more = ctl.recv(1 << 20)
            if not more:
                os._exit(0)
            data += more
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                ctl.close()
                cfg, mk, body = _parse(data)
                cfg["site_done"] = True
                del data
                out_w, err_w, rep_w = fds
                os.dup2(out_w, 1); os.dup2(err_w, 2)
                os.close(out_w); os.close(err_w)
                os.setsid()
                die_with_parent()
                g = fork_isolated()
                if g == 0:
                    os.environ["HOME"] = os.environ["TMPDIR"] = cfg["cwd"]
                    _become_init(rep_w)
                    _program(cfg, mk, body, rep_w, dict(notes))
                del cfg, mk, body
                os.close(rep_w)
                code = exit_code(os.waitpid(g, 0)[1])
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        del data
        ctl.sendall(b"S %d\n" % pid)
        _, st = os.waitpid(pid, 0)
        ctl.sendall(b"X %d\n" % st)

def _site():
    # the interpreter runs with -S: add site-packages and the plain paths of its .pth files, but do not
    # execute their `import` lines (editable-install finders cost ~20 ms per program and are not needed)
    import site
    site.setquit()  # exit()/quit() builtins, as in a normal interpreter
    site.sethelper()
    try:
        site.venv(set())  # read pyvenv.cfg: sys.prefix becomes the venv, as site.main() would do
    except Exception:
        pass
    for d in site.getsitepackages():
        if not os.path.isdir(d) or d in sys.path:
            continue
        sys.path.append(d)
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".pth"))
        except OSError:
            continue
        for n in names:
            try:
                with open(os.path.join(d, n)) as fh:
                    for line in fh:
                        line = line.strip()
                        if line and not line.startswith(("#", "import ", "import\t")):
                            p = os.path.join(d, line)
                            if os.path.isdir(p) and p not in sys.path:
                                sys.path.append(p)
            except OSError:
                pass

def _landlock(libc, root):
    import ctypes
    abi = libc.syscall(444, None, 0, 1)
    if abi < 1:
        return "unavailable (errno %d)" % ctypes.get_errno()
    write = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << i for i in range(6, 13))
    if abi >= 2:
        write |= 1 << 13
    if abi >= 3:
        write |= 1 << 14
    net = 3 if abi >= 4 else 0
    scoped = 3 if abi >= 6 else 0
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    attr = (ctypes.c_uint64 * 3)(write, net, scoped)
    rs = libc.syscall(444, ctypes.byref(attr), size, 0)
    if rs < 0:
        return "create_ruleset failed (errno %d)" % ctypes.get_errno()
    class PB(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]
    for path, acc in ((root, write), ("/dev/null", (1 << 1) | ((1 << 14) if abi >= 3 else 0))):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        pb = PB(acc, fd)
        r = libc.syscall(445, rs, 1, ctypes.byref(pb), 0)
        os.close(fd)
        if r != 0:
            return "add_rule %s failed (errno %d)" % (path, ctypes.get_errno())
    if libc.syscall(446, rs, 0) != 0:
        return "restrict_self failed (errno %d)" % ctypes.get_errno()
    os.close(rs)
    return "abi %d: writes only in sandbox dir%s%s" % (
        abi, "; tcp bind/connect denied" if net else "", "; signals/abstract sockets scoped" if scoped else "")

def _expose(paths, stage_parent):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    MS_BIND, MS_REC, MS_MOVE, MS_NOSUID, MS_NODEV = 4096, 16384, 8192, 2, 4
    done = []
    def blocked(p):
        parts = [x for x in p.split("/") if x]
        cur = "/"
        for i in range(len(parts)):
            nxt = os.path.join(cur, parts[i])
            if not (os.stat(cur).st_mode & 0o001):
                return cur, parts[i]
            cur = nxt
        return None
    for p in paths:
        for _ in range(8):
            hit = blocked(p)
            if hit is None:
                break
            top, child = hit
            stage = os.path.join(stage_parent, ".stage")
            os.mkdir(stage)
            ok = libc.mount(os.path.join(top, child).encode(), stage.encode(), None, MS_BIND | MS_REC, None) == 0
            ok = ok and libc.mount(b"tmpfs", top.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k") == 0
            if ok:
                os.mkdir(os.path.join(top, child), 0o755)
                ok = libc.mount(stage.encode(), os.path.join(top, child).encode(), None, MS_MOVE, None) == 0
            os.rmdir(stage)
            if not ok:
                done.append("%s: mount failed (errno %d)" % (top, ctypes.get_errno()))
                break
            done.append("%s -> only %s visible" % (top, child))
    return done

def _run(text, mk, report, _write, _exit, rep_fd):
    import builtins, linecache
    _getattr, _isinstance, _id = getattr, isinstance, id
    linecache.cache["<program>"] = (len(text), None, text.splitlines(True), "<program>")
    lines = text.splitlines()
    ns = {"__name__": "__main__", "__builtins__": builtins, "__doc__": None}
    snap = dict(builtins.__dict__)
    gettrace, getprofile = sys.gettrace, sys.getprofile
    stdout, stderr = sys.__stdout__, sys.__stderr__
    sys.argv = ["<program>"]
    def flush():
        for s in (sys.stdout, sys.stderr, stdout, stderr):
            try:
                s.flush()
            except BaseException:
                pass
    try:
        code = compile(text, "<program>", "exec")
        del text
        exec(code, ns)
    except BaseException as e:
        info = {"type": type(e).__name__, "message": str(e)[:2000]}
        if _isinstance(e, SystemExit):
            info["message"] = repr(e.code)
        line = None
        if _isinstance(e, SyntaxError) and e.filename == "<program>":
            line = e.lineno
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<program>":
                line = tb.tb_lineno
            tb = tb.tb_next
        if line:
            info["line"] = line
            if 0 < line <= len(lines):
                info["source"] = lines[line - 1].strip()[:500]
        try:
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__, file=stderr)
        except BaseException:
            pass
        flush()
        report("E", info)
        _exit(1)
    problems = []
    missing = object()
    for k, v in snap.items():
        if builtins.__dict__.get(k, missing) is not v:
            problems.append("builtins.%s was replaced or deleted" % k)
    b = ns.get("__builtins__")
    if b is not builtins and b is not builtins.__dict__:
        problems.append("__builtins__ was swapped")
    for k, v in list(ns.items()):
        if k in snap and k not in ("__name__", "__doc__", "__builtins__") and v is not snap[k]:
            f = _getattr(v, "func", v)
            c = _getattr(f, "__code__", None)
            mod = _getattr(f, "__module__", None) if _isinstance(f, type) else None
            if (c is not None and _getattr(c, "co_filename", None) == "<program>") or mod == "__main__":
                problems.append("the program shadows builtin %r with its own definition" % k)
    if gettrace() is not None or getprofile() is not None:
        problems.append("a trace/profile hook was left installed")
    flush()
    if problems:
        report("T", {"problems": problems})
        _exit(1)
    if mk is not None:
        _write(rep_fd, b"P " + mk + b"\n")
    else:
        report("D", {})
    _exit(0)

_zygote() if sys.argv[1] == "zygote" else _boot()
'''


# --------------------------------------------------------------------------------------------
# Host plan: what isolation this machine allows (probed once per interpreter).
# --------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    python: str
    prefix: list[str]  # argv before the interpreter (unshare ...)
    init: bool  # the interpreter runs as pid 1 of a new pid namespace
    netns: bool
    mountns: bool
    drop_uid: bool
    expose: list[str]
    landlock: bool = True
    notes: list[str] = field(default_factory=list)


def _accessible_to_others(path: str) -> bool:
    p = Path(path)
    for anc in [*reversed(p.parents), p]:
        try:
            if not (anc.stat().st_mode & 0o001):
                return False
        except OSError:
            return False
    return True


@lru_cache(maxsize=None)
def _plan(python: str) -> _Plan:
    notes: list[str] = []
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    prefix: list[str] = []
    netns = mountns = init = False
    if unshare is None:
        notes.append("network NOT cut: no `unshare` binary on this host")
    else:
        user = [] if root else ["-r"]
        for flags in (["--net", "--pid", "--mount", "--mount-proc"], ["--net", "--pid", "--mount"], ["--net", "--pid"],
                      ["--net"]):  # fmt: skip
            extra = ["--fork", "--kill-child"] if "--pid" in flags else []
            cmd = [unshare, *user, *flags, *extra]
            try:
                r = subprocess.run([*cmd, "true"], capture_output=True, text=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired) as exc:
                notes.append(f"`{' '.join(cmd)}` failed: {exc}")
                continue
            if r.returncode == 0:
                prefix, netns = [*cmd, "--"], True
                init, mountns = "--pid" in flags, "--mount" in flags
                break
            notes.append(f"`{' '.join(cmd)} true` failed: {r.stderr.strip()[:200]}")
        if not netns:
            notes.append("network NOT cut: no new network namespace could be created here")
    drop = False
    expose: list[str] = []
    if root:
        out = subprocess.run(
            [python, "-I", "-c", "import sys,os;print(os.path.realpath(sys.executable));print(sys.prefix);print(sys.base_prefix)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        paths = sorted({os.path.dirname(p) if i == 0 else p for i, p in enumerate(out.stdout.split())})
        blocked = [p for p in paths if not _accessible_to_others(p)]
        if not blocked:
            drop = True
        elif mountns:
            drop, expose = True, blocked
            notes.append(f"interpreter under a directory other users cannot enter; the mount namespace exposes only {blocked}")
        else:
            notes.append(f"running as root but NOT dropping privileges: the interpreter {blocked} is not reachable by an unprivileged user and no mount namespace is available")
    return _Plan(python=python, prefix=prefix, init=init, netns=netns, mountns=mountns, drop_uid=drop,
                 expose=expose, notes=notes)  # fmt: skip


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def _alloc_uid() -> int:
    with _uid_lock:
        while True:
            uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
            if uid not in _uids_in_use:
                try:
                    pwd.getpwuid(uid)
                    continue
                except KeyError:
                    _uids_in_use.add(uid)
                    return uid


def _free_uid(uid: int) -> None:
    with _uid_lock:
        _uids_in_use.discard(uid)


# --------------------------------------------------------------------------------------------
# Killing and verifying nothing is left.
# --------------------------------------------------------------------------------------------
def _proc_matches(pid: int, uid: int | None, pidns: str | None, sid: int) -> bool:
    try:
        if uid is not None and os.stat(f"/proc/{pid}").st_uid == uid:
            return True
        if pidns is not None and os.readlink(f"/proc/{pid}/ns/pid") == pidns:
            return True
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return int(fields[3]) == sid  # session id
    except (OSError, ValueError, IndexError):
        return False


def _survivors(uid: int | None, pidns: str | None, sid: int) -> list[int]:
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and _proc_matches(int(name), uid, pidns, sid):
            out.append(int(name))
    return out


def _kill_everything(pgid: int, uid: int | None, pidns: str | None) -> int:
    """SIGKILL the process group, then anything left in the sandbox's pid namespace, uid or session."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    killed = 0
    for attempt in range(200):
        left = _survivors(uid, pidns, pgid)
        # a zombie of our own direct child (not yet reaped) is not a survivor
        left = [p for p in left if not _is_zombie(p)]
        if not left:
            return killed
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01 if attempt < 50 else 0.05)
    raise RuntimeError(f"sandbox processes survive SIGKILL: {left}")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def _rmtree(path: str) -> None:
    def fix(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


# --------------------------------------------------------------------------------------------
# Running one program.
# --------------------------------------------------------------------------------------------
def _env(tmp: str) -> dict[str, str]:
    return {
        "PATH": SAFE_PATH,
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def run_program(source: str, *, limits: Limits = Limits(), marker: bool = True,
                python: str | None = None) -> ExecResult:  # fmt: skip
    """Run one Python program in the sandbox.

    With ``marker=True`` (scoring) the outcome is ``passed`` only when the whole program ran to its
    end and the integrity checks held; with ``marker=False`` it is ``passed`` when it exited 0.
    """
    plan = _plan(python or sys.executable)
    tmp = tempfile.mkdtemp(prefix="sandbox-")
    uid = _alloc_uid() if plan.drop_uid else None
    start = time.monotonic()
    try:
        if uid is not None:
            os.chown(tmp, uid, uid)
        os.chmod(tmp, 0o700)
        return _run_in(plan, source, limits, marker, tmp, uid, start)
    finally:
        _rmtree(tmp)
        if uid is not None:
            _free_uid(uid)


class _Launched:
    """A started program, whichever way it was started: what the parent reads and kills."""

    def __init__(self, pgid: int, fds: dict[str, int], exited: Callable[[], bool],
                 finish: Callable[[], int | None]) -> None:  # fmt: skip
        self.pgid = pgid  # the session (and process group) that holds the whole program
        self.fds = fds  # read ends of the program's stdout ("out"), stderr ("err") and report pipe ("rep")
        self.exited = exited  # whether the program's top process has ended
        self.finish = finish  # after everything is killed: reap, close, return the exit code


def _run_in(plan: _Plan, source: str, limits: Limits, marker: bool, tmp: str, uid: int | None,
            start: float) -> ExecResult:  # fmt: skip
    mark = secrets.token_hex(16).encode()
    nproc = limits.max_processes
    if uid is None and not plan.netns:  # no user namespace, no fresh uid: count our own processes
        nproc += _count_uid_tasks(os.getuid())
    cfg = {
        "init": plan.init, "expose": plan.expose, "cwd": tmp, "uid": uid, "gid": uid,
        "landlock": plan.landlock, "use_marker": marker, "marker_len": len(mark),
        "limits": {"cpu_s": limits.cpu_seconds(), "memory_mb": limits.memory_mb, "file_size_mb": limits.file_size_mb,
                   "max_open_files": limits.max_open_files, "nproc": nproc},
    }  # fmt: skip
    payload = json.dumps(cfg).encode() + b"\n" + mark + source.encode("utf-8", "surrogatepass")
    launched = None
    zygote = _Zygote.for_thread(plan)
    if zygote is not None:
        launched = zygote.launch(payload)
    if launched is None:
        launched = _launch_fresh(plan, payload, tmp)
    bufs: dict[str, bytearray] = {"out": bytearray(), "err": bytearray(), "rep": bytearray()}
    caps = {"out": limits.max_output_bytes, "err": limits.max_output_bytes, "rep": _REPORT_CAP}
    sel = selectors.DefaultSelector()
    for name, fd in launched.fds.items():
        sel.register(fd, selectors.EVENT_READ, name)
    deadline = start + limits.timeout_s
    reason: str | None = None
    exited_at: float | None = None
    pidns: str | None = None
    leftovers = 0
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                reason = "timeout"
                break
            if exited_at is None and launched.exited():
                exited_at = now
            if exited_at is not None and now - exited_at > 1.0:
                break  # the top process is gone; strays holding the pipes are killed below
            for key, _ in sel.select(timeout=min(0.2, deadline - now)):
                name = key.data
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[name]
                room = caps[name] + 1 - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(buf) > caps[name] and name != "rep":
                    reason = "output"
                if name == "rep" and pidns is None:
                    pidns = _pidns_from(bufs["rep"])
            if reason:
                break
    finally:
        pidns = pidns or _pidns_from(bufs["rep"])
        leftovers = _kill_everything(launched.pgid, uid, pidns)
        sel.close()
        for fd in launched.fds.values():
            os.close(fd)
        rc = launched.finish()
    duration = time.monotonic() - start
    res = _score(bufs, rc, reason, marker, mark, limits)
    res.duration_s = round(duration, 4)
    res.leftovers_killed = leftovers
    for kind, obj in _reports(bytes(bufs["rep"])):
        if kind == "H" and isinstance(obj, dict) and "uid" in obj:
            res.sandbox = obj
            break
    return res


def _launch_fresh(plan: _Plan, payload: bytes, tmp: str) -> _Launched:
    """A fresh interpreter for this one program: ``unshare ... python -c BOOT`` in a new session."""
    cfg_r, cfg_w = os.pipe()
    rep_r, rep_w = os.pipe()
    argv = [*plan.prefix, plan.python, "-I", "-S", "-B", "-c", BOOT, str(cfg_r), str(rep_w)]
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(cfg_r, rep_w), cwd=tmp, env=_env(tmp), start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(cfg_r)
        os.close(rep_w)
    writer = threading.Thread(target=_write_all, args=(cfg_w, payload), daemon=True)
    writer.start()
    assert proc.stdout and proc.stderr
    fds = {"out": os.dup(proc.stdout.fileno()), "err": os.dup(proc.stderr.fileno()), "rep": rep_r}
    proc.stdout.close()
    proc.stderr.close()

    def finish() -> int | None:
        proc.wait()
        writer.join(timeout=5)
        return proc.returncode

    return _Launched(proc.pid, fds, lambda: proc.poll() is not None, finish)


class _Zygote:
    """A warm sandbox interpreter (``BOOT`` in zygote mode), one per worker thread and interpreter.

    Starting Python and its namespaces costs ~50 ms per program; the zygote pays that once, inside
    ``unshare --net --mount``, then forks each program into fresh pid, mount and IPC namespaces
    with its own /proc, where the same bootstrap code applies the same limits, Landlock domain and
    uid drop as a fresh interpreter would.  The program's stdout, stderr and report pipes are
    created here and passed over a unix socket (SCM_RIGHTS) with the configuration, marker and
    program text; the marker therefore still never touches argv, the environment or a file.
    Protocol on the socket: zygote ``R <notes>`` once; then per program, parent ``<n> <payload>``
    plus three fds, zygote ``S <pid>`` (the program's session leader) and ``X <wait status>``.
    """

    _local = threading.local()
    _broken: set[str] = set()  # interpreters whose zygote failed to start: use fresh interpreters

    def __init__(self, plan: _Plan) -> None:
        parent, child = socket.socketpair()
        self.sock = parent
        self._ready = selectors.DefaultSelector()
        self._ready.register(parent, selectors.EVENT_READ)
        self._buf = b""
        self._errfile = tempfile.TemporaryFile()
        prefix = [a for a in plan.prefix if a not in ("--pid", "--mount-proc", "--fork", "--kill-child")]
        argv = [*prefix, plan.python, "-I", "-S", "-B", "-c", BOOT,
                "zygote", str(child.fileno()), json.dumps(plan.expose)]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errfile,
                pass_fds=(child.fileno(),), cwd="/", env=_env("/"), start_new_session=True,
            )  # fmt: skip
        finally:
            child.close()
        if self._line(timeout=60)[0] != "R":
            raise OSError(f"warm sandbox interpreter did not start: {self._stderr()}")

    @classmethod
    def for_thread(cls, plan: _Plan) -> "_Zygote | None":
        """This thread's zygote for ``plan``'s interpreter (started on first use), or None where the
        host lacks the pid/mount namespaces it needs or it failed to start (fresh interpreters then)."""
        if not (plan.init and plan.mountns and plan.netns) or plan.python in cls._broken or not WARM_INTERPRETER:
            return None
        zygotes: dict[str, _Zygote] = cls._local.__dict__.setdefault("zygotes", {})
        z = zygotes.get(plan.python)
        if z is not None and z.proc.poll() is None:
            return z
        try:
            zygotes[plan.python] = z = cls(plan)
        except OSError as exc:
            cls._broken.add(plan.python)
            plan.notes.append(f"warm sandbox interpreter unavailable, one interpreter per program: {exc}")
            return None
        return z

    def launch(self, payload: bytes) -> _Launched | None:
        """Hand one program to the zygote; None when it is gone (the caller starts a fresh interpreter)."""
        pipes = [os.pipe() for _ in range(3)]
        try:
            socket.send_fds(self.sock, [b"%d " % len(payload) + payload[:1 << 15]], [w for _, w in pipes])
            if len(payload) > 1 << 15:
                self.sock.sendall(payload[1 << 15 :])
            kind, rest = self._line(timeout=30)
        except OSError:
            kind, rest = "", ""
        finally:
            for _, w in pipes:
                os.close(w)
        if kind != "S":
            for r, _ in pipes:
                os.close(r)
            self.close()
            return None
        pid = int(rest)
        status: list[int] = []

        def exited() -> bool:
            if not status:
                line = self._line(timeout=0)
                if line[0] == "X":
                    status.append(int(line[1]))
            return bool(status)

        def finish() -> int | None:
            if not status:
                kind, rest = self._line(timeout=10)
                if kind != "X":
                    self.close()  # out of step or stuck: never reuse it
                    return None
                status.append(int(rest))
            return os.waitstatus_to_exitcode(status[0])

        return _Launched(pid, dict(zip(("out", "err", "rep"), (r for r, _ in pipes))), exited, finish)

    def _line(self, timeout: float) -> tuple[str, str]:
        """The next ``KIND rest`` line from the zygote, waiting at most ``timeout`` seconds; ("", "")
        when none came (or the zygote is gone)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if not self._ready.select(max(deadline - time.monotonic(), 0)):
                return "", ""
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return "", ""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        kind, _, rest = line.decode().partition(" ")
        return kind, rest

    def _stderr(self) -> str:
        self._errfile.seek(0)
        return self._errfile.read().decode("utf-8", "replace").strip()[-500:] or f"exit {self.proc.poll()}"

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._ready.close()
        self.sock.close()
        self._errfile.close()


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass
    finally:
        os.close(fd)


def _count_uid_tasks(uid: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


def _reports(rep: bytes) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for line in rep.decode("utf-8", "replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "P":
            out.append((kind, rest))
            continue
        try:
            out.append((kind, json.loads(rest)))
        except ValueError:
            out.append(("?", line))
    return out


def _pidns_from(rep: bytes) -> str | None:
    for kind, obj in _reports(bytes(rep)):
        if kind == "H" and isinstance(obj, dict) and isinstance(obj.get("pidns"), str):
            return obj["pidns"]
    return None


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _score(bufs: dict[str, bytearray], rc: int | None, reason: str | None, marker: bool, mark: bytes,
           limits: Limits) -> ExecResult:  # fmt: skip
    cap = limits.max_output_bytes

    def text(b: bytearray) -> str:
        s = bytes(b[:cap]).decode("utf-8", "replace")
        return s + ("\n[... truncated]" if len(b) > cap else "")

    out, err = text(bufs["out"]), text(bufs["err"])
    reps = _reports(bytes(bufs["rep"]))
    status: int | None = None
    for kind, obj in reps:
        if kind == "W" and isinstance(obj, dict) and isinstance(obj.get("status"), int):
            status = obj["status"]
    code = rc
    if status is not None:
        code = os.waitstatus_to_exitcode(status)
    elif rc is not None and rc > 128 and rc - 128 < 65:
        code = -(rc - 128)

    def result(outcome: Outcome, detail: str) -> ExecResult:
        return ExecResult(outcome=outcome, detail=detail, stdout=out, stderr=err, returncode=code)

    passes = [obj for kind, obj in reps if kind == "P"]
    if marker and passes:
        if any(p == mark.decode() for p in passes):
            return result("passed", "")
        return result("failed", "forged completion marker")
    if reason == "timeout":
        return result("timeout", f"wall-clock timeout after {limits.timeout_s:g}s")
    if reason == "output":
        return result("killed", f"killed: output limit ({cap} bytes per stream) exceeded")
    for kind, obj in reversed(reps):
        if kind == "T" and isinstance(obj, dict):
            return result("failed", "tampering: " + "; ".join(map(str, obj.get("problems", []))))
        if kind == "E" and isinstance(obj, dict):
            return result(*_exception_outcome(obj))
    if not marker and code == 0 and any(k == "D" for k, _ in reps):
        return result("passed", "")
    if code is not None and code < 0:
        sig = _signame(-code)
        if sig == "SIGXCPU":
            return result("timeout", f"killed: CPU time limit ({limits.cpu_seconds()}s, {sig})")
        if sig in ("SIGSEGV", "SIGBUS", "SIGABRT") and "MemoryError" in err:
            return result("killed", f"killed: memory ({sig})")
        return result("killed", f"killed by {sig}")
    if not any(k == "H" and isinstance(o, dict) and "uid" in o for k, o in reps):
        return result("error", f"sandbox failed to start (exit {code}): {err.strip()[-500:]}")
    tail = err.strip().splitlines()[-1:] if err.strip() else []
    if "MemoryError" in "".join(tail):
        return result("killed", "killed: memory (MemoryError)")
    return result("failed", f"exited before the tests finished (exit status {code}, no completion marker)")


def _exception_outcome(info: dict[str, Any]) -> tuple[Outcome, str]:
    typ = str(info.get("type", "Exception"))
    msg = str(info.get("message", ""))
    where = ""
    if info.get("line"):
        where = f" at line {info['line']}"
        if info.get("source"):
            where += f": {info['source']}"
    if typ == "SystemExit":
        return "failed", f"exited before the tests finished: SystemExit({msg}){where}"
    if typ == "AssertionError":
        return "failed", f"AssertionError{': ' + msg if msg else ''}{where}"
    if typ == "MemoryError":
        return "killed", f"killed: memory (MemoryError){where}"
    if typ == "KeyboardInterrupt":
        return "killed", f"killed: KeyboardInterrupt{where}"
    return "error", f"{typ}: {msg}{where}"


def run_many(programs: Sequence[str], limits: Limits = Limits(), workers: int | None = None, *,
             marker: bool = True, python: str | None = None) -> list[ExecResult]:  # fmt: skip
    """Run programs in parallel (``workers`` at a time, default: CPU count); results in input order."""
    if not programs:
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(programs)))
    _plan(python or sys.executable)  # probe once, outside the pool
    pool = _pool(workers)
    return list(pool.map(lambda src: run_program(src, limits=limits, marker=marker, python=python), programs))


@lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per worker count for the process's life: its threads keep their warm sandbox
    interpreters between calls (a run scores chunk after chunk)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sandbox{workers}")


# --------------------------------------------------------------------------------------------
# Notes and helpers.
# --------------------------------------------------------------------------------------------
_PROBE = r"""
import json, os, socket, resource
net = "cut"
try:
    s = socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", 9)); net = "reachable"
except OSError as e:
    net = "unreachable: %s" % e.strerror if e.strerror else str(e)
ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "loopback_connect": net, "interfaces": ifaces,
                  "nproc": resource.getrlimit(resource.RLIMIT_NPROC), "as": resource.getrlimit(resource.RLIMIT_AS)}))
"""


@lru_cache(maxsize=None)
def _notes(python: str, limits: Limits) -> dict[str, Any]:
    plan = _plan(python)
    res = run_program(_PROBE, limits=limits, marker=False, python=python)
    inside: dict[str, Any] = {}
    try:
        inside = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        inside = {"probe_failed": f"{res.outcome}: {res.detail} {res.stderr[-500:]}"}
    hello = res.sandbox
    landlock = hello.get("landlock", "unknown")
    root = os.geteuid() == 0
    return {
        "host_user": "root" if root else pwd.getpwuid(os.getuid()).pw_name,
        "interpreter": python,
        "command_prefix": plan.prefix,
        "network": {
            "cut": plan.netns,
            "how": "new network namespace (unshare --net): only a downed loopback" if plan.netns else "not cut",
            "probe": inside.get("loopback_connect"),
        },
        "pid_namespace": plan.init,
        "warm_interpreter": bool(hello.get("warm")),  # forked from a warm sandbox interpreter (see _Zygote)
        "mount_namespace": plan.mountns,
        "exposed_paths": plan.expose,
        "user": {
            "dropped": plan.drop_uid,
            "how": "fresh uid/gid per run, no groups" if plan.drop_uid else
                   ("user namespace maps caller to root inside; same real uid as the caller" if plan.netns and not root else
                    "same uid as the caller"),
            "uid_inside": inside.get("uid"),
        },
        "landlock": landlock,
        "filesystem_writes_confined": isinstance(landlock, str) and landlock.startswith("abi"),
        "signals_scoped": isinstance(landlock, str) and "signals" in landlock,
        "no_new_privs": hello.get("no_new_privs"),
        "limits": asdict(limits) | {"cpu_s": limits.cpu_seconds()},
        "notes": plan.notes,
    }


def sandbox_notes(limits: Limits = Limits(), python: str | None = None) -> dict[str, Any]:
    """What isolation is in force on this host, measured by running probes through the sandbox."""
    return _notes(python or sys.executable, limits)


def missing_libraries(names: Sequence[str], *, python: str | None = None,
                      limits: Limits = Limits(timeout_s=60)) -> list[str]:  # fmt: skip
    """The names in ``names`` (import names, e.g. ``sklearn``) the sandbox interpreter cannot import."""
    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        return []
    prog = (
        "import importlib, json\nmissing = []\n"
        f"for n in {names!r}:\n"
        "    try:\n        importlib.import_module(n)\n"
        "    except BaseException:\n        missing.append(n)\n"
        "print(json.dumps(missing))\n"
    )
    res = run_program(prog, limits=limits, marker=False, python=python)
    try:
        found = json.loads(res.stdout.strip().splitlines()[-1])
        return [n for n in names if n in found]
    except (ValueError, IndexError):
        raise RuntimeError(f"library probe failed: {res.outcome}: {res.detail}") from None
