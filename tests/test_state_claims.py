"""Verdicts on the state-tracking claims (experiments.compare.state_claims): each label of
the rule, from records whose scores are chosen to land on it, and the command line."""

import json

import numpy as np
import pytest
from _cli import run_module
from test_compare import make_record

from experiments.compare import state_claims as sc

CHANCE = {"parity": 0.5, "modular_arithmetic": 0.2}


def _records(task, scores_by_variant):
    out = []
    for variant, scores in scores_by_variant.items():
        for seed, score in enumerate(scores):
            record = make_record(task=task, length=40, variant=variant, seed=seed)
            record["chance"] = CHANCE[task]
            record["test"] = {"lengths": [41, 500], "accuracy": [score, score], "score": score,
                              "batch_size": 8}  # fmt: skip
            out.append(record)
    return out


SOLVED = [1.0, 0.99, 0.98, 1.0, 0.97, 1.0, 0.995, 0.99, 1.0, 0.985]
CHANCE_LEVEL = [0.50, 0.51, 0.49, 0.505, 0.495, 0.5, 0.52, 0.48, 0.51, 0.49]
ONE_LUCKY = [0.95, 0.51, 0.49, 0.505, 0.495, 0.5, 0.52, 0.48, 0.51, 0.49]


def _labels(records, claims):
    return {(v.claim.row, v.claim.other, v.claim.kind): v.label
            for v in sc.state_verdicts(claims, records)}  # fmt: skip


def test_each_label_of_the_rule():
    records = _records("parity", {"lstm": SOLVED, "rnn": CHANCE_LEVEL, "slstm": SOLVED,
                                  "min_gru": CHANCE_LEVEL, "min_gru_neg": SOLVED,
                                  "min_lstm": ONE_LUCKY, "min_lstm_neg": CHANCE_LEVEL})  # fmt: skip
    labels = _labels(records, sc.STATE_TRACKING_CLAIMS)
    assert labels[("lstm", None, "generalises")] == "agreed"
    assert labels[("rnn", None, "generalises")] == "not"  # no seed, in a task others solve
    assert labels[("slstm", "min_gru", "solves_where_other_does_not")] == "agreed"
    # min_lstm has one seed at 0.95: the sLSTM scores higher, but "where it does not" is
    # neither true nor refuted by a higher score.
    assert labels[("slstm", "min_lstm", "solves_where_other_does_not")] == "undecided"
    assert labels[("min_gru", None, "does_not_generalise")] == "agreed"
    assert labels[("min_lstm", None, "does_not_generalise")] == "not"
    assert labels[("min_gru_neg", "min_gru", "solves_where_other_does_not")] == "agreed"
    # Neither side generalised (min_lstm's lucky seed aside) and the scores do not differ.
    assert labels[("min_lstm_neg", "min_lstm", "solves_where_other_does_not")] == "not"
    # Claims whose rows have no records (slstm_exp; other tasks) are left out.
    assert all(v.claim.task == "parity" and v.claim.row != "slstm_exp"
               for v in sc.state_verdicts(sc.STATE_TRACKING_CLAIMS, records))  # fmt: skip


def test_a_task_nobody_generalises_on_decides_nothing():
    records = _records("modular_arithmetic", {"lstm": [0.25, 0.3, 0.22], "rnn": [0.2, 0.21, 0.2],
                                              "slstm": [0.4, 0.45, 0.5],
                                              "min_gru": [0.2, 0.2, 0.21]})  # fmt: skip
    verdicts = sc.state_verdicts(sc.STATE_TRACKING_CLAIMS, records)
    assert verdicts and {v.label for v in verdicts} == {"undecided"}
    assert all(v.reason.startswith("no row generalised on this task") for v in verdicts)


def test_the_p_values_are_holm_corrected_within_each_kind():
    # Five seeds all above chance: Wilcoxon's one-sided exact p is 1/32 for each of the two
    # "generalises" claims; Holm doubles the smaller, so both are 0.0625 > alpha: undecided.
    records = _records("parity", {"lstm": SOLVED[:5], "rnn": SOLVED[5:]})
    verdicts = sc.state_verdicts(sc.STATE_TRACKING_CLAIMS, records)
    assert [v.label for v in verdicts] == ["undecided", "undecided"]
    assert all("Wilcoxon Holm p = 0.062" in v.reason for v in verdicts)
    # With ten seeds each, p = 1/1024 and Holm 2/1024: agreed.
    records = _records("parity", {"lstm": SOLVED, "rnn": SOLVED})
    assert [v.label for v in sc.state_verdicts(sc.STATE_TRACKING_CLAIMS, records)] == [
        "agreed",
        "agreed",
    ]


def test_a_label_with_two_settings_in_a_task_is_refused():
    records = _records("parity", {"lstm": SOLVED[:3]})
    other = json.loads(json.dumps(records[0]))
    other["config"]["learning_rate"], other["seed"] = 3e-3, 7
    other["config"]["seeds"] = [7]
    with pytest.raises(ValueError, match="'lstm' has records of several settings on parity"):
        sc.state_verdicts(sc.STATE_TRACKING_CLAIMS, [*records, other])


def test_bad_claim_kinds_are_refused_by_name():
    records = _records("parity", {"lstm": SOLVED})
    with pytest.raises(ValueError, match="claim kind must be one of .*; got 'helps'"):
        sc.state_verdicts([sc.StateClaim("?", "parity", "helps", "lstm")], records)


def test_compare_writes_the_state_tracking_verdicts(tmp_path):
    (tmp_path / "records").mkdir()
    records = _records("parity", {"lstm": SOLVED, "min_gru": CHANCE_LEVEL,
                                  "min_gru_neg": list(np.array(SOLVED) - 0.01)})  # fmt: skip
    for record in records:
        name = f"parity_T40_{record['variant']}_seed{record['seed']}.json"
        (tmp_path / "records" / name).write_text(json.dumps(record))
    result = run_module("experiments.compare", f"--workdir={tmp_path}", "--claims=state_tracking")
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "claims.md").read_text()
    assert written.startswith("## Claims (state_tracking)\n\n### parity\n")
    assert "| the LSTM generalises (Delétang et al.) | **agreed** |" in written
    assert "min_gru_neg (transition in (-1, 1)) solves it where min_gru does not" in written
    assert written in result.stdout


def test_an_unknown_claims_kind_is_refused_by_name():
    from experiments.compare import report

    with pytest.raises(
        ValueError, match=r"claims kind must be one of \[.*'state_tracking'\]; got 'x'"
    ):
        report.claims_text("x", [], 0.1, "lstm")
