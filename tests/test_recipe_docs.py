"""The example in docs/recipe.md runs as written (it is our own documentation code)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipe.md"


def test_docs_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "recipe_doc_example"})
    printed = capsys.readouterr().out
    assert "stage temperatures: 1.4 1.45" in printed
    assert "recipe/rescued" in printed
