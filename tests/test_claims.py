"""Verdicts on published claims (experiments.compare.claims): each label of the rule, from
rows that summarise builds from synthetic records."""

import pytest
from test_compare import ADDING_BASELINE, make_record

from experiments.compare import claims
from experiments.compare.tables import summarise

SOLVED, UNSOLVED = 0.001, 0.15  # final losses either side of 0.1 x 1/6


def _seeds(variant, solve_step, n=6):
    """n seeds that first solve at solve_step (None: never), history every 100 steps."""
    records = []
    for seed in range(n):
        step = None if solve_step is None else solve_step + 100 * seed
        history = [
            (s, SOLVED if step is not None and s >= step else ADDING_BASELINE)
            for s in range(100, 2100, 100)
        ]
        records.append(
            make_record(variant=variant, seed=seed, final_loss=history[-1][1], history=history)
        )
    return records


def _rows(**solve_steps):
    records = [r for variant, step in solve_steps.items() for r in _seeds(variant, step)]
    return summarise(records, reference="peephole")


def _label(claim, rows):
    return claims.verdict(claim, rows).label


HURTS = claims.Claim("X hurts", "nfg", "hurts")
HARMLESS = claims.Claim("X does not hurt", "nfg", "does_not_hurt")
SAME = claims.Claim("X and V do not differ", "nfg", "no_difference")


def test_a_slower_row_agrees_with_hurts_and_refutes_the_other_two():
    rows = _rows(peephole=200, nfg=None)
    assert [_label(c, rows) for c in (HURTS, HARMLESS, SAME)] == ["agreed", "not", "not"]
    reason = claims.verdict(HURTS, rows).reason
    assert "solved 0/6 against 6/6" in reason and "log-rank Holm p = " in reason


def test_a_faster_row_refutes_hurts_and_agrees_that_it_does_not_hurt():
    rows = _rows(peephole=1200, nfg=100)
    assert [_label(c, rows) for c in (HURTS, HARMLESS, SAME)] == ["not", "agreed", "not"]
    assert "no harm found" in claims.verdict(HARMLESS, rows).reason


def test_no_difference_leaves_hurts_undecided():
    rows = _rows(peephole=200, nfg=200)
    assert [_label(c, rows) for c in (HURTS, HARMLESS, SAME)] == ["undecided", "agreed", "agreed"]


def test_a_reference_that_never_solves_decides_nothing():
    rows = _rows(peephole=None, nfg=200)
    assert {_label(c, rows) for c in (HURTS, HARMLESS, SAME)} == {"undecided"}
    assert claims.verdict(HURTS, rows).reason.startswith("the reference solved no seed")


def test_bad_claims_are_refused_by_name():
    rows = _rows(peephole=200, nfg=200)
    with pytest.raises(ValueError, match="claim kind must be one of hurts"):
        claims.verdict(claims.Claim("?", "nfg", "helps"), rows)
    with pytest.raises(ValueError, match="no row 'cifg' for the claim"):
        claims.verdict(claims.Claim("CIFG does not hurt", "cifg", "does_not_hurt"), rows)


def test_the_table_has_one_row_per_claim():
    rows = _rows(peephole=200, nfg=None)
    table = claims.format_verdicts([claims.verdict(c, rows) for c in (HURTS, SAME)])
    assert table.splitlines()[2].startswith("| X hurts | **agreed** | ")
    assert len(table.splitlines()) == 4


def test_compare_labels_greffs_claims_from_the_command_line(tmp_path):
    from _cli import run_module
    from test_compare import write_record

    steps = {"peephole": 200, "nfg": None, "noaf": 200, "cifg": 100, "lstm": 200}
    for variant, step in steps.items():
        for record in _seeds(variant, step):
            write_record(tmp_path, record)
    result = run_module(
        "experiments.compare", f"--workdir={tmp_path}", "--reference=peephole", "--claims=greff"
    )
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "claims.md").read_text()
    assert written in result.stdout
    lines = {line.split(" | ")[0]: line.split(" | ")[1] for line in written.splitlines()
             if line.startswith("| ") and "**" in line}  # fmt: skip
    assert lines == {
        "| NFG hurts": "**agreed**",
        "| NOAF hurts": "**undecided**",
        "| CIFG does not hurt": "**agreed**",
        "| NP does not hurt": "**agreed**",
        "| peepholes do not matter (NP against V)": "**agreed**",
    }
    bad = run_module("experiments.compare", f"--workdir={tmp_path}", "--claims=popper")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--claims" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
