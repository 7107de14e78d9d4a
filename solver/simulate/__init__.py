"""Trace replay: the FGD protocol on openb-style traces, baselines, FGD and our strategies."""
