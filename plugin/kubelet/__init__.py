"""The kubelet DRA plugin: gRPC server, prepare/unprepare, checkpoints, CDI, MIG and sharing, NVML, publishing."""
