"""The library is what a user imports; the lab is not dragged in with it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_lstmx_imports_no_lab_dependency():
    code = (
        "import sys, lstmx, lstmx.convert, lstmx.diagnostics, lstmx.describe, lstmx.tasks;"
        "print(sorted(m for m in ('optax', 'absl', 'matplotlib', 'torch', 'haiku', 'experiments')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_library_never_imports_the_lab():
    for path in (ROOT / "lstmx").rglob("*.py"):
        text = path.read_text()
        for module in ("experiments", "optax", "absl", "matplotlib", "torch"):
            assert f"import {module}" not in text and f"from {module}" not in text, (path, module)


def test_console_scripts_run_from_any_directory(tmp_path):
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    names = scripts["project"]["scripts"]
    assert {"lstmx-run", "lstmx-sweep", "lstmx-compare", "lstmx-benchmark"} <= set(names)
    bin_dir = Path(sys.executable).parent
    for name in names:
        assert (bin_dir / name).exists(), f"{name} is not installed (pip install -e .)"
    # A bad flag value, from a directory that is not the clone: absl's flag error, status 1.
    result = subprocess.run(
        [str(bin_dir / "lstmx-run"), "--variants=no_such_cell"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("FATAL Flags parsing error: flag --variants=")
    assert "unknown: 'no_such_cell'" in result.stderr


def test_script_help_keeps_the_line_breaks_of_its_examples():
    # A backslash-newline in a plain docstring is a line continuation: --help showed the
    # two lines of a shell example as one. Every script's docstring that has one is raw.
    for path in sorted((ROOT / "experiments").glob("*/__main__.py")):
        source = path.read_text()
        docstring = source[: source.find('"""', 4)]
        assert "\\\n" not in docstring or source.startswith('r"""'), path
