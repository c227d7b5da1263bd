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
