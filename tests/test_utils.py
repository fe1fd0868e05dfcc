"""featlib.utils: the allocator setting applied when featlib is imported (``reuse_freed_memory``)."""

import os
import platform
import subprocess
import sys

import pytest

from featlib import utils

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Run in a fresh interpreter: malloc's settings are process-wide. Prints how many bytes of a 24 MiB malloc glibc
# served from fresh mmap pages (mallinfo2's hblkhd; 0 when it came from the heap, where freed blocks are reused).
# 24 MiB: above glibc's starting mmap threshold (128 KiB, raised only by frees of larger mmapped blocks), below the
# 32 MiB that reuse_freed_memory falls back to where glibc refuses 1 GiB.
_PROBE = """
import ctypes, featlib
names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in names]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print("no-mallinfo2")
else:
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(24 << 20)
    print(libc.mallinfo2().hblkhd - before)
    libc.free(block)
"""


def _mmapped_bytes(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    clean.pop(utils.MALLOC_ENV, None)
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True, cwd=str(utils.repo_root()))
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: other C libraries are left alone")
def test_import_keeps_large_blocks_on_the_heap_and_the_opt_out_restores_mmap():
    default, opted_out = _mmapped_bytes(), _mmapped_bytes(**{utils.MALLOC_ENV: "0"})
    if default == "no-mallinfo2":
        pytest.skip("glibc older than 2.33 has no mallinfo2 to observe the allocator with")
    assert int(default) == 0, "a 24 MiB block should come from the heap (reusable), not from fresh mmap pages"
    assert int(opted_out) >= 24 << 20, "with FEATLIB_MALLOC=0 glibc's own (starting) threshold should apply"


@pytest.mark.parametrize("env", [{utils.MALLOC_ENV: "0"}, {"MALLOC_TRIM_THRESHOLD_": "1000"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}])
def test_user_settings_win(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert utils.reuse_freed_memory() is False
