"""The course: the tutorials' helpers, and the kit that turns minift into graded exercises.

- ``tutorials.py``: what every tutorial imports (``fast_mode``, ``pick``, ``savefig``,
  ``print_table``, ``output_dir``), re-exported here as ``minift.apps.course.pick`` etc.;
- ``exercises.toml``: the exercise list, in course order (id, title, the function whose body
  the student writes, points, the tests that grade it, a hint, the tutorial that teaches it);
- ``exercises.py``: reads and checks that list;
- ``source.py``: finds a function in a source file and replaces or splices its body (by
  parsing, never by regular expressions);
- ``student.py``: ``minift course student OUT`` writes a student edition;
- ``grade.py``: ``minift course grade DIR`` grades one, exercise by exercise.
"""

from .tutorials import fast_mode, output_dir, pick, print_table, savefig

__all__ = ["fast_mode", "output_dir", "pick", "print_table", "savefig"]
