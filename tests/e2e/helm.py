"""Render the chart under ``deploy/helm/gpupolicy`` with the helm binary the test bed builds."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.controlplane import REPO

CHART = REPO / "deploy" / "helm" / "gpupolicy"
KUBE_VERSION = "v1.37.2"


class HelmError(RuntimeError):
    pass


def helm_template(
    helm: Path, release: str, namespace: str, values: dict[str, Any], workdir: Path, *, chart: Path = CHART
) -> list[dict[str, Any]]:
    """``helm template`` with ``values`` (written to a file) and the objects it prints, in order."""
    values_file = workdir / f"{release}-values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    proc = subprocess.run(
        [
            str(helm),
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            str(values_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "helm-cache"), "PATH": "/usr/bin:/bin"},
    )
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def helm_lint(helm: Path, values: dict[str, Any], workdir: Path, *, chart: Path = CHART) -> str:
    values_file = workdir / "lint-values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    proc = subprocess.run(
        [str(helm), "lint", "--strict", str(chart), "--kube-version", KUBE_VERSION, "--values", str(values_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "helm-cache"), "PATH": "/usr/bin:/bin"},
    )
    if proc.returncode != 0:
        raise HelmError(proc.stdout + proc.stderr)
    return proc.stdout


def _helm(helm: Path, argv: list[str], workdir: Path, timeout_s: float = 180) -> str:
    proc = subprocess.run(
        [str(helm), *argv],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={"HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "helm-cache"), "PATH": "/usr/bin:/bin"},
    )
    if proc.returncode != 0:
        raise HelmError((proc.stdout + proc.stderr).strip())
    return proc.stdout


def helm_install(
    helm: Path, kubeconfig: Path, release: str, namespace: str, values: dict[str, Any], workdir: Path
) -> str:
    """``helm install`` of the chart into the API server of ``kubeconfig`` (no waiting for pods)."""
    return _helm_release(helm, "install", kubeconfig, release, namespace, values, workdir)


def helm_upgrade(
    helm: Path, kubeconfig: Path, release: str, namespace: str, values: dict[str, Any], workdir: Path
) -> str:
    return _helm_release(helm, "upgrade", kubeconfig, release, namespace, values, workdir)


def _helm_release(
    helm: Path, verb: str, kubeconfig: Path, release: str, namespace: str, values: dict[str, Any], workdir: Path
) -> str:
    values_file = workdir / f"{release}-{verb}-values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    argv = [verb, release, str(CHART), "--namespace", namespace, "--kubeconfig", str(kubeconfig)]
    return _helm(helm, [*argv, "--values", str(values_file)], workdir)


def helm_uninstall(helm: Path, kubeconfig: Path, release: str, namespace: str, workdir: Path) -> str:
    argv = ["uninstall", release, "--namespace", namespace, "--kubeconfig", str(kubeconfig), "--wait"]
    return _helm(helm, argv, workdir)


def helm_releases(helm: Path, kubeconfig: Path, namespace: str, workdir: Path) -> list[str]:
    out = _helm(helm, ["list", "--namespace", namespace, "--kubeconfig", str(kubeconfig), "-q"], workdir)
    return out.split()
