"""Kubernetes DRA objects (resource.k8s.io/v1, v1beta2, v1beta1) and the Pods that use them.

- models: :mod:`gpupolicy.policy.k8s.deviceclass`, :mod:`gpupolicy.policy.k8s.claim`, :mod:`gpupolicy.policy.k8s.slice`,
  :mod:`gpupolicy.policy.k8s.pod`, :mod:`gpupolicy.policy.k8s.meta`, IDs in :mod:`gpupolicy.policy.k8s.ids`;
- reading: :func:`gpupolicy.policy.k8s.load.load_objects` / :func:`gpupolicy.policy.k8s.load.load_text`
  (conversion in :mod:`gpupolicy.policy.k8s.convert`, API-server rules in :mod:`gpupolicy.policy.k8s.validation`,
  limits in :mod:`gpupolicy.policy.k8s.limits`);
- writing: :mod:`gpupolicy.policy.k8s.dump`;
- views for selectors and the solver: :mod:`gpupolicy.policy.k8s.view` (``device_view``, ``gather_pools``).
"""
