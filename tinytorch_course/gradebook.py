"""Record scores in nbgrader's gradebook (`<course_id>.db`), from the judge's verdicts.

Only the grader writes here (the sandbox cannot see the file). `release` created each
module's notebook and grade cells in the gradebook; a graded submission replaces the
student's earlier one (as nbgrader's autograde does), so a re-grade leaves no score of an
earlier run behind.
"""

from __future__ import annotations

import warnings

from .project import Project


def db_url(project: Project) -> str:
    return f"sqlite:///{project.root / (project.course_id + '.db')}"


def record(project: Project, results: list[tuple[str, str, str, dict[str, float]]]) -> list[str]:
    """Store `(student, module, notebook name, {grade_id: score})` for each submission;
    return the problems met (e.g. a module the gradebook does not know: not released)."""
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    problems = []
    with warnings.catch_warnings(), Gradebook(db_url(project), project.course_id) as gradebook:
        # nbgrader's add_submission right after remove_submission makes SQLAlchemy warn
        # about objects of the removed submission; the new one is stored in full.
        warnings.simplefilter("ignore", SAWarning)
        for student, module, notebook, scores in results:
            try:
                gradebook.find_assignment(module)
            except MissingEntry:
                problems.append(f"{module}: not in the gradebook (run `release` first)")
                continue
            gradebook.update_or_create_student(student)
            try:
                gradebook.remove_submission(module, student)
                gradebook.db.commit()
            except MissingEntry:
                gradebook.db.rollback()
            gradebook.add_submission(module, student)
            for grade_id, score in scores.items():
                try:
                    grade = gradebook.find_grade(grade_id, notebook, module, student)
                except MissingEntry:
                    continue
                grade.auto_score = score
                grade.manual_score = None
            gradebook.db.commit()
    return problems
