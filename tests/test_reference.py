"""The paper's Tables 1-5 as data, and the renderer that puts measured rows beside them."""
from __future__ import annotations

import re
from itertools import zip_longest
from pathlib import Path

import pytest

from egs.repro.reference import (DATA_SOURCE, DATA_TABLES, NOTES, SOURCE, TABLES, beside_paper, data_table,
                           paper_table, to_markdown)

PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"  # beside every checkout

# "(Huang et al., 2017)", "(Liu et al., 2018a)", "(Zoph & Le, 2016)": a citation closing a row label.
CITATION = re.compile(r"\s*\((?:[A-Z][\w-]* et al\.|[A-Z][\w-]* & [A-Z][\w-]*), \d{4}[a-z]?\)")
MATH = re.compile(r"\s*\$\s*([^$]*?)\s*\$\s*")  # "( $M = 4$ )" -> "(M = 4)"


def _paper_text() -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted(PAPER_DIR.glob("*.txt"))] if PAPER_DIR.is_dir() else []
    texts = [t for t in texts if "Ensemble Gumbel-Softmax" in t]
    if len(texts) != 1:
        pytest.fail(f"expected the paper's text (one .txt naming 'Ensemble Gumbel-Softmax') in {PAPER_DIR}; "
                    f"found {len(texts)}. It sits beside every checkout (shared/paper/) and in CI.")
    return texts[0]


def _printed_tables(text: str) -> dict[int, list[list[str]]]:
    """Each "Table N." caption's block: the tab-separated lines after it, split into cells."""
    lines, tables = text.splitlines(), {}
    for i, line in enumerate(lines):
        caption = re.match(r"Table (\d+)\. ", line)
        if not caption:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block = []
        while j < len(lines) and "\t" in lines[j]:
            block.append(lines[j].split("\t"))
            j += 1
        tables[int(caption[1])] = block
    return tables


def _label(cell: str) -> str:
    return MATH.sub(r"\1", CITATION.sub("", cell)).strip()


def _flatten(top: list[str], sub: list[str]) -> tuple[str, ...]:
    """One name per column from a two-row header; an empty top cell continues the span to its left."""
    names, span = [], ""
    for upper, lower in zip_longest(top, sub, fillvalue=""):
        upper, lower = upper.strip(), lower.strip()
        span = upper or span
        if not lower:
            names.append(span)
        elif lower.startswith("("):  # a unit under its quantity: "Test Error" / "(%)"
            names.append(f"{span} {lower}")
        else:  # a part of a spanning quantity: "Test Error (%)" / "Top 1", "Perplexity" / "valid"
            unit = re.fullmatch(r"(.*?)\s*(\([^()]*\))", span)
            names.append(f"{unit[1]} {lower.replace(' ', '-')} {unit[2]}" if unit else f"{span} {lower}")
    return tuple(names)


def _parsed(number: int, block: list[list[str]]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    if number == 5:  # printed transposed: one row per quantity, one column per M
        labels = [_label(row[0]) for row in block]
        assert labels == ["Number of Sampling Times (M)", "Test Error (%)", "Params (M)"], labels
        return ("M", *labels[1:]), [tuple(column) for column in zip(*(row[1:] for row in block))]
    top, sub, *body = block
    assert sub[0] == "", f"Table {number}: expected a two-row header, got {sub}"
    columns = _flatten(top, sub)
    rows = [(_label(row[0]), *row[1:]) for row in body]
    assert all(len(row) == len(columns) for row in rows), f"Table {number}: ragged rows"
    return columns, rows


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_tables_are_the_papers_text_cell_by_cell(number):
    printed = _printed_tables(_paper_text())
    assert sorted(printed) == [1, 2, 3, 4, 5]
    columns, rows = _parsed(number, printed[number])
    assert TABLES[number][0] == columns
    assert list(TABLES[number][1]) == rows
    for row in rows:  # no citation left in the labels, no LaTeX either
        assert " et al." not in row[0] and "$" not in row[0] and " & " not in row[0], row[0]


def test_the_flattened_headers_and_row_counts():
    assert TABLES[1][0] == ("Architecture", "Test Error (%)", "Params (M)", "Search Cost (GPU days)", "Ops", "Search")
    assert TABLES[2][0] == ("Architecture", "Test Error Top-1 (%)", "Test Error Top-5 (%)", "Params (M)",
                            "Search Cost (GPU days)", "Search")
    assert TABLES[3][0] == ("Architecture", "Perplexity valid", "Perplexity test", "Params (M)",
                            "Search Cost (GPU days)", "Ops", "Search")
    assert TABLES[4][0] == ("Architecture", "Perplexity valid", "Perplexity test", "Params (M)",
                            "Search Cost (GPU days)", "Search")
    assert {n: len(rows) for n, (_, rows) in TABLES.items()} == {1: 16, 2: 15, 3: 11, 4: 9, 5: 9}
    for number in (1, 2, 3, 4):
        assert [r[0] for r in TABLES[number][1][-2:]] == ["DARTS-EGS (M = 4)", "DARTS-EGS (M = 7)"]


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
    assert (table.iloc[6]["Test Error (%)"], table.iloc[6]["Params (M)"]) == ("2.79", "2.79")  # M = 7, as printed


def test_the_notes_name_both_contradictions_between_tables_1_and_5():
    t1 = {row[0]: row for row in TABLES[1][1]}
    t5 = {row[0]: row for row in TABLES[5][1]}
    # the contradictions are really there, both kept as printed
    assert (t1["DARTS-EGS (M = 4)"][1], t5["4"][1]) == ("3.01", "3.05")
    assert (t1["DARTS-EGS (M = 4)"][2], t5["4"][2]) == ("2.6", "2.60")
    assert (t1["DARTS-EGS (M = 7)"][2], t5["7"][2]) == ("2.9", "2.79")
    assert isinstance(NOTES, tuple) and all(isinstance(n, str) for n in NOTES)
    assert any("M = 4" in n and "3.01" in n and "3.05" in n for n in NOTES)
    assert any("M = 7" in n and "2.9 " in n and "2.79" in n for n in NOTES)


def test_sources_name_this_paper_and_keep_DATA_apart():
    assert "Ensemble Gumbel-Softmax" in SOURCE and "Chang et al." in SOURCE
    assert "1905.01786" in SOURCE and "2019" in SOURCE and "DATA" not in SOURCE
    assert "DATA" in DATA_SOURCE and "NeurIPS 2019" in DATA_SOURCE
    assert sorted(DATA_TABLES) == sorted(TABLES)
    assert not any("DATA" in row[0] for _, rows in TABLES.values() for row in rows)
    for number, (columns, rows) in DATA_TABLES.items():
        frame = data_table(number)
        assert list(frame.columns) == ["source", *columns] and len(frame) == len(rows)
        assert set(frame.source) == {"DATA (NeurIPS 2019)"}


def test_extra_measured_columns_come_before_run_and_are_blank_for_the_paper():
    frame = beside_paper(5, [{"M": "7", "Test Error (%)": "70.1", "Params (M)": "4.50", "active ops": "4.2",
                              "run": "07/M7"}], "smoke")
    assert list(frame.columns) == ["source", "M", "Test Error (%)", "Params (M)", "active ops", "run"]
    assert set(frame.loc[frame.source == "paper", "active ops"]) == {"-"}
    assert frame.iloc[-1].tolist() == ["measured (smoke)", "7", "70.1", "4.50", "4.2", "07/M7"]
