"""The ``>>>`` examples of docs/losses.md run and print what the page says."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "losses.md"


def test_losses_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    examples = [b for b in blocks if b.lstrip().startswith(">>>")]
    assert len(examples) >= 2, "docs/losses.md lost its runnable examples"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(examples):
        test = parser.get_doctest(block, {}, f"losses.md example {i}", str(DOCS), 0)
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} docs/losses.md example(s) failed (printed above)"
