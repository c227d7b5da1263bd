"""Every published table is recomputed from what is committed under docs/results/.

For each study (a folder with records/ and study.json), the comparison that
`python -m experiments.compare --workdir=docs/results/<study>` prints is rebuilt here, and
each of its table rows must appear verbatim in README.md. Each forecasting table is
rebuilt from its committed ``forecast.json``, whose recurrent rows must equal the
committed per-variant records."""

import json
import re
from pathlib import Path

import pytest

from experiments.compare import loading
from experiments.compare import report as compare
from experiments.forecast import model as forecast

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
    # A tuned study's text ends with its tuning tables: those are published in the study's
    # summary.md, the comparison's rows in the README too.
    comparison, _, tuning = text.partition("\n## Tuning")
    rows = [line for line in comparison.splitlines() if line.startswith("| `")]
    evaluated = [record for record in records if record["_role"] == "eval"]
    # One row per task, length and label; a state-tracking group has a score table too.
    groups = {(r["task"], r["length"], loading.label(r), "test" in r) for r in evaluated}
    assert len(rows) == sum(2 if has_score_table else 1 for *_, has_score_table in groups)
    readme = (ROOT / "README.md").read_text()
    missing = [row for row in rows if row not in readme]
    assert not missing, f"{study.name}: README lacks {len(missing)} rows, e.g. {missing[0]}"
    summary = (study / "summary.md").read_text()
    tuning_rows = [line for line in tuning.splitlines() if line.startswith("| `")]
    assert all(row in summary for row in tuning_rows), f"{study.name}: summary.md is stale"


CLAIMS = sorted((ROOT / "docs" / "results").glob("*/claims.md"))


@pytest.mark.parametrize("published", CLAIMS, ids=[path.parent.name for path in CLAIMS])
def test_published_verdicts_are_recomputed_from_the_records(published):
    text = published.read_text()
    kind = re.match(r"## Claims \((\w+)\)", text).group(1)  # the --claims it was made with
    study = published.parent
    records, _ = compare.load_records(study)
    reference = loading.study_reference(study)
    assert text == compare.claims_text(kind, records, compare.DEFAULT_SOLVE_FRACTION, reference)


def test_there_are_published_studies():
    assert {path.name for path in STUDIES} >= {
        "greff_adding_T100",
        "greff_copy_T100",
        "state_tracking",
    }


FORECASTS = sorted((ROOT / "docs" / "results").glob("forecast_*/forecast.json"))


@pytest.mark.parametrize("result", FORECASTS, ids=[path.parent.name for path in FORECASTS])
def test_published_forecast_table_is_rebuilt_from_its_outputs(result):
    data = json.loads(result.read_text())
    records = [json.loads(path.read_text()) for path in (result.parent / "records").glob("*.json")]
    recorded = {record["variant"]: record["test_mse"] for record in records}
    in_table = {m["model"]: m["test_mse"] for m in data["models"] if m["kind"] == "recurrent"}
    assert recorded and recorded == in_table  # each recurrent row is its variant's record
    rows = [line for line in forecast.format_table(data).splitlines() if line.startswith("| ")]
    readme = (ROOT / "README.md").read_text()
    missing = [row for row in rows[2:] if row not in readme]
    assert not missing, f"{result.parent.name}: README lacks {missing}"


def test_there_are_published_forecasts():
    assert {path.parent.name for path in FORECASTS} == {"forecast_mackey_glass", "forecast_sines"}


def test_published_char_lm_number_is_its_record():
    record = json.loads((ROOT / "docs" / "results" / "char_lm" / "char_lm_lstm.json").read_text())
    curve = {point["step"]: point["held_out_bpc"] for point in record["history"]}
    assert record["final_bpc"] == curve[1000]
    readme = (ROOT / "README.md").read_text()
    for number in (record["final_bpc"], curve[200], curve[600]):
        assert f"{number:.3f}" in readme
