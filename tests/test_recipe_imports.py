"""polaris.recipe stays engine-neutral: no torch, TRL, transformers or trainer code on import."""

import subprocess
import sys

import polaris.recipe


def test_import_pulls_in_no_engine():
    code = (
        "import sys, polaris.recipe\n"
        "bad = sorted(m for m in ('torch', 'trl', 'transformers', 'accelerate', 'numpy', 'polaris.train')"
        " if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_public_names_exist():
    for name in polaris.recipe.__all__:
        assert hasattr(polaris.recipe, name), name
    for name in (
        "process_batch",
        "RescueStore",
        "substitute_informative",
        "DifficultyLog",
        "Group",
        "Rollout",
    ):
        assert name in polaris.recipe.__all__
