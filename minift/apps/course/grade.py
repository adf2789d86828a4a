"""``minift course grade DIR``: grade a student edition, exercise by exercise.

For each exercise the grader takes the student's function (and only it) from ``DIR``,
splices it into a fresh copy of the reference minift, and runs that exercise's tests
against the copy in a subprocess. So an exercise is graded on its own code with every other
part the reference's: one failing exercise cannot fail another, and a crash in the
student's code (an exception, an infinite loop: the per-exercise timeout) fails only it.

Grading is deterministic: hypothesis runs with a fixed seed (``--hypothesis-seed=0``) and
the suite's ``ci`` profile, in an empty folder (no example database to replay). An exercise
earns all of its points when all of its tests pass, none otherwise; a failure reports
pytest's message and hypothesis' shrunk example (or gradcheck's, which names the input, the
index, and the analytic and numeric values).

Outputs: a table on stdout; ``--json FILE`` in the shape GitHub Classroom's autograding
reporter reads (``{"version": 1, "status", "max_score", "tests": [{"name", "status",
"score", "max_score", "message"}]}``); ``--junit FILE`` with one test case per exercise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import source
from .exercises import Exercise, source_path
from .student import SKIPPED_NAMES, repository_root

TIMEOUT_SECONDS = 300
ERROR_LINE = re.compile(r"\b\w*(Error|Exception)\b: ")  # a line that names an exception and its message


@dataclass
class Result:
    id: str
    title: str
    points: int
    earned: int
    passed: bool
    detail: str  # empty when passed


def _reference_copy(root: Path, into: Path) -> None:
    """The package as ``import minift`` sees it: ``minift/`` with ``kernels/`` inside it."""
    ignore = shutil.ignore_patterns(*SKIPPED_NAMES)
    shutil.copytree(root / "minift", into / "minift", ignore=ignore)
    shutil.copytree(root / "kernels", into / "minift" / "kernels", ignore=ignore)


def _package_path(copy: Path, module: str) -> Path:
    """``module``'s file in a reference copy (where ``kernels`` sits inside ``minift``)."""
    base = copy.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _failure_detail(junit_file: Path, output: str) -> str:
    """The first failing test's name and message; hypothesis puts its shrunk example in the
    message ("Falsifying example" / "Failing test case"), gradcheck its input and index."""
    try:
        cases = list(ET.parse(junit_file).getroot().iter("testcase"))
    except (ET.ParseError, FileNotFoundError):
        cases = []
    for case in cases:
        element = case.find("failure") if case.find("failure") is not None else case.find("error")
        if element is not None:
            message = element.get("message") or (element.text or "").strip().splitlines()[-1:][0]
            lines = [line for line in message.splitlines() if "full report in element text" not in line] or [""]
            example = [i for i, line in enumerate(lines) if line.startswith(("Falsifying example", "Failing test case"))]
            report = [line[1:].strip() for line in (element.text or "").splitlines() if line.startswith("E ")]
            evidence = lines[example[0]:example[0] + 15] if example else report[-15:]  # else pytest's E lines
            # The exceptions named anywhere in the failure come first: with several MPI ranks
            # failing at once, their lines interleave, the example may come before them, and
            # pytest shortens the message (to ~450 characters), so the report is searched too.
            everywhere = dict.fromkeys(line.strip() for line in lines[1:] + report)
            named = [line for line in everywhere if ERROR_LINE.search(line) and line != lines[0].strip()][:3]
            evidence = named + [line for line in evidence if line.strip() not in named]
            return "\n".join([f"{case.get('name', '?')}: {lines[0]}", *evidence])
    return output.strip()[-1500:] or "pytest failed without a report"


