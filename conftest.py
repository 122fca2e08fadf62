"""Test runs use the notebooks' smoke budgets unless told otherwise (the kernels inherit this), and
read the official Omniglot subsets in place from ../shared/omniglot when they are there."""
import os
from pathlib import Path

os.environ.setdefault("MINIREPTILE_SMOKE", "1")
_SHARED = Path(__file__).resolve().parent.parent / "shared" / "omniglot"
if _SHARED.is_dir():
    os.environ.setdefault("MINIREPTILE_OMNIGLOT", str(_SHARED))
