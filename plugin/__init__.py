"""The edge: kubelet DRA plugin, NVML, CDI, checkpoints, Kubernetes API and the CLI."""
