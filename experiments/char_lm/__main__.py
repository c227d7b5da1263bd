"""Trains a character-level language model and samples from it.

With no --text_file it trains on the Python Language Reference that ships with CPython
(pydoc_data.topics; no download). Examples:

  python -m experiments.char_lm
  python -m experiments.char_lm --text_file=book.txt --variant=gru --num_layers=3 \\
      --dropout=0.2 --steps=10000 --workdir=runs/book_gru
  python -m experiments.char_lm --prompt="The while statement" --temperature=0.5

Prints one progress line per evaluation (held-out bits per character) and a sample at
the end; writes WORKDIR/char_lm_VARIANT.json and keeps the trained model in
WORKDIR/checkpoints/. Killed and started again with the same flags, it resumes; started
again after training finished, it only samples again (try another --prompt or
--temperature), or trains on if --steps grew. The model and metric are described in
lstmx.char_lm.
"""

import math
import os
import sys

from absl import app, flags

from experiments.char_lm import model as char_lm
from experiments.run.loop import ConfigMismatchError
from experiments.shared import cli as _common
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
flags.DEFINE_string("prompt", "The ", "Text fed to the model before sampling.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature (> 0; lower is greedier).")
flags.DEFINE_integer("sample_length", 400, "Characters to sample.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed for initialisation, batches, dropout and sampling.")
flags.DEFINE_string("workdir", "runs/char_lm", "Directory for the record and checkpoints.")

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
flags.register_validator("prompt", bool, message="--prompt must not be empty.")
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
        )
        corpus = char_lm.make_corpus(text, source, config.sequence_length)
        try:
            corpus.vocab.encode(FLAGS.prompt)
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
    try:
        record = char_lm.run_char_lm(
            config,
            corpus,
            FLAGS.workdir,
            prompt=FLAGS.prompt,
            temperature=FLAGS.temperature,
            sample_length=FLAGS.sample_length,
        )
    except ConfigMismatchError as error:
        sys.exit(f"{name}: error: {error}")
    print(
        f"held-out bits per character: {record['final_bpc']:.3f} after {config.steps} steps "
        f"({record['num_params']:,} parameters)"
    )
    sample = record["samples"][0]
    print(f"sample (temperature {sample['temperature']:g}):\n{sample['prompt']}{sample['text']}")
    print(f"wrote {char_lm.record_path(FLAGS.workdir, config.variant)}")


if __name__ == "__main__":
    app.run(main)
