"""The test suite; its folders mirror the package layout (tests/<package>/test_*.py)."""
