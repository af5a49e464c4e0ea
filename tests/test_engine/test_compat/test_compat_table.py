import ast
import re
from pathlib import Path

from densevit.engine import compat


def test_every_listed_premise_test_exists():
    """The compat table names the test that proves each workaround is
    still needed; a renamed or deleted test must update the table."""
    premises = re.findall(r'Premise[^:]*:\s+``(test_\w+\.py)::(test_\w+)``',
                          compat.__doc__)
    # Entry 2 shares entry 1's premise; entry 8 names three; every other
    # entry names its own.
    assert len(premises) == 9
    here = Path(__file__).parent
    for filename, test_name in premises:
        tree = ast.parse((here / filename).read_text())
        assert test_name in {
            node.name for node in tree.body
            if isinstance(node, ast.FunctionDef)
        }, f'{filename}::{test_name} is named in densevit.engine.compat'
