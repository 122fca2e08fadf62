"""Notebooks are stored without outputs (they run top to bottom in the suite through nbmake)."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_every_notebook_the_course_names_is_there_and_each_has_exercises():
    from minireptile import course
    numbers = {p.name[:2] for p in NOTEBOOKS}
    assert {number for number, *_ in course.EXERCISES} <= numbers          # the index names no missing notebook
    assert numbers == {f"{i:02d}" for i in range(len(NOTEBOOKS))}          # numbered 00, 01, ... without gaps


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def notebook_03_without_data(tmp_path, monkeypatch, timeout):
    """Notebook 03 read, and a client to run it in tmp_path, with $MINIREPTILE_OMNIGLOT an empty folder."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    empty = tmp_path / "no-omniglot-here"
    empty.mkdir()
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT", str(empty))
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.name.startswith("03_")), as_version=4)
    return nb, nbclient.NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(tmp_path)}}), empty


def test_a_notebook_without_omniglot_stops_with_the_message_instead_of_faking_data(tmp_path, monkeypatch):
    """Outside smoke mode, notebook 03 with an empty data folder (and no network) must stop at
    its data cell, saying how to get Omniglot, and never train on the synthetic pool."""
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MINIREPTILE_SMOKE", "0")
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT_URL", "http://127.0.0.1:9/")   # nothing listens there
    nb, client, empty = notebook_03_without_data(tmp_path, monkeypatch, timeout=120)
    with pytest.raises(nbclient.exceptions.CellExecutionError,
                       match=r"no Omniglot at .*no-omniglot-here.*python -m minireptile download"):
        client.execute()
    training = [c for c in nb.cells if c.cell_type == "code" and "combinations.train(" in c.source]
    assert training and all(c.execution_count is None for c in training)        # never reached
    assert list(empty.iterdir()) == []                                           # nothing half-downloaded


@pytest.mark.slow
def test_a_notebook_without_omniglot_below_the_class_budget_says_how_to_get_it(tmp_path, monkeypatch):
    """At the grading budget (as nbgrader runs it) notebook 03 with an empty data folder runs on
    labelled synthetic patterns: its output names MINIREPTILE_OMNIGLOT and the download command, and
    every table of numbers is headed by the sentence that they are no results."""
    monkeypatch.setenv("MINIREPTILE_GRADING", "1")
    nb, client, empty = notebook_03_without_data(tmp_path, monkeypatch, timeout=300)
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    printed = ["".join(o.get("text", "")) for c in code for o in c.outputs]
    text = "\n".join(printed)
    assert "MINIREPTILE_OMNIGLOT" in printed[0] and "python -m minireptile download --data DIR --subsets" in printed[0]
    ours = ["".join(o.get("text", "")) for c in code if "course.reference(" not in c.source for o in c.outputs]
    tables = [t for t in ours if "%" in t or "+-" in t]
    assert tables and all("These numbers are no results: synthetic" in t for t in tables), tables
    reference = [c for c in code if "course.reference(" in c.source]      # the committed run's numbers: results
    assert reference and "random initialization" in "".join(o.get("text", "") for o in reference[0].outputs)
    assert "random initialization" in text and list(empty.iterdir()) == []
