"""Study files for ``python -m experiments.sweep --study=experiments/studies/NAME.py``.

Each defines ``get_config()``, an ``ml_collections.ConfigDict`` of the sweep's flags (the
Flax examples' convention); its docstring states the protocol and the stopping rule.
"""
