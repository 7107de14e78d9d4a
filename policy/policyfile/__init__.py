"""GpuPolicy files: models, compilation and the compiled policy the solver and plugin use."""

from gpupolicy.policy.policyfile.compile import compile_doc, load_policy
from gpupolicy.policy.policyfile.compiled import ClaimInfo, CompiledPolicy, Decision, RequestInfo

__all__ = ["ClaimInfo", "CompiledPolicy", "Decision", "RequestInfo", "compile_doc", "load_policy"]
