"""``minift course student OUT`` and ``minift course grade DIR``: the kit's command line.

Exit status: 0 when the edition was written / every graded exercise passed; 1 when some
exercise failed; 2 when an argument cannot be used (one line on stderr, nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .exercises import load_exercises, select


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="course_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    student = actions.add_parser("student", help="write a student edition: minift with exercise bodies removed",
                                 description=__doc__.split("\n")[0])
    student.add_argument("out", type=Path, help="a new folder for the edition")
    grade = actions.add_parser("grade", help="grade a student edition, exercise by exercise",
                               description="Splice each exercise's function from DIR into the reference and "
                                           "run its property tests; print a table.")
    grade.add_argument("dir", type=Path, help="the student edition to grade")
    grade.add_argument("--json", type=Path, metavar="FILE", help="also write GitHub Classroom-style JSON")
    grade.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report")
    for action in (student, grade):
        action.add_argument("--exercises", metavar="IDS", default=None,
                            help="comma-separated ids or part numbers, e.g. 1.1,1.4,4 (default: all)")
    actions.add_parser("list", help="the exercises, in course order")


def run(args) -> int:
    from . import grade, student

    try:
        exercises = select(load_exercises(), getattr(args, "exercises", None))
        if args.course_command == "list":
            for e in exercises:
                print(f"{e.id:>5}  {e.points} pt  {e.target:<58} {e.title}")
            return 0
        if args.course_command == "student":
            changed = student.write_student_edition(args.out, exercises)
            print(f"wrote a student edition to {args.out}: {len(exercises)} exercises in {len(changed)} files")
            print(f"next: cd {args.out} && pip install -e '.[test]'; grade with: minift course grade {args.out}")
            return 0
        results = grade.grade(args.dir, exercises)
    except (ValueError, OSError) as error:
        print(f"minift course {args.course_command}: error: {error}", file=sys.stderr)
        return 2
    print(grade.format_table(results))
    if args.json:
        grade.write_json(results, args.json)
    if args.junit:
        grade.write_junit(results, args.junit)
    return 0 if all(r.passed for r in results) else 1
