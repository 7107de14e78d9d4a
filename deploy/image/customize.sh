#!/bin/sh
# mmdebstrap's customize hook for the gpupolicy image ($1: the root filesystem; mmdebstrap has mounted /proc,
# /sys and /dev in it and unmounts them afterwards). Environment from scripts/build-image: GPUPOLICY_WHEELS (the
# folder of wheels on the host), GPUPOLICY_PIP_WHEEL (the file name of pip's wheel in it).
set -eu
root=$1
venv=/opt/gpupolicy
site=$root$venv/lib/python3.11/site-packages

# The wheels go into a folder of our own under the chroot's /tmp and only that folder is removed afterwards
# (mmdebstrap keeps its apt configuration in the chroot's /tmp: emptying /tmp would make it clean the host's).
mkdir "$root/tmp/gpupolicy-wheels"
cp "$GPUPOLICY_WHEELS"/*.whl "$(dirname "$0")/compile_imported.py" "$root/tmp/gpupolicy-wheels/"
# No environment from the host (its PIP_* settings, PYTHONPATH) reaches pip or python in the chroot.
# No byte-code is written as a side effect of imports: only compile_imported.py writes it, reproducibly.
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 "$@"; }

# A venv without pip; pip runs from its wheel, offline, and leaves no cache.
in_root /usr/bin/python3 -m venv --without-pip "$venv"
in_root "$venv/bin/python" \
  "/tmp/gpupolicy-wheels/$GPUPOLICY_PIP_WHEEL/pip" install --no-index --find-links /tmp/gpupolicy-wheels \
  --no-cache-dir --no-compile --disable-pip-version-check --no-warn-script-location -q gpupolicy

# The non-root user the image runs as by default (the kubelet plugin's pod overrides it with root).
echo 'gpupolicy:x:65532:65532:gpupolicy:/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'gpupolicy:x:65532:' >>"$root/etc/group"
echo 'gpupolicy:!:1::::::' >>"$root/etc/shadow"

# Pruning: third-party tests (and the standard library's test helpers) and type stubs; the asyncio copy of the kubernetes client (gpupolicy uses the
# synchronous one only); every byte-code cache; pip's leftovers.
find "$site" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
find "$site" \( -name '*.pyi' -o -name '*.pyc' -o -name 'test_*' \) -type f -delete
rm -rf "$root/usr/lib/python3.11/test" "$site/kubernetes/aio" "$site/kubernetes/test" "$root/root/.cache" "$root/var/cache/debconf"/*-old
find "$root/usr/lib/python3.11" "$root/usr/lib/python3" -name '__pycache__' -type d -prune -exec rm -rf {} +

# Byte-code for what gpupolicy imports, with unchecked hashes: valid whatever the files' times, so the read-only
# image never recompiles those at start-up (PYTHONDONTWRITEBYTECODE keeps it from trying for the rest).
in_root "$venv/bin/python" -P /tmp/gpupolicy-wheels/compile_imported.py
rm -rf "$root/tmp/gpupolicy-wheels"
