"""The language of gpupolicy: Kubernetes DRA objects, policy files, CEL, the GPU catalog.

This layer is pure: it parses text into values and validates them. It never imports
``solver`` or ``plugin``, and only ``gpupolicy.policy.cel`` touches the CEL engine (in one module,
``gpupolicy.policy.cel.syntax.parser``).
"""
