"""CONTRACT section 4 metrics on hand-made cases (exact numbers)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from taxrisk.training.evaluation import EvaluationError, evaluate_ranking, ranking_order
from taxrisk.training.metrics import (
    capture_at_k,
    hit_rate_at_k,
    ranked,
    share_capture,
    share_precision,
)
from training_factories import audit, minimal_tables, tp, write_folder

AS_OF = dt.date(2025, 12, 31)


def test_pure_metrics_exact() -> None:
    gap = np.array([800.0, 5000.0, 6000.0, 0.0])
    assert capture_at_k(gap, 2) == pytest.approx(5800 / 11000)
    assert hit_rate_at_k(gap, 2) == 0.5
    assert capture_at_k(np.sort(gap)[::-1], 2) == 1.0
    assert np.isnan(capture_at_k(np.zeros(3), 2))
    # ties broken by the tiebreak key, then position
    assert ranked(np.array([1.0, 2.0, 2.0]), tiebreak=np.array(["b", "c", "a"])).tolist() == [
        2,
        1,
        0,
    ]


def test_share_metrics_weighted() -> None:
    scores = np.array([0.9, 0.8, 0.1, 0.2])
    values = np.array([0.0, 100.0, 300.0, 0.0])
    # top half by score: rows 0,1 -> 100; best half: rows 2,1 -> 400
    assert share_capture(scores, values, 0.5) == pytest.approx(0.25)
    assert share_precision(scores, values > 0, 0.5) == pytest.approx(0.5)
    # weights: row 0 stands for 3 of 6 -> top half by weight is row 0 alone
    w = np.array([3.0, 1.0, 1.0, 1.0])
    assert share_precision(scores, values > 0, 0.5, w) == 0.0


@pytest.fixture(scope="module")
def hand_world(tmp_path_factory: pytest.TempPathFactory):
    taxpayers = [
        tp("T1"),
        tp("T2"),
        tp("T3"),
        tp("T4"),
        tp("T5", dereg="2025-06-30"),
        tp("T6", registered="2026-01-15"),
    ]
    audits = [
        audit("A1", "T3", "2025-03-01", "2025-06-15", "adjusted", 4000.0),
        audit("A2", "T2", "2025-11-01", "2026-02-10", "adjusted", 800.0),
    ]
    gaps = [
        {"taxpayer_id": "T1", "period": "2024-05", "gap": 3000.0},
        {"taxpayer_id": "T1", "period": "2025-12", "gap": 2000.0},
        {"taxpayer_id": "T1", "period": "2023-12", "gap": 9999.0},  # outside the 24 months
        {"taxpayer_id": "T2", "period": "2025-01", "gap": 800.0},
        {"taxpayer_id": "T3", "period": "2025-02", "gap": 10000.0},
        {"taxpayer_id": "T4", "period": "2025-02", "gap": 0.0},
        {"taxpayer_id": "T5", "period": "2025-02", "gap": 50000.0},  # inactive
    ]
    for g in gaps:
        g |= {"tax_due": g["gap"], "tax_declared": 0.0, "scheme": ""}
    root = tmp_path_factory.mktemp("hand")
    write_folder(root, minimal_tables(taxpayers, audits) | {"truth/gaps": gaps})
    return root


def test_evaluate_ranking_from_truth_exact(hand_world) -> None:
    ranking = pd.DataFrame({"taxpayer_id": ["T2", "T1", "T3", "T5", "X9"], "rank": [1, 2, 3, 0, 4]})
    m = evaluate_ranking(hand_world, AS_OF, ranking)
    assert m["source"] == "truth"
    assert (m["k"], m["n"]) == (2, 4)
    assert m["window"] == "2024-01..2025-12"
    # T3: 10000 - 4000 recovered before the as-of date; T2's later recovery does not count
    assert m["total_gap"] == 11800.0
    assert m["oracle_gap_at_k"] == 11000.0
    assert m["gap_at_k"] == 5800.0
    assert m["capture_at_k"] == pytest.approx(5800 / 11000)
    assert m["hit_rate_at_k"] == 0.5
    assert m["oracle_hit_rate_at_k"] == 1.0
    assert m["random_capture_at_k"] == pytest.approx(2 / 4 * 11800 / 11000)
    assert m["random_hit_rate_at_k"] == 0.5
    assert (m["ranking_ignored_ids"], m["active_omitted"]) == (2, 1)


def test_ranking_order_omitted_last() -> None:
    order = ranking_order(
        pd.DataFrame({"taxpayer_id": ["B", "Z"], "rank": [1, 2]}), pd.Index(["A", "B", "C"])
    )
    assert order.tolist() == ["B", "A", "C"]
    with pytest.raises(EvaluationError, match="rank"):
        ranking_order(pd.DataFrame({"taxpayer_id": ["B"]}), pd.Index(["B"]))


def test_evaluate_ranking_from_audits_without_truth(tmp_path) -> None:
    taxpayers = [tp(f"T{i}") for i in range(1, 5)]
    audits = [
        audit("A1", "T1", "2025-11-01", "2026-01-20", "adjusted", 500.0, "random", 0.25),
        audit("A2", "T2", "2025-11-01", "2026-01-20", "no_change", 0.0, "random", 0.5),
        audit("A3", "T3", "2025-11-01", "2026-02-20", "adjusted", 900.0, "rule"),
        audit("A4", "T4", "2025-01-01", "2025-03-01", "adjusted", 70.0, "rule"),  # closed before
    ]
    root = write_folder(tmp_path / "w", minimal_tables(taxpayers, audits))
    ranking = pd.DataFrame({"taxpayer_id": ["T2", "T1", "T3", "T4"], "rank": [1, 2, 3, 4]})
    m = evaluate_ranking(root, AS_OF, ranking)
    assert m["source"] == "audits"
    assert (m["k"], m["held_out_audits"], m["audited_in_top_k"]) == (2, 3, 2)
    assert m["precision_at_k"] == 0.5
    assert m["recovered_at_k"] == 500.0
    assert m["oracle_recovered_at_k"] == 1400.0
    # random stratum, weights 4 and 2: (1*4 + 0*2) / 6
    assert m["weighted_precision_at_k"] == pytest.approx(4 / 6)
    assert m["weighted_recovered_at_k"] == 2000.0


def test_evaluation_reads_raw_rows_the_loader_quarantines(tmp_path) -> None:
    """A quarantined row still counts (issue 11, item 11): it cannot flatter a score.

    T3's audit recovered 4,000 before the as-of date, but its case row appears twice (a
    duplicated key: the loader quarantines both copies). T4 has a large gap but its registry
    row names a unit that does not exist (a broken foreign key: the loader drops T4). Read
    through the loader, T3 would keep its whole 10,000 and T4 would vanish from N, the oracle
    and the total, and a ranking of T3 first would look perfect.
    """
    from taxrisk.features.loading import load_folder

    taxpayers = [tp("T1"), tp("T2"), tp("T3"), tp("T4", unit="NOWHERE")]
    done = audit("A1", "T3", "2025-03-01", "2025-06-15", "adjusted", 4000.0)
    gaps = [
        {"taxpayer_id": "T1", "period": "2025-05", "gap": 5000.0},
        {"taxpayer_id": "T2", "period": "2025-05", "gap": 1500.0},
        {"taxpayer_id": "T3", "period": "2025-02", "gap": 10000.0},
        {"taxpayer_id": "T4", "period": "2025-02", "gap": 8000.0},
    ]
    for g in gaps:
        g |= {"tax_due": g["gap"], "tax_declared": 0.0, "scheme": ""}
    root = write_folder(
        tmp_path / "w", minimal_tables(taxpayers, [done, dict(done)]) | {"truth/gaps": gaps}
    )
    loaded = load_folder(root, as_of=AS_OF)
    assert loaded.counts["audits"].quarantined and loaded.counts["audits"].rows_used == 0
    assert loaded.counts["taxpayers"].quarantined and loaded.counts["taxpayers"].rows_used == 3

    ranking = pd.DataFrame({"taxpayer_id": ["T3", "T1", "T4", "T2"], "rank": [1, 2, 3, 4]})
    m = evaluate_ranking(root, AS_OF, ranking)
    assert (m["k"], m["n"]) == (2, 4)  # T4 is active: its registry row counts
    # T3: 10,000 - 4,000 recovered (counted once); oracle: T4 8,000 + T3 6,000
    assert m["total_gap"] == 5000.0 + 1500.0 + 6000.0 + 8000.0
    assert m["oracle_gap_at_k"] == 14000.0
    assert m["gap_at_k"] == 6000.0 + 5000.0
    assert m["capture_at_k"] == pytest.approx(11000 / 14000)
    assert m["active_omitted"] == 0 and m["ranking_ignored_ids"] == 0
