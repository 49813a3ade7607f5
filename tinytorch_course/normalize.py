"""Rebuild a submitted notebook around the instructor's cells before it is graded.

Cells are matched by their nbgrader `grade_id`:

- a locked cell (a test, given code, a locked text) is replaced by the instructor's
  version from `source/` (with its hidden tests): what is graded is the instructor's test;
- a solution cell keeps the student's source (under the instructor's metadata);
- a cell without nbgrader metadata (the student's own, or an unlocked one of the
  release) is kept where it is;
- a locked cell that appears twice is kept once; one that was deleted is put back where
  it was; one whose metadata was edited gets the instructor's; a cell with a grade_id
  the instructor never used loses that metadata (kept as the student's own cell).

Each such event is a note (`structure: test_x duplicated (kept once)`) shown in the table
and the feedback, and never costs points by itself.
"""

from __future__ import annotations

import copy

_COMPARED_KEYS = ("grade", "grade_id", "locked", "points", "solution", "task")


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    value = nbgrader_meta(cell).get("grade_id")
    return value if isinstance(value, str) and value else None


def _same_meta(student: dict, instructor: dict) -> bool:
    return all(student.get(k) == instructor.get(k) for k in _COMPARED_KEYS)


def _plain(cell):
    """`cell` without nbgrader metadata (a student's own cell)."""
    cell = copy.deepcopy(cell)
    cell.get("metadata", {}).pop("nbgrader", None)
    return cell


def _instructor_cell(cell, student=None):
    """The instructor's cell; for a solution cell, the student's source under it."""
    made = copy.deepcopy(cell)
    made.pop("outputs", None)
    made.pop("execution_count", None)
    if made.get("cell_type") == "code":
        made["outputs"], made["execution_count"] = [], None
    if student is not None:
        made["source"] = student.get("source", "")
    return made


def normalize(submission, source, release) -> tuple[object, list[str]]:
    """The notebook to grade and the structure notes. `submission`: the student's notebook;
    `source`: the instructor's (with hidden tests); `release`: what the student was given
    (the stub of a solution cell put back when the student deleted it)."""
    import nbformat

    wanted = {grade_id(c): i for i, c in enumerate(source["cells"]) if grade_id(c)}
    stubs = {grade_id(c): c for c in release["cells"] if grade_id(c)}
    present = {grade_id(c) for c in submission["cells"]} & set(wanted)
    notes: list[str] = []
    cells: list = []
    placed: set[str] = set()

    def restore_missing_before(index: int) -> None:
        for gid, position in wanted.items():
            if position < index and gid not in present and gid not in placed:
                placed.add(gid)
                original = source["cells"][position]
                if nbgrader_meta(original).get("solution") and gid in stubs:
                    cells.append(_instructor_cell(original, stubs[gid]))
                else:
                    cells.append(_instructor_cell(original))
                notes.append(f"structure: {gid} was deleted (put back)")

    for cell in submission["cells"]:
        gid = grade_id(cell)
        if gid is None:
            cells.append(_plain(cell) if nbgrader_meta(cell) else copy.deepcopy(cell))
            continue
        if gid not in wanted:
            cells.append(_plain(cell))
            notes.append(f"structure: {gid} is not a cell of this assignment (kept as plain)")
            continue
        if gid in placed:
            notes.append(f"structure: {gid} duplicated (kept once)")
            continue
        restore_missing_before(wanted[gid])
        placed.add(gid)
        original = source["cells"][wanted[gid]]
        meta = nbgrader_meta(original)
        if not _same_meta(nbgrader_meta(cell), meta) or cell.get("cell_type") != original.get(
            "cell_type"
        ):
            notes.append(f"structure: {gid} had its nbgrader metadata edited (restored)")
        solution = meta.get("solution") and not meta.get("locked")
        cells.append(_instructor_cell(original, cell if solution else None))
    restore_missing_before(len(source["cells"]) + 1)
    notebook = nbformat.from_dict(
        {
            "nbformat": 4,
            "nbformat_minor": source.get("nbformat_minor", 5),
            "metadata": copy.deepcopy(source.get("metadata", {})),
            "cells": cells,
        }
    )
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
        cell.setdefault("metadata", {})
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return notebook, notes
