"""Strict numerics for every test, as in equinox's test setup, and compile once per program.

* ``jax_numpy_rank_promotion="raise"`` and ``"highest"`` matmul precision everywhere.
* XLA compiles without its backend optimisations (``--xla_backend_optimization_level=0``):
  the tests check equalities, not speed, and most of their time is compilation, which this
  roughly halves. Subprocesses (the command-line tests) inherit it.
* One persistent compilation cache for the session, shared with the subprocesses, so a
  script run twice (resume tests, the same flags in several tests) compiles once.
"""

import os
import tempfile

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]
).strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="lstmx-tests-jax-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402  (after the environment it reads)

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")
