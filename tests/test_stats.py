"""The tables' statistics (egs.repro.stats): t quantiles and tails, intervals, Welch's test, table rows."""
from __future__ import annotations

import math

import pytest

from egs.core.errors import EGSError
from egs.repro.stats import Record, betainc, interval, pooled, t_quantile, t_sf2, table_rows, welch


@pytest.mark.parametrize("df,q", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042), (1000, 1.962)])
def test_t_quantiles_match_the_printed_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-3)
    assert t_sf2(q, df) == pytest.approx(0.05, abs=1e-4)


def test_incomplete_beta_special_cases():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert betainc(2, 3, 0.4) == pytest.approx(1 - betainc(3, 2, 0.6))  # symmetry
    assert t_sf2(0.0, 5) == pytest.approx(1.0) and t_sf2(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T|>1) = 1/2


def test_interval_and_welch_on_the_issue_numbers():
    """DARTS_V2 and its parameter-free twin at an old cpu setting: 53.2 ± 5.0 and 57.6 ± 1.3, Welch p ~ 0.06."""
    good, bad = [53.2, 55.2, 51.15], [57.2, 57.3, 58.15]
    ig, ib = interval(good), interval(bad)
    assert (round(ig.mean, 2), round(ig.half, 1), round(ib.half, 1)) == (53.18, 5.0, 1.3)
    assert ig.overlaps(ib) and not interval([1, 1.1, 0.9]).overlaps(interval([5, 5.1, 4.9]))
    w = welch(bad, good)
    assert w.t == pytest.approx(3.62, abs=0.01) and 0.05 < w.p < 0.06
    assert math.isnan(interval([3.0]).half) and interval([3.0]).text() == "3.00"
    with pytest.raises(EGSError, match="two values"):
        welch([1.0], [2.0, 3.0])


def test_records_become_rows_without_reading_labels():
    records = [Record("EGS (seed 0 search)", "egs", {0: 10.0, 1: 12.0}, {"Params (M)": "2.50"}),
               Record("random 1", "random", {0: 20.0, 1: 22.0})]
    rows = table_rows(records, "Test Error (%)")
    assert rows[0] == {"Architecture": "EGS (seed 0 search)", "Test Error (%)": "11.00 ± 12.71", "seeds": 2,
                       "Params (M)": "2.50"}
    assert pooled(records) == [10.0, 12.0, 20.0, 22.0]
