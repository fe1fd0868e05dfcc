# Root conftest: applies to tests/ and to notebooks collected by nbmake.
import os

# Notebooks and scripts run their fast "smoke" path under pytest (same code, tiny sizes).
os.environ.setdefault("FEATLIB_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
