"""The paper's Tables 1-5 as data, and the renderer that puts measured rows beside them."""
from __future__ import annotations

import pytest

from egs.reference import TABLES, beside_paper, paper_table, to_markdown


@pytest.mark.parametrize("number", sorted(TABLES))
def test_rendered_tables_hold_the_papers_numbers_exactly_as_printed(number):
    columns, rows = TABLES[number]
    measured = [{columns[0]: "ours", columns[1]: "12.34", "run": "runs/x seed 0"}]
    text = to_markdown(beside_paper(number, measured, "cpu"))
    for row in rows:  # every printed cell, verbatim and in its row and column order
        assert "| paper | " + " | ".join(row) + " | - |" in text, row
    assert "| measured (cpu) | ours | 12.34 | " + " | ".join(["-"] * (len(columns) - 2)) in text
    assert text.splitlines()[0] == "| source | " + " | ".join(columns) + " | run |"
    assert text.rstrip().endswith("| runs/x seed 0 |")


def test_table5_is_the_papers_sensitivity_to_M():
    table = paper_table(5)
    assert list(table["M"]) == [str(m) for m in range(1, 10)]
    assert (table.iloc[6]["Test Error (%)"], table.iloc[6]["Params (M)"]) == ("2.59", "3.44")  # M = 7, as Table 1


def test_extra_measured_columns_come_before_run_and_are_blank_for_the_paper():
    frame = beside_paper(5, [{"M": "7", "Test Error (%)": "70.1", "Params (M)": "4.50", "active ops": "4.2",
                              "run": "07/M7"}], "smoke")
    assert list(frame.columns) == ["source", "M", "Test Error (%)", "Params (M)", "active ops", "run"]
    assert set(frame.loc[frame.source == "paper", "active ops"]) == {"-"}
    assert frame.iloc[-1].tolist() == ["measured (smoke)", "7", "70.1", "4.50", "4.2", "07/M7"]
