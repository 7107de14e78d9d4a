"""Reading the files a command is given: the text and its name, or a located diagnostic.

Every file a command reads (``--inventory``, ``--claims``, ``--policy``, ``--previous``, the openb
CSVs, the files ``validate`` is given, ``plugin run --policy``, ``controller run --policy``,
``--nvml sim:@FILE``) comes through :func:`read_source` (in :mod:`gpupolicy.plugin.fsutil`, so that the
kubelet plugin reads its files the same way), which reads at most the size limit plus one byte, and only
from a regular file: ``/dev/zero`` never ends and a FIFO blocks its reader until a writer comes.
"""

from __future__ import annotations

from gpupolicy.plugin.fsutil import MAX_FILE_BYTES, read_source

__all__ = ["MAX_FILE_BYTES", "read_source"]
