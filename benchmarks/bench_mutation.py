"""Mutation run: mutmut's operators over every solution region; the graded cells' kill rate.

`tinytorch-course bench mutation [MODULE] [--limit N]` (see tinytorch_course/mutants.py).
"""

import sys

from tinytorch_course.mutants import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
