"""The session directory: private modes, removal on every way out, sweeping after a hard kill."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alien.debug.session_dir import SessionDir, ensure_private_root, sweep_stale
from alien.errors import Forbidden, ValidationError

CHILD = textwrap.dedent(
    """
    import select, signal, sys
    from pathlib import Path
    from alien.debug.session_dir import SessionDir
    # A CLI starts with SIGTERM at its default; an ignored disposition would be inherited from
    # whatever ran the test (SessionDir rightly leaves a non-default disposition alone).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with SessionDir.create("dbg_child", root=Path(sys.argv[1])) as files:
        files.write_text("credentials", "secret")
        print(files.path, flush=True)
        # Until a signal or EOF, waking every 0.1 s: Python runs a signal's handler between
        # bytecodes, so a signal landing just before a blocking read began would wait for the
        # read to return (here: forever; seen once in CI, SIGTERM, 30 s timeout).
        while not select.select([sys.stdin], [], [], 0.1)[0]:
            pass
        sys.stdin.readline()
    """
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _start_child(root: Path) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_directory_is_0700_and_files_0600(tmp_path: Path) -> None:
    with SessionDir.create("dbg_1", root=tmp_path / "root") as files:
        written = files.write_text("aws-credentials", "[default]\n")
        assert _mode(files.path) == 0o700
        assert _mode(tmp_path / "root") == 0o700
        assert _mode(written) == 0o600
        assert _mode(files.subdir("gcloud")) == 0o700
        assert all(_mode(p) == 0o600 for p in files.path.iterdir() if p.is_file())
    assert not files.path.exists()


def test_removed_when_the_session_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), SessionDir.create("dbg_2", root=tmp_path) as files:
        files.write_text("token", "t")
        raise RuntimeError("child crashed")
    assert not files.path.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_removed_when_interrupted(tmp_path: Path, signum: int) -> None:
    child, path = _start_child(tmp_path)
    assert (path / "credentials").read_text() == "secret"
    child.send_signal(signum)
    child.wait(timeout=30)
    assert child.returncode != 0
    assert not path.exists()


def test_killed_owner_is_swept_on_the_next_run(tmp_path: Path) -> None:
    child, orphan = _start_child(tmp_path)
    live, alive_path = _start_child(tmp_path)
    child.kill()
    child.wait(timeout=30)
    assert orphan.exists()  # SIGKILL leaves it behind
    with SessionDir.create("dbg_next", root=tmp_path) as files:
        assert not orphan.exists()
        assert alive_path.exists()  # its owner still runs
        assert files.path.exists()
    live.stdin.close()
    live.wait(timeout=30)
    assert not alive_path.exists()
    assert sweep_stale(tmp_path) == []


def test_file_names_are_plain_names(tmp_path: Path) -> None:
    with SessionDir.create("dbg_3", root=tmp_path) as files:
        for bad in ("../escape", "a/b", "", ".hidden"):
            with pytest.raises(ValidationError):
                files.write_text(bad, "x")


def test_root_must_be_a_private_directory_we_own(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(Forbidden, match="not a directory"):
        ensure_private_root(link)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    ensure_private_root(loose)
    assert _mode(loose) == 0o700
