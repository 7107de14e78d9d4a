"""Run-time values (int64/uint64, optionals, type values), equality, ordering and the operators."""
