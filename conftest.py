"""Test runs use the notebooks' smoke budgets unless told otherwise (the kernels inherit this)."""
import os

os.environ.setdefault("MINIREPTILE_SMOKE", "1")
