"""What a process on this machine holds, read from /proc (Linux only).

Used to watch the server under test: its resident memory, its open file
descriptors, and the TCP connections it holds on its listening port (one per
client connection, so they show whether the server has really accepted every
long-poll the client thinks is open, and whether it lets go once the client
hangs up: a socket the client closed and the server did not is in CLOSE_WAIT).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProcessSample:
    rss_kb: int
    peak_rss_kb: int
    open_fds: int
    threads: int
    # User plus system CPU time the process has used since it started.
    cpu_s: float = 0.0
    # Sockets of this process connected on the listening port, by TCP state.
    established: int = 0
    close_wait: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "rss_kb": self.rss_kb,
            "peak_rss_kb": self.peak_rss_kb,
            "open_fds": self.open_fds,
            "threads": self.threads,
            "cpu_s": round(self.cpu_s, 3),
            "established": self.established,
            "close_wait": self.close_wait,
        }


# TCP states as /proc/net/tcp writes them (include/net/tcp_states.h).
TCP_ESTABLISHED = "01"
TCP_CLOSE_WAIT = "08"


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def tcp_states(pid: int, port: int) -> dict[str, str]:
    """Socket inode -> TCP state of every socket whose local port is `port`, in the
    network namespace of `pid` (one read of the table serves every process in it:
    with 25,000 connections it is 50,000 lines)."""
    states: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as lines:
                next(lines, None)  # header
                for line in lines:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        states[fields[9]] = fields[3]
        except FileNotFoundError:  # no IPv6
            continue
    return states


def _connections_on_port(pid: int, states: dict[str, str]) -> tuple[int, int]:
    """(established, close_wait) sockets of `pid` among `states` (`tcp_states`)."""
    established = close_wait = 0
    for inode in _socket_inodes(pid):
        state = states.get(inode)
        if state == TCP_ESTABLISHED:
            established += 1
        elif state == TCP_CLOSE_WAIT:
            close_wait += 1
    return established, close_wait


def open_fds(pid: int) -> int:
    """How many file descriptors `pid` holds: a cheap count of the connections it has
    accepted (one each) plus a constant few."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample_process(
    pid: int, port: int | None = None, states: dict[str, str] | None = None
) -> ProcessSample:
    """VmRSS, VmHWM and Threads from /proc/PID/status, the count of /proc/PID/fd,
    and with `port` the process's connections on that local port (from `states`,
    `tcp_states` read once for several processes, else read here).

    Raises `OSError` when the process is gone or not ours to read.
    """
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "Threads"):
                fields[name] = int(value.split()[0])
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # Fields after the parenthesised command name; utime and stime are 14 and 15.
        after_name = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(after_name[11]) + int(after_name[12])) / ticks
    established = close_wait = 0
    if port:
        states = tcp_states(pid, port) if states is None else states
        established, close_wait = _connections_on_port(pid, states)
    return ProcessSample(
        rss_kb=fields.get("VmRSS", 0),
        peak_rss_kb=fields.get("VmHWM", 0),
        open_fds=open_fds(pid),
        threads=fields.get("Threads", 0),
        cpu_s=cpu_s,
        established=established,
        close_wait=close_wait,
    )


# What to ask for when the hard limit is unlimited (the kernel's usual nr_open).
UNLIMITED_OPEN_FILES = 1_048_576


def raise_open_files_limit(wanted: int | None = None) -> int:
    """Raise this process's soft RLIMIT_NOFILE to `wanted`, or to the hard limit.

    Every held long-poll is a socket at both ends, and the usual soft limit of
    1024 would cap a run at about a thousand. Never lowers the limit; returns
    the soft limit now in force. Also the server child's `preexec_fn` in
    `bench.spawn`, so it must stay callable without arguments.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = UNLIMITED_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    target = ceiling if wanted is None else min(wanted, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a supervisor's workers), from /proc."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as children:
                    queue.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


class ServerWatch:
    """Readings of the server process, or none when its pid is unknown or unreadable.
    A supervisor (`run --workers N`) reads as the sum of it and its workers."""

    def __init__(self, pid: int | None, port: int | None) -> None:
        self.pid = pid
        self.port = port

    def sample(self) -> ProcessSample | None:
        if self.pid is None:
            return None
        samples = []
        for pid in process_tree(self.pid):
            try:
                samples.append(sample_process(pid, self.port))
            except OSError:
                continue
        if not samples:
            return None
        return ProcessSample(
            rss_kb=sum(s.rss_kb for s in samples),
            peak_rss_kb=sum(s.peak_rss_kb for s in samples),
            open_fds=sum(s.open_fds for s in samples),
            threads=sum(s.threads for s in samples),
            cpu_s=sum(s.cpu_s for s in samples),
            established=sum(s.established for s in samples),
            close_wait=sum(s.close_wait for s in samples),
        )
