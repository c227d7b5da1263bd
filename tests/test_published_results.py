"""Every published study table is recomputed from its committed records.

For each study under docs/results/ (a folder with records/ and study.json), the
comparison that `python -m experiments.compare --workdir=docs/results/<study>` prints is
rebuilt here, and each of its table rows must appear verbatim in README.md."""

from pathlib import Path

import pytest

from experiments.compare import loading
from experiments.compare import report as compare

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(path.parent for path in (ROOT / "docs" / "results").glob("*/study.json"))


@pytest.mark.parametrize("study", STUDIES, ids=[path.name for path in STUDIES])
def test_published_table_is_recomputed_from_the_records(study, tmp_path):
    records, problems = compare.load_records(study)
    assert records and not problems, problems
    reference = loading.study_reference(study)
    text, _ = compare.write_summary(
        records, problems, tmp_path, compare.DEFAULT_SOLVE_FRACTION, reference
    )
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len({loading.label(record) for record in records})
    readme = (ROOT / "README.md").read_text()
    missing = [row for row in rows if row not in readme]
    assert not missing, f"{study.name}: README lacks {len(missing)} rows, e.g. {missing[0]}"


def test_there_are_published_studies():
    assert {path.name for path in STUDIES} >= {"greff_adding_T100", "greff_copy_T100"}