def grade_exercise(exercise: Exercise, student_dir: Path, root: Path, python: str = sys.executable) -> Result:
    """Splice the student's function into a reference copy and run the exercise's tests."""
    result = Result(exercise.id, exercise.title, exercise.points, 0, False, "")
    student_file = source_path(Path(student_dir), exercise.module)
    with tempfile.TemporaryDirectory(prefix=f"minift-grade-{exercise.id}-") as work:
        work = Path(work)
        try:
            text = student_file.read_text(encoding="utf-8")
            function = source.function_text(text, exercise.qualname, where=str(student_file))
            _reference_copy(root, work)
            target = _package_path(work, exercise.module)
            spliced = source.replace_function(target.read_text(encoding="utf-8"), exercise.qualname, function, str(target))
            target.write_text(spliced, encoding="utf-8")
        except (OSError, source.SourceEditError) as exc:
            result.detail = f"could not take the student's {exercise.qualname}: {exc}"
            return result
        junit = work / "report.xml"
        command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                   "--hypothesis-seed=0", f"--junitxml={junit}", f"--rootdir={root}",
                   *(str(root / test) for test in exercise.tests)]
        # MINIFT_BACKEND=numpy: ops run on the NumPy reference, where the student's code is.
        env = {**os.environ, "PYTHONPATH": str(work), "HYPOTHESIS_PROFILE": "ci", "PYTHONDONTWRITEBYTECODE": "1",
               "MINIFT_BACKEND": "numpy"}
        try:
            run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            result.detail = f"the tests did not finish within {TIMEOUT_SECONDS} s (an infinite loop?)"
            return result
        if run.returncode == 0:
            result.earned, result.passed = exercise.points, True
        else:
            result.detail = _failure_detail(junit, run.stdout + run.stderr)
    return result


def grade(student_dir: Path, exercises: list[Exercise], root: Path | None = None, progress=print,
          jobs: int | None = None) -> list[Result]:
    """Grade every exercise of ``exercises`` in ``student_dir``, ``jobs`` at a time (default:
    one per CPU; each runs in its own process and folder); ``progress`` gets a line each."""
    root = root or repository_root()
    if not Path(student_dir, "minift").is_dir():
        raise FileNotFoundError(f"{student_dir} is not a student edition: it has no minift/ folder")

    def one(exercise: Exercise) -> Result:
        result = grade_exercise(exercise, Path(student_dir), root)
        progress(f"{exercise.id:>5}  {'pass' if result.passed else 'FAIL'}  {exercise.title}")
        return result

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        return list(pool.map(one, exercises))


def format_table(results: list[Result]) -> str:
    """Exercise, points earned / possible, pass/fail; each failure's detail below the table."""
    rows = [("exercise", "title", "points", "result")]
    rows += [(r.id, r.title, f"{r.earned} / {r.points}", "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    earned, possible = sum(r.earned for r in results), sum(r.points for r in results)
    lines.append(f"total: {earned} / {possible} points")
    for r in results:
        if not r.passed:
            lines += ["", f"--- exercise {r.id}, {r.title}:", r.detail]
    return "\n".join(lines)


def write_json(results: list[Result], path: Path) -> None:
    """GitHub Classroom's autograding-reporter shape, one test per exercise."""
    tests = [{"name": f"{r.id} {r.title}", "status": "pass" if r.passed else "fail", "score": r.earned,
              "max_score": r.points, "message": r.detail} for r in results]
    report = {"version": 1, "status": "pass" if all(r.passed for r in results) else "fail",
              "max_score": sum(r.points for r in results), "score": sum(r.earned for r in results),
              "tests": tests, "exercises": [asdict(r) for r in results]}
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def write_junit(results: list[Result], path: Path) -> None:
    """One JUnit ``testsuite`` named ``minift-course``, a ``testcase`` per exercise."""
    suite = ET.Element("testsuite", name="minift-course", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="minift.course", name=f"{r.id} {r.title}")
        ET.SubElement(case, "properties").append(ET.Element("property", name="points", value=f"{r.earned}/{r.points}"))
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=r.detail.splitlines()[0] if r.detail else "failed")
            failure.text = r.detail
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
