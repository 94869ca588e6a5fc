"""Loading ``alien_stack.py``: where it is found, which Stack is chosen, and how mistakes in the
author's file become one-line errors with file and line."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from alien.errors import StackError
from alien.stack import LoadedStack, load_stack

GOOD = """\
import alien

data = alien.Storage("data")
stack = alien.Stack("my-app").add(
    alien.Function("api").code(src="api", entrypoint="app:app").link(data), "live"
).add(data, "frozen")
"""


def write(app: Path, body: str, name: str = "alien_stack.py") -> Path:
    app.mkdir(parents=True, exist_ok=True)
    (app / "api").mkdir(exist_ok=True)
    path = app / name
    path.write_text(textwrap.dedent(body))
    return path


def load_error(path: Path | None) -> StackError:
    with pytest.raises(StackError) as caught:
        load_stack(path)
    assert "\n" not in caught.value.message
    return caught.value


def test_load_from_directory_file_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(tmp_path, GOOD)
    for where in (tmp_path, file):
        loaded = load_stack(where)
        assert isinstance(loaded, LoadedStack)
        assert loaded.stack.name == "my-app"
        assert loaded.app_dir == tmp_path.resolve()
        assert loaded.file == file.resolve()
    monkeypatch.chdir(tmp_path)
    loaded = load_stack()
    assert [r.id for r in loaded.manifest().resources] == ["api", "data"]


def test_manifest_checks_code_dirs_relative_to_the_stack_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "api").rmdir()
    with pytest.raises(StackError) as caught:
        load_stack(tmp_path).manifest()
    assert caught.value.field == "resources.api.code.src"


def test_no_stack_file(tmp_path: Path) -> None:
    error = load_error(tmp_path)
    assert error.field == "path"
    assert "no alien_stack.py" in error.message
    assert load_error(tmp_path / "missing.py").field == "path"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, "import alien\n\nstack = alien.Stack(\n")
    error = load_error(tmp_path)
    assert error.message.startswith(f"{file}:3: syntax error:")
    assert error.details == {"file": str(file), "line": 3}


def test_import_error_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, "import alien\nimport no_such_module_xyz\n")
    error = load_error(tmp_path)
    assert error.message == (f"{file}:2: ModuleNotFoundError: No module named 'no_such_module_xyz'")


def test_error_in_a_helper_module_points_at_the_helper(tmp_path: Path) -> None:
    write(tmp_path, "def make():\n    return {}['missing']\n", name="helpers.py")
    write(tmp_path, "import helpers\nstack = helpers.make()\n")
    error = load_error(tmp_path)
    assert error.message == f"{tmp_path.resolve() / 'helpers.py'}:2: KeyError: 'missing'"


def test_alien_errors_and_exits_inside_the_file(tmp_path: Path) -> None:
    write(tmp_path, "import alien\nalien.Stack('s').add('data', 'live')\n")
    assert "Stack.add takes a Function" in load_error(tmp_path).message
    write(tmp_path, "import sys\nsys.exit(3)\n")
    assert "exited (SystemExit 3) while loading" in load_error(tmp_path).message


def test_which_stack(tmp_path: Path) -> None:
    write(tmp_path, "x = 1\n")
    assert "defines no Stack" in load_error(tmp_path).message
    write(tmp_path, "import alien\na = alien.Stack('a')\nb = alien.Stack('b')\n")
    assert "defines 2 stacks (a, b)" in load_error(tmp_path).message
    write(tmp_path, "import alien\na = alien.Stack('a')\nstack = alien.Stack('b')\n")
    assert load_stack(tmp_path).stack.name == "b"
    write(tmp_path, "import alien\nmine = alien.Stack('only')\nalias = mine\n")
    assert load_stack(tmp_path).stack.name == "only"
    write(tmp_path, "stack = 'nope'\n")
    assert "`stack` is a str, not an alien.Stack" in load_error(tmp_path).message


def test_helpers_are_fresh_on_each_load_and_sys_path_is_restored(tmp_path: Path) -> None:
    write(tmp_path, "NAME = 'first'\n", name="stack_names_helper.py")
    write(
        tmp_path, "import alien, stack_names_helper\nstack = alien.Stack(stack_names_helper.NAME)\n"
    )
    before = list(sys.path)
    assert load_stack(tmp_path).stack.name == "first"
    assert "stack_names_helper" not in sys.modules
    assert sys.path == before
    write(tmp_path, "NAME = 'second'\n", name="stack_names_helper.py")
    assert load_stack(tmp_path).stack.name == "second"


def test_main_guard_is_not_run(tmp_path: Path) -> None:
    write(tmp_path, GOOD + "if __name__ == '__main__':\n    raise SystemExit('ran')\n")
    assert load_stack(tmp_path).stack.name == "my-app"
