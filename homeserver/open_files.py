"""The open-files limit: every held long-poll and sync stream is a file descriptor.

A process may raise its soft limit up to the hard limit, and only up to it:
raising the hard limit takes CAP_SYS_RESOURCE (root with that capability, or
whoever starts the server: systemd's `LimitNOFILE=`, `ulimit -Hn`, a container
runtime's `--ulimit nofile=`). So at start the server raises the soft limit to
the hard one, and says when even that is too few for a server.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Below this, a process holds too few connections to be worth running as a server.
FEW_OPEN_FILES = 4096
# Descriptors the process needs besides its clients' sockets (database, Redis, files).
RESERVED_OPEN_FILES = 100


def _kernel_ceiling() -> int:
    """The most a soft limit may be, even with an unlimited hard limit (fs.nr_open)."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as nr_open:
            return int(nr_open.read())
    except (OSError, ValueError):
        return 1_048_576


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _kernel_ceiling() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("open files: cannot raise the limit from %d to %d: %s", soft, target, error)
        else:
            log.info("open files: limit raised from %d to %d (the hard limit)", soft, target)
            soft = target
    if soft != resource.RLIM_INFINITY and soft < FEW_OPEN_FILES:
        log.warning(
            "open files: the limit is %d, so this process can hold about %d connections;"
            " raise the hard limit (systemd LimitNOFILE=, ulimit -Hn, --ulimit nofile=)",
            soft,
            max(0, soft - RESERVED_OPEN_FILES),
        )
    return soft
