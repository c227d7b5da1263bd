r"""Trains a character-level language model and samples from it.

With no --text_file it trains on the Python Language Reference that ships with CPython
(pydoc_data.topics; no download). Examples:

  python -m experiments.char_lm
  python -m experiments.char_lm --text_file=book.txt --variant=gru --num_layers=3 \
      --dropout=0.2 --steps=10000 --workdir=runs/book_gru
  python -m experiments.char_lm --prompt="The while statement" --temperature=0.5
  python -m experiments.char_lm --zoneout_c=0.05 --zoneout_h=0.5 --workdir=runs/zoneout

Prints one progress line per evaluation (held-out bits per character) and a sample at
the end; writes WORKDIR/char_lm_LABEL.json and keeps the trained model in
WORKDIR/checkpoints/. LABEL is the variant, followed by the recurrent regularisers
(--zoneout_h, --zoneout_c, --input_dropout, --recurrent_dropout, --candidate_dropout;
training only, evaluation and sampling use the expectation) when any is set, e.g. lstm+zoneout_h0.1.
Killed and started again with the same flags, it resumes; started again after training
finished, it only samples again (try another --prompt or
--temperature), or trains on if --steps grew. Without --prompt the sample starts from the
first characters of a line of the held-out text, so any text file works. The model and
metric are described in experiments/char_lm/model.py.

One run per workdir: a second command on a workdir in use exits at once with one line
naming the holder's PID and host (--wait_for_lock waits instead). On SIGTERM or SIGINT it
finishes the current chunk, writes a checkpoint, says where, and exits with status 75
(EX_TEMPFAIL); the same command resumes.
"""

import math
import os
import sys

from absl import app, flags

from experiments.char_lm import model as char_lm
from experiments.shared import cli as _common
from experiments.shared import regularization
from lstmx.cells import variant_names

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "text_file", None, "UTF-8 text to train on (default: the offline corpus, see --helpfull)."
)
flags.DEFINE_string("variant", "lstm", f"Cell variant; one of: {', '.join(variant_names())}.")
flags.DEFINE_integer("num_layers", 2, "Stacked layers.", lower_bound=1)
flags.DEFINE_integer("hidden_size", 256, "Units per layer.", lower_bound=1)
flags.DEFINE_float(
    "dropout", 0.0, "Dropout between layers while training, in [0, 1); needs num_layers >= 2."
)
regularization.define_flags()
flags.adopt_module_key_flags(regularization)  # listed by --helpshort
flags.DEFINE_integer(
    "sequence_length", 50, "Characters of context per training window.", lower_bound=1
)
flags.DEFINE_integer("batch_size", 64, "Windows per step.", lower_bound=1)
flags.DEFINE_integer("steps", 3000, "Training steps.", lower_bound=1)
flags.DEFINE_enum("optimizer", "adam", list(char_lm.OPTIMIZERS), "Optimiser.")
flags.DEFINE_float("learning_rate", 2e-3, "Learning rate (> 0).")
flags.DEFINE_float("clip", 1.0, "Global-norm gradient clipping threshold (> 0).")
flags.DEFINE_integer(
    "eval_every", 100, "Steps between held-out evaluations and checkpoints.", lower_bound=1
)
flags.DEFINE_integer(
    "max_eval_windows", 1000, "Most held-out windows scored per evaluation.", lower_bound=1
)
flags.DEFINE_string(
    "prompt",
    None,
    "Text fed to the model before sampling (default: the first 4 characters of a line of "
    "the held-out text).",
)
flags.DEFINE_float("temperature", 1.0, "Sampling temperature (> 0; lower is greedier).")
flags.DEFINE_integer("sample_length", 400, "Characters to sample.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed for initialisation, batches, dropout and sampling.")
flags.DEFINE_string("workdir", "runs/char_lm", "Directory for the record and checkpoints.")
_common.define_wait_for_lock()
_common.define_stall_timeout()

flags.register_validator(
    "variant",
    lambda name: name in variant_names(),
    message=f"--variant must be one of: {', '.join(variant_names())}.",
)
flags.register_validator(
    "dropout", lambda value: 0.0 <= value < 1.0, message="--dropout must lie in [0, 1)."
)
flags.register_validator(
    "learning_rate",
    lambda value: math.isfinite(value) and value > 0,
    message="--learning_rate must be > 0.",
)
flags.register_validator(
    "clip", lambda value: math.isfinite(value) and value > 0, message="--clip must be > 0."
)
flags.register_validator(
    "temperature",
    lambda value: math.isfinite(value) and value > 0,
    message="--temperature must be > 0 (small values approach greedy argmax sampling).",
)
flags.register_validator(
    "prompt", lambda value: value is None or bool(value), message="--prompt must not be empty."
)
flags.register_validator("seed", lambda value: value >= 0, message="--seed must be >= 0.")
_common.require_directory_path("workdir")


def main(argv):
    name = "experiments.char_lm"
    _common.start(name, argv)
    try:
        if FLAGS.dropout > 0 and FLAGS.num_layers < 2:
            raise ValueError(
                "--dropout acts between stacked layers; with --num_layers=1 use --dropout=0."
            )
        if FLAGS.text_file is None:
            text, source = char_lm.default_corpus(), char_lm.default_corpus_name()
        else:
            text = char_lm.load_text(FLAGS.text_file)
            source = os.path.abspath(FLAGS.text_file)
        config = char_lm.Config(
            variant=FLAGS.variant,
            num_layers=FLAGS.num_layers,
            hidden_size=FLAGS.hidden_size,
            dropout=FLAGS.dropout,
            sequence_length=FLAGS.sequence_length,
            batch_size=FLAGS.batch_size,
            steps=FLAGS.steps,
            optimizer=FLAGS.optimizer,
            learning_rate=FLAGS.learning_rate,
            clip=FLAGS.clip,
            eval_every=FLAGS.eval_every,
            max_eval_windows=FLAGS.max_eval_windows,
            seed=FLAGS.seed,
            rates=regularization.rates_from_flags(FLAGS),
        )
        corpus = char_lm.make_corpus(text, source, config.sequence_length)
        prompt = char_lm.default_prompt(corpus) if FLAGS.prompt is None else FLAGS.prompt
        try:
            corpus.vocab.encode(prompt)
        except ValueError as error:
            raise ValueError(f"--prompt has {error}") from None
        _common.writable_directory("workdir", FLAGS.workdir)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        sys.exit(f"{name}: error: {error}")
    info = corpus.info()
    print(
        f"corpus: {info['name']}: {info['train_chars']:,} training and "
        f"{info['held_out_chars']:,} held-out characters, {info['vocab_size']} distinct "
        f"(uniform guess: {math.log2(info['vocab_size']):.3f} bits per character)"
    )
    with _common.supervised(name, FLAGS.workdir, wait=FLAGS.wait_for_lock):
        record = char_lm.run_char_lm(
            config,
            corpus,
            FLAGS.workdir,
            prompt=prompt,
            temperature=FLAGS.temperature,
            sample_length=FLAGS.sample_length,
        )
    print(
        f"held-out bits per character: {record['final_bpc']:.3f} after {config.steps} steps "
        f"({record['num_params']:,} parameters)"
    )
    sample = record["samples"][0]
    print(f"sample (temperature {sample['temperature']:g}):\n{sample['prompt']}{sample['text']}")
    print(f"wrote {char_lm.record_path(FLAGS.workdir, config.label)}")


def console() -> None:
    """The ``lstmx-char-lm`` command (``pip install`` puts it on the PATH)."""
    app.run(main)


if __name__ == "__main__":
    console()
