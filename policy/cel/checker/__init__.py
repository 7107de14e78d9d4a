"""Checking: static types, cost estimates and evaluation closures, in one pass over the syntax tree."""
