"""`soundbench bench <name>`: speed of each stage against a reference, as a table and results/bench/<name>.json.

Each bench module has `run(quick, out_dir) -> dict` (the JSON payload: rows and goals) and prints its table.
"""
from __future__ import annotations

BENCHES = ("features", "train", "loader", "workflow")  # loader reads train's record
