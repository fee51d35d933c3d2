"""results/runs.csv as a stranger may leave it: every row read against its schema, refused in one line naming the
file, the line and the fix, and never rewritten unless the user asks (--upgrade-store)."""

import csv
import io

import pytest
from conftest import a_run_row

from kwsprune.results import RUN_FIELDS, append_rows, read_runs, upgrade_runs
from kwsprune.row_schema import row_problem
from kwsprune.validation import InputError


def store(tmp_path, *rows, header=RUN_FIELDS) -> str:
    """A results folder whose runs.csv holds `rows` under `header`; its path as text."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    (results / "runs.csv").write_text(out.getvalue())
    return str(results)


def refusal(results) -> str:
    with pytest.raises(InputError) as error:
        read_runs(results)
    return str(error.value)


@pytest.mark.parametrize("field, value, must_be", [
    ("n", "x/../../../../../ESCAPED", "a whole number of clips or 'all'"),  # once a file name outside the data root
    ("method", "x\n```\n<img src=x onerror=alert(1)>\n```", "a registered method name"),  # once live HTML in the report
    ("method", "$\\frac{$", "a registered method name"),  # once a matplotlib mathtext crash
    ("test_acc", "nan", "an accuracy in [0, 1]"),
    ("test_loss", "-1", "a number, 0 or more (nan or inf where a run diverged)"),
    ("repeat", "two", "a whole number"),
    ("n_test", "1e9", "a whole number"),
    ("ratio", "1.5", "a fraction removed in [0, 1]"),
    ("kept", "../../etc", "a 12-digit hexadecimal id, 'all' or empty"),
    ("outcomes", "../../../x.npy", "a sha256 (64 hexadecimal digits) or empty"),
    ("recipe", "dropout=0.1\n<script>", "name=value;... as kwsprune writes a recipe"),
])
def test_a_value_its_column_does_not_allow_is_refused_naming_the_line(tmp_path, field, value, must_be):
    results = store(tmp_path, a_run_row(), a_run_row(**{"repeat": "1", field: value}))
    assert refusal(results) == (f"{results}/runs.csv, line 3: the row has {field} {value[:40]!r}, which is not {must_be}: "
                                f"restore runs.csv from a copy, or delete that line (its run trains again)")


def test_a_diverged_runs_loss_is_a_result_and_read():
    assert row_problem(a_run_row(test_loss="nan")) is None and row_problem(a_run_row(test_loss="inf")) is None


def test_two_rows_of_one_run_are_refused_naming_both_lines(tmp_path):
    results = store(tmp_path, a_run_row(test_acc="0.306"), a_run_row(repeat="1"), a_run_row(test_acc="0.016"))
    assert refusal(results).startswith(f"{results}/runs.csv, lines 2 and 4: two rows of one run (keep_hard at ratio 0.3, "
                                       f"n 40, repeat 0): keep the one you trust, delete the other")


def test_columns_moved_deleted_or_foreign_are_refused_and_the_file_left_as_it_was(tmp_path):
    shuffled = RUN_FIELDS[::-1]
    results = store(tmp_path, a_run_row(), header=shuffled)
    before = (tmp_path / "results" / "runs.csv").read_bytes()
    assert "(its columns put back in kwsprune's order" in refusal(results) and "--upgrade-store" in refusal(results)
    assert (tmp_path / "results" / "runs.csv").read_bytes() == before  # refused, never rewritten
    assert "1 rows moved to the current columns" in upgrade_runs(results)  # asked for: each value in its column
    assert read_runs(results) == [a_run_row()]

    results = store(tmp_path, a_run_row(), header=[field for field in RUN_FIELDS if field != "seconds"])
    assert refusal(results).endswith("lacks the columns ['seconds'], which no kwsprune left out: restore runs.csv from a copy")
    with pytest.raises(InputError):
        upgrade_runs(results)  # not an older kwsprune's file: nothing to upgrade it from
    results = store(tmp_path, {"who": "1"}, header=["who"])
    assert "is not a kwsprune runs.csv (columns ['who'] are not ours)" in refusal(results)


def test_a_row_longer_or_shorter_than_the_header_is_refused(tmp_path):
    results = store(tmp_path, a_run_row())
    path = tmp_path / "results" / "runs.csv"
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[1] + ",extra\n")
    assert refusal(results).startswith(f"{path}, line 3: the row has more values than the header has columns")
    path.write_text(whole + "keep_hard,0.3\n")
    assert refusal(results).startswith(f"{path}, line 3: the row has fewer values than the header has columns")


def test_an_empty_file_a_byte_order_mark_and_a_line_cut_by_a_kill_are_read_as_what_they_are(tmp_path):
    results = store(tmp_path)
    path = tmp_path / "results" / "runs.csv"
    path.write_text("")  # what a kill right after the file's creation leaves
    assert read_runs(results) == []
    append_rows(results, [a_run_row()])  # and the next sweep starts it
    assert read_runs(results) == [a_run_row()]
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # re-saved by a spreadsheet
    assert read_runs(results) == [a_run_row()]
    path.write_text(path.read_text(encoding="utf-8-sig") + "keep_hard,0.3,4,4")  # a row cut off mid-line
    assert read_runs(results) == [a_run_row()]


def test_a_row_kwsprune_would_refuse_is_never_appended(tmp_path):
    results = store(tmp_path)
    with pytest.raises(ValueError, match="has n 'x/..'"):
        append_rows(results, [a_run_row(n="x/..")])
    assert read_runs(results) == []
