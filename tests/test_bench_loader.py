"""`soundbench bench loader`: shards in every studied layout read back the same data; rates are real."""
from __future__ import annotations

import numpy as np
import pytest

from soundbench.bench import loader
from soundbench.features.reader import Segments, ShardDataset


@pytest.mark.parametrize("name,options", loader.LAYOUTS)
def test_every_layout_reads_back_what_was_written(tmp_path, name, options):
    options = dict(options)
    shape = (2, 8, 30)
    (tmp_path / "ref").mkdir()
    ref_paths, ids, _ = loader.write_shards(tmp_path / "ref", shape, 12, seed=3)
    (tmp_path / "x").mkdir()
    paths, ids2, seconds = loader.write_shards(tmp_path / "x", shape, 12, options.pop("n_shards", 1), seed=3,
                                               **options)
    assert ids2 == ids and seconds > 0
    ref = ShardDataset(ref_paths, ids, spec_hash=loader.SPEC_HASH)
    got = ShardDataset(paths, ids, spec_hash=loader.SPEC_HASH)
    tol = 0.05 if options.get("dtype") == "float16" else 0.0
    for i in range(len(ids)):
        np.testing.assert_allclose(got[i]["x"].numpy(), ref[i]["x"].numpy(), atol=tol)


def test_loader_rows_and_layouts_quick(monkeypatch):
    rates = {"samplecnn": 10.0, "smallcnn": 100.0}
    rows = loader.loader_rows(True, rates)
    assert [r["case"] for r in rows] == [c[0] for c in loader.CASES]
    for row in rows:
        assert all(row[f"workers_{w}"] > 0 for w in (0, 1, 2))
        assert row["loader_best"] == max(row[f"workers_{w}"] for w in (0, 1, 2))
    by_case = {r["case"]: r for r in rows}
    assert np.isclose(by_case["samplecnn"]["ratio"], by_case["samplecnn"]["loader_best"] / 10.0)
    assert "ratio" not in by_case["senot"]  # no trained system consumes it yet: no invented consumption
    layouts = {r["layout"]: r for r in loader.layout_rows(True)}
    assert layouts["contiguous float16"]["size_vs_float32"] == pytest.approx(0.5, rel=0.05)
    assert layouts["chunk per example + gzip"]["size_vs_float32"] < 1.0


def test_loader_rate_counts_segments(tmp_path):
    """SampleCNN's view: 29-s clips give 10 segments each; the rate counts segments, as training does."""
    paths, ids, _ = loader.write_shards(tmp_path, (1, 59049 * 3 + 5), 2)
    ds = ShardDataset(paths, ids, spec_hash=loader.SPEC_HASH, view=Segments(59049))
    assert len(ds) == 6
    assert loader.loader_rate(paths, ids, Segments(59049), 3, 0, 2) > 0
