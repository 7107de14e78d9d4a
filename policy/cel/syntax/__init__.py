"""Syntax: cel-python's lark parse tree turned into our syntax tree (:mod:`gpupolicy.policy.cel.ast`)."""
