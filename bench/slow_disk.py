"""A slow disk: every fsync and fdatasync of a member delayed, by strace.

strace's syscall injection (``-e inject=...:delay_enter=``) with a seccomp
filter stops the process only at those two calls, so the rest of the member
runs at full speed. It works the same for raftkv and etcd, which have no
common hook of their own."""

from __future__ import annotations

import shutil


def strace_wrapper(delay_ms: float) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("the slow-disk fault needs strace (Debian: apt-get install strace)")
    delay_us = int(delay_ms * 1000)
    return [strace, "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null",
            "-e", "trace=fsync,fdatasync",
            "-e", f"inject=fsync,fdatasync:delay_enter={delay_us}"]
