"""Compiler flags for patch objects that fit the kernel the test guests boot.

images/kernel-cflags.sh over that kernel's config ($HVP_KERNEL_DIR/config, as
images/fetch-kernel.sh leaves it): retpolines, return thunks, SLS and IBT as that build
has them (docs/bundle.md, "Building a patch object for a target kernel"). Objects built
so pack without warnings under `hvpatch pack --kernel-config` of the same config.
"""
import os
import subprocess

import guestlib

KERNEL_CFLAGS = os.path.join(guestlib.REPO, "images", "kernel-cflags.sh")
_cache = {}


def kernel_config(kdir=None):
    """The config file of the guests' kernel (kdir, else guestlib.kernel_dir())."""
    return os.path.join(kdir or guestlib.kernel_dir(), "config")


def patch_cflags(kdir=None):
    """gcc flags (a list) for a patch object for the guests' kernel."""
    config = kernel_config(kdir)
    if config not in _cache:
        p = subprocess.run([KERNEL_CFLAGS, config], capture_output=True, text=True,
                           env=dict(os.environ, CC=os.environ.get("CC", "gcc")))
        if p.returncode != 0:
            raise RuntimeError(f"kernel-cflags.sh {config}: {p.stderr.strip()}")
        _cache[config] = p.stdout.split()
    return list(_cache[config])
