"""bench/bench_ceiling.py redraws the very sessions the generator wrote (else its oracles score others)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq


def test_the_ceiling_redraws_the_generators_sessions(tmp_path: Path) -> None:
    from bench import bench_ceiling as C
    from skiff.data import generate

    summary = generate(tmp_path, sessions=1500, seed=3, end=C.END, span_hours=C.SPAN_HOURS)
    lat = C.latents(1500, 3)
    browsing = pq.read_table(summary.files["browsing_train"])
    details = browsing.filter(pc.equal(browsing["product_action"], "detail"))
    (part,) = lat["parts"]
    v = part["views"]
    kept = v.time < lat["end_ms"]  # the generator cuts what runs past the span's end
    ids = np.array(part["ids"], dtype=object)[v.session[kept]]
    skus = np.array(lat["cat"].skus.to_pylist(), dtype=object)[v.product[kept]]
    assert details["session_id_hash"].to_pylist() == ids.tolist()
    assert details["product_sku_hash"].to_pylist() == skus.tolist()
    state = C._cart_state(lat)
    assert set(state) == set(part["ids"])
    assert all(0.0 <= s["true_p"] <= 1.0 for s in state.values())
