"""Kubernetes pod identity from a pod log path, as the kubelet lays it out.

``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log``: namespace and
pod names are DNS names (no ``_``), so the folder splits unambiguously. The
match is on the path's ``pods/...`` suffix, so a host folder mounted elsewhere
(``/host/var/log/pods``) works too.
"""

from __future__ import annotations

import re

_POD_PATH = re.compile(r"(?:^|/)pods/([^/_]+)_([^/_]+)_([^/_]+)/([^/]+)/[^/]+\.log(?:\.[^/]*)?$")

# Labels that name a small, stable set of streams; the uid changes with every pod, so it
# stays an attribute (Loki indexes labels, and unbounded label values hurt it).
POD_LABELS = ("namespace", "pod", "container")


def pod_identity(path: str) -> dict[str, str]:
    """``namespace``, ``pod``, ``pod_uid`` and ``container`` from the path; {} if not a pod log."""
    m = _POD_PATH.search(path)
    if m is None:
        return {}
    namespace, pod, uid, container = m.groups()
    return {"namespace": namespace, "pod": pod, "pod_uid": uid, "container": container}
