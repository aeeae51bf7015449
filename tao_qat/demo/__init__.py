"""``qat demo``: the TAO workflow (train -> prune -> retrain -> QAT -> export) on the vendored
aerial tree tiles, resumable step by step, ending in a report with tables and pictures."""
