"""Kubernetes DRA objects (resource.k8s.io/v1, v1beta2, v1beta1) and the Pods that use them.

- models: :mod:`policy.k8s.deviceclass`, :mod:`policy.k8s.claim`, :mod:`policy.k8s.slice`,
  :mod:`policy.k8s.pod`, :mod:`policy.k8s.meta`, IDs in :mod:`policy.k8s.ids`;
- reading: :func:`policy.k8s.load.load_objects` / :func:`policy.k8s.load.load_text`
  (conversion in :mod:`policy.k8s.convert`, API-server rules in :mod:`policy.k8s.validation`,
  limits in :mod:`policy.k8s.limits`);
- writing: :mod:`policy.k8s.dump`;
- views for selectors and the solver: :mod:`policy.k8s.view` (``device_view``, ``gather_pools``).
"""
