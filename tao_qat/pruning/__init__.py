"""Structured channel pruning (TAO's min_weight ``prune``, reference §7).

TF-free: ``statistics`` (filter norms, normalizers, retained counts, equalization merge),
``rules`` (what each layer type does), ``groups`` (graph analysis), ``plan`` (kept filters),
``report``. With tf_keras: ``surgery`` (rebuild) and ``run_prune`` (the command's library entry).
"""
