"""Pytest plugins for the zipscore test suite; ``resources`` is the per-test resource monitor."""
