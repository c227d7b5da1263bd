"""What a training run shows while it runs, and the rate it records."""

import re

from experiments.run import loop, model

CONFIG = model.Config(task="adding", variant="rnn", length=4, steps=6, eval_every=10,
                      batch_size=4, eval_batch_size=8, hidden_size=3, seeds=(0, 1))  # fmt: skip


def test_one_chunk_runs_record_steps_per_second_without_the_compilation(tmp_path):
    lines = []
    (record, _) = loop.run_variant(CONFIG, tmp_path, log=lines.append, position=(2, 3))
    with_compilation = record["final"]["step"] / record["history"][-1]["wall_time"]
    assert record["history"][-1]["step"] == 6  # the last step is evaluated
    assert record["steps_per_second"] > 5 * with_compilation
    assert (
        lines[0]
        == "adding T=4 rnn: compiling the training step (the first chunk's steps/s includes it) ..."
    )
    line = lines[1]
    assert line.startswith("[2/3] adding T=4      rnn step      6/6  train ")
    assert re.search(r"loss \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]  acc \d\.\d{3}  ", line)
    assert re.search(r"steps/s  \d+:\d\d:\d\d elapsed, 0:00:00 left$", line)


def test_plain_display_prints_lines_and_has_no_bar(capsys):
    from experiments.shared import progress

    with progress.display(live=False) as shown:
        shown.log("a line")
        shown.advance("adding T=4 rnn", 3, 6)
    assert capsys.readouterr().out == "a line\n"


def test_a_terminal_gets_the_lines_and_a_live_bar(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    # A real pseudo-terminal as stdout, as a user's shell gives it.
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "experiments.run", "--task=adding", "--length=4",
               "--variants=rnn", "--seeds=1", "--steps=20", "--eval_every=10",
               "--hidden_size=3", "--batch_size=4", "--eval_batch_size=8", "--nosummarize",
               "--notensorboard", f"--workdir={tmp_path / 'work'}"]  # fmt: skip
    process = subprocess.Popen(command, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=120) == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "[1/1] adding T=4      rnn step     20/20  train " in text  # the plain line
    assert re.search(r"\[1/1\] adding T=4 rnn .*20/20.* steps", text)  # the bar
