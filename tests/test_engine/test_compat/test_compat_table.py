import ast
import re
from pathlib import Path

from densevit.engine import compat

TESTS_ROOT = Path(__file__).parents[2]


def test_every_listed_premise_test_exists():
    """The compat table names the tests that prove each workaround is
    still needed; a renamed or deleted test must update the table."""
    entries = re.findall(r'^\d+\. ', compat.__doc__, flags=re.MULTILINE)
    premises = re.findall(r'``(test_\w+\.py)::(test_\w+)``', compat.__doc__)
    # Entry 2 shares entry 1's premise; every other entry names its own
    # (some several).
    assert len(set(premises)) >= len(entries) - 1
    for filename, test_name in premises:
        paths = list(TESTS_ROOT.rglob(filename))
        assert len(paths) == 1, f'{filename} named in densevit.engine.compat'
        tree = ast.parse(paths[0].read_text())
        assert test_name in {
            node.name for node in tree.body
            if isinstance(node, ast.FunctionDef)
        }, f'{filename}::{test_name} is named in densevit.engine.compat'
