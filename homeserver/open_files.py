"""The open-files limit: every held long-poll and sync stream is a file descriptor.

A process may raise its soft limit up to the hard limit; raising the hard limit
takes CAP_SYS_RESOURCE (root in most containers has not got it: Docker and
Kubernetes drop it by default), or is done by whoever starts the server:
systemd's `LimitNOFILE=`, `ulimit -Hn`, a container runtime's `--ulimit
nofile=`. So at start the server raises the hard limit to the kernel's ceiling
(fs.nr_open) where it may, then the soft limit to the hard one, and says when
even that is too few for a server.
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


def _raise_hard_limit(hard: int) -> int:
    """The hard limit, raised to the kernel's ceiling when the process may (it has
    CAP_SYS_RESOURCE); unchanged, and said at INFO, when it may not."""
    ceiling = _kernel_ceiling()
    if hard == resource.RLIM_INFINITY or hard >= ceiling:
        return hard
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, ceiling))
    except (ValueError, OSError):
        log.info("open files: the hard limit %d stays (raising it needs CAP_SYS_RESOURCE)", hard)
        return hard
    log.info("open files: hard limit raised from %d to %d (fs.nr_open)", hard, ceiling)
    return ceiling


def raise_open_files_limit() -> int:
    """Raise the hard RLIMIT_NOFILE to fs.nr_open where permitted, and the soft limit to
    the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = _raise_hard_limit(hard)
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
