"""The committed notebooks are exactly what ``notebooks/make_notebooks.py``
writes: edit the generator, not the ``.ipynb`` files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = generator()


@pytest.mark.parametrize("name", sorted(GEN.NOTEBOOKS))
def test_committed_notebook_is_generated(name: str) -> None:
    built = GEN.build(name, GEN.NOTEBOOKS[name])
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    as_json = lambda nb: json.loads(nbformat.writes(nb))  # noqa: E731
    assert as_json(committed) == as_json(built), (
        f"notebooks/{name} differs from what make_notebooks.py writes: "
        "run `python notebooks/make_notebooks.py` and commit the result"
    )


def test_every_notebook_on_disk_has_a_generator() -> None:
    on_disk = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert on_disk == set(GEN.NOTEBOOKS), on_disk ^ set(GEN.NOTEBOOKS)
