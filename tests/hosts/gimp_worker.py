"""The worker the GIMP test talks to: `python -m core serve --test-ops` plus this folder's test operator.

Run from the repository root with the project's environment; arguments are passed on to `serve`.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

import gimp_test_operators  # noqa: E402

gimp_test_operators.install()

from core.cli import main  # noqa: E402

sys.exit(main(["serve", "--test-ops"] + sys.argv[1:]))
