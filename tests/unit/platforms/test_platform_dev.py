"""``alien dev`` pieces that need no running functions: what triggers a reload, dev secrets,
the paths its output shows."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from watchfiles import Change

from alien.bindings.local.vault import LocalVault
from alien.errors import NotFound, ValidationError
from alien.platforms.local.area import Area
from alien.platforms.local.dev import ChangeFilter, SourcePaths, default_area, set_secret

STACK = textwrap.dedent(
    """
    import alien
    creds, cache = alien.Vault("creds"), alien.Kv("cache")
    api = alien.Function("api").code(src="api", entrypoint="app:app").link(creds).link(cache)
    stack = alien.Stack("demo").add(api, "live").add(creds, "frozen").add(cache, "live")
    """
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "app.py").write_text("app = None\n")
    (tmp_path / "alien_stack.py").write_text(STACK)
    return tmp_path


def test_reloads_follow_code_and_python_files_not_the_area_or_other_files(app_dir: Path) -> None:
    area = default_area(app_dir)
    watch = ChangeFilter(area)
    watch.code_dirs = (app_dir / "api",)
    changed = Change.modified
    assert watch(changed, str(app_dir / "api" / "templates" / "page.html"))  # code dir: anything
    assert watch(changed, str(app_dir / "alien_stack.py"))
    assert watch(changed, str(app_dir / "helpers.py"))
    assert not watch(changed, str(app_dir / "dev.log"))  # e.g. `alien dev > dev.log`
    assert not watch(changed, str(area / "logs" / "api.log"))
    assert not watch(changed, str(area / "releases" / "r1" / "api" / "app.py"))
    assert not watch(changed, str(app_dir / "api" / "__pycache__" / "app.cpython-311.pyc"))


def test_a_dev_secret_lands_encrypted_in_the_dev_area(app_dir: Path) -> None:
    set_secret(app_dir, "creds", "token", "s3cret-value")
    area = Area(default_area(app_dir))
    vault = LocalVault(area.vault_file("creds"), area.key_file("creds"))
    assert vault.get_secret("token") == "s3cret-value"
    assert b"s3cret-value" not in area.vault_file("creds").read_bytes()


def test_a_dev_secret_needs_a_vault_of_the_stack(app_dir: Path) -> None:
    with pytest.raises(NotFound, match="no vault 'nope'; vaults: creds"):
        set_secret(app_dir, "nope", "token", "x")
    with pytest.raises(ValidationError, match="is a kv, not a vault"):
        set_secret(app_dir, "cache", "token", "x")


def test_the_dev_area_stays_out_of_the_app_s_repository(app_dir: Path) -> None:
    """The dev area lives in the app directory and holds vault keys beside their vaults: a
    ``git add .`` must not commit them."""
    git = ["git", "-C", str(app_dir), "-c", "core.excludesFile=/dev/null"]
    subprocess.run([*git, "init", "-q"], check=True)
    set_secret(app_dir, "creds", "token", "s3cret-value")
    assert Area(default_area(app_dir)).key_file("creds").is_file()
    untracked = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ".alien" not in untracked and "api/app.py" in untracked


def test_output_names_the_apps_own_files_not_the_staged_copy(app_dir: Path) -> None:
    area = Area(default_area(app_dir))
    own = SourcePaths(area, app_dir)
    staged = area.release_dir("dev-20261125T012115-2")
    line = f'  File "{staged}/api/app.py", line 150, in boom'
    assert own(line) == f'  File "{app_dir}/api/app.py", line 150, in boom'
    older = f"{area.release_dir('dev-1')}/api/a.py:3 and {staged}/lib/b.py:4"
    assert own(older) == f"{app_dir}/api/a.py:3 and {app_dir}/lib/b.py:4"
    elsewhere = f"{area.root}/run/http.sock {area.releases_dir}/ {app_dir}/api/app.py"
    assert own(elsewhere) == elsewhere  # only a path inside a release is the app's
