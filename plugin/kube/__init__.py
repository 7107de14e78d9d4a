"""The one door to the Kubernetes API: a client with a sync and an async path, one error tree, resources, watches.

The kubelet plugin, the placement controller and ``gpupolicy solve --kubeconfig`` all call the API server through
:class:`Client`; their tests use in-memory stand-ins with the same methods (``tests/fakes``,
``tests/plugin/controller/fakeapi.py``).
"""

from gpupolicy.plugin.kube.client import Api, Client, Retry
from gpupolicy.plugin.kube.errors import ApiError, BudgetExceeded, Conflict, NotFound, TooManyRequests, Unreachable
from gpupolicy.plugin.kube.resources import RESOURCES, Obj, Resource, path

__all__ = [
    "RESOURCES",
    "Api",
    "ApiError",
    "BudgetExceeded",
    "Client",
    "Conflict",
    "NotFound",
    "Obj",
    "Resource",
    "Retry",
    "TooManyRequests",
    "Unreachable",
    "path",
]
