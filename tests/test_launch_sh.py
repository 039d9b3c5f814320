"""./launch.sh the way a newcomer runs it: a fresh clone, nothing recorded as installed.

The clone gets this checkout's .venv as hard links (``cp -al``: seconds, not a 5 GB copy) with
its stamp deleted, so pip finds everything present and returns quickly. The clone is of HEAD
plus this checkout's uncommitted changes to tracked files (``git stash create``), so editing
launch.sh and running this test tests the edit. ``.ci/run`` runs ``./launch.sh test``, which
creates the .venv first: in CI this test runs, it is not skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def _in_git_checkout() -> bool:
    return bool(shutil.which("git")) and subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason="no .venv here (./launch.sh creates it)"),
    pytest.mark.skipif(not _in_git_checkout(), reason="no git, or this copy is not a git checkout"),
]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")},
       "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}


def sh(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this checkout with a hard-linked copy of its .venv (made once for this file)."""
    rev = sh("git", "stash", "create", cwd=ROOT).stdout.strip() or "HEAD"
    for parent in (tmp_path_factory.mktemp("launch"), ROOT / ".cache"):   # hard links: the venv's file system
        parent.mkdir(parents=True, exist_ok=True)
        where = Path(tempfile.mkdtemp(prefix="launch-sh-", dir=parent))
        clone = where / "studio"
        assert sh("git", "clone", "-q", "--no-checkout", str(ROOT), str(clone), cwd=where).returncode == 0
        assert sh("git", "-c", "advice.detachedHead=false", "checkout", "-q", rev, cwd=clone).returncode == 0, \
            f"cannot check out {rev} in the clone"
        if sh("cp", "-al", str(VENV.resolve()), str(clone / ".venv"), cwd=where).returncode == 0:
            break
        shutil.rmtree(where, ignore_errors=True)
    else:
        pytest.fail(f"cannot hard-link {VENV.resolve()} into a clone (another file system?)")
    yield clone
    subprocess.run(["rm", "-rf", str(where)], check=False)     # far faster than shutil.rmtree on a venv


@pytest.fixture
def fresh_clone(clone):
    """The clone with nothing recorded as installed (a new stamp file: the original is not touched)."""
    (clone / ".venv" / ".installed").unlink(missing_ok=True)
    return clone


def test_fresh_clone_installs_exits_0_then_serves(fresh_clone, tmp_path):
    original_stamp = (VENV / ".installed").read_bytes() if (VENV / ".installed").exists() else None

    first = sh("./launch.sh", "install", cwd=fresh_clone)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "launch.sh: installing (app)" in first.stdout
    again = sh("./launch.sh", "install", cwd=fresh_clone)
    assert again.returncode == 0 and "installing" not in again.stdout          # recorded: nothing to do

    port, log = free_port(), tmp_path / "console.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(["./launch.sh", "--port", str(port), "--outputs-dir", str(tmp_path / "out")],
                                cwd=fresh_clone, env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{port}/") or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, log.read_text()
        # "/" answers a moment before launch() returns and app.py prints where it serves
        assert wait_until(lambda: "Studio on" in log.read_text(), timeout=30), log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert f"Studio on http://127.0.0.1:{port}" in text and "installing" not in text, text
    assert "default model: demo" in text and (tmp_path / "out" / "gallery.db").is_file()
    assert ((VENV / ".installed").read_bytes() if (VENV / ".installed").exists() else None) == original_stamp


def test_the_stamp_holds_in_both_orders(fresh_clone):
    stamp = fresh_clone / ".venv" / ".installed"
    test_first = sh("./launch.sh", "install", "test", cwd=fresh_clone)
    assert test_first.returncode == 0 and "launch.sh: installing (test)" in test_first.stdout, test_first.stderr
    app_after = sh("./launch.sh", "install", cwd=fresh_clone)
    assert app_after.returncode == 0 and "installing" not in app_after.stdout   # a test install covers the app

    app_line = next(line for line in stamp.read_text().splitlines() if line.endswith("-app"))
    stamp.write_text(app_line + "\n")                                         # as after './launch.sh install'
    test_after = sh("./launch.sh", "install", "test", cwd=fresh_clone)
    assert test_after.returncode == 0 and "launch.sh: installing (test)" in test_after.stdout
    for kind in ("app", "test"):
        quiet = sh("./launch.sh", "install", kind, cwd=fresh_clone)
        assert quiet.returncode == 0 and "installing" not in quiet.stdout, kind

    wrong = sh("./launch.sh", "install", "everything", cwd=fresh_clone)
    assert wrong.returncode == 2 and "install takes app or test" in wrong.stderr


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False
