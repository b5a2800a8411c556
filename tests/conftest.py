"""What every test shares: no silent skips under CI, and a way to test file permissions as root.

**Under CI a skip is a failure.** ``.ci/run`` (through ``scripts/test.sh``) sets ``CI=1`` and
installs every dependency the tests use: the dev extra, Debian's Chromium for the browser test,
and DoWhy in its own environment for the tests marked ``dowhy`` (which the main environment
deselects). A test that skipped there would be a test that silently did not run, so under
``CI`` every skip, in a test or while collecting a module, is reported as a failure with its
reason. Outside CI (a developer's machine without Chromium, say) skips stay skips.

**No test changes another's environment.** The environment variables are restored after every
test: a command run in-process (``main(["bench", ...])`` pins the threads of the whole process
through ``CINA_NUM_THREADS`` and ``OMP_NUM_THREADS``, as a real ``cina bench`` process may) must
not change what later tests see.

**Time limits.** A module that sets ``TIMEOUT_S`` gets a SIGALRM-based limit on each of its tests
(the Dask and fault-injection tests: a hung cluster fails the test instead of the CI job).

**File permissions as root.** CI runs as root, and root ignores file permissions: a test that a
read-only directory is refused would test nothing there. The ``unprivileged`` fixture runs a
function in a forked child whose user and group are ``nobody`` when this process is root (in
this process otherwise), and ``world_tmp`` is a temporary folder every user can enter, for the
files such a child reads.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
_HINT = ("CI installs every test dependency (scripts/test.sh), so a skip there is a test that "
         "did not run")


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI={os.environ['CI']}: " \
                          f"{_skip_reason(report.longrepr)}; {_HINT}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped under CI={os.environ['CI']}: " \
                          f"{_skip_reason(report.longrepr)}; {_HINT}"


@pytest.fixture(autouse=True)
def _restore_environment():
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(autouse=True)
def _module_time_limit(request):
    seconds = getattr(request.module, "TIMEOUT_S", None)
    if not seconds or not hasattr(signal, "SIGALRM"):
        yield
        return

    def fail(signum, frame):
        raise TimeoutError(f"test exceeded {seconds} s (the module's TIMEOUT_S)")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def world_tmp():
    """A temporary folder that every user may enter and read (mode 755), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="cina-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):  # read-only folders left by a test
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


def _run_as_nobody(fn):
    import pwd

    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, send the outcome, leave without cleanup
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                payload = ("returned", fn())
            except BaseException as exc:  # noqa: BLE001 - sent to the parent, which re-raises
                payload = ("raised", type(exc).__name__, str(exc))
            with os.fdopen(write_end, "wb") as fh:
                pickle.dump(payload, fh)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert data and os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    payload = pickle.loads(data)
    if payload[0] == "raised":
        raise AssertionError(f"in the unprivileged child: {payload[1]}: {payload[2]}")
    return payload[1]


@pytest.fixture
def unprivileged():
    """``run(fn)``: ``fn()``'s return value, computed without root's disregard of permissions
    (a forked child as ``nobody`` when this process is root; here otherwise). The value must
    pickle; an exception in the child fails the test with its type and message."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return _run_as_nobody
    return lambda fn: fn()
