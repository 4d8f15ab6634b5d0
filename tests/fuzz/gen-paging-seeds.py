#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-paging (tests/fuzz/corpus/paging/): small memory
images with valid page tables, in the input layout described in fuzz-paging.c.
Run from anywhere; the output is deterministic."""
import os
import struct

P, RW, US, PS, G, NX = 1, 2, 4, 0x80, 0x100, 1 << 63
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "paging")


def header(cr3, five=False, nxe=True, write=False, split=False, maxphy=52,
           rlen=64, hi_page=0, vas=(0, 0, 0, 0)):
    mode = five | nxe << 1 | write << 2 | split << 3
    return struct.pack("<QBBHI4Q", cr3, mode, maxphy - 32, rlen, hi_page, *vas)


def idx(va, level):
    return (va >> (12 + 9 * (level - 1))) & 511


class Image:
    """A memory image of whole pages; page 0 is the root table."""

    def __init__(self, pages):
        self.mem = bytearray(4096 * pages)
        self.next = 1

    def table(self):
        pa = self.next * 4096
        self.next += 1
        return pa

    def get(self, pa):
        return struct.unpack_from("<Q", self.mem, pa)[0]

    def put(self, pa, v):
        struct.pack_into("<Q", self.mem, pa, v)

    def map(self, levels, va, pa, level, flags):
        table = 0
        for l in range(levels, level, -1):
            ea = table + idx(va, l) * 8
            if not self.get(ea) & P:
                self.put(ea, self.table() | P | RW | US)
            table = self.get(ea) & 0x000ffffffffff000
        self.put(table + idx(va, level) * 8, pa | flags | (PS if level > 1 else 0))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def kernel_layout(levels):
    """Kernel-like mappings: 4K text pages, a 2M page, an NX global page."""
    im = Image(levels)
    text = 0xffffffff81000000
    im.map(levels, text, 0x0, 1, P | G)                        # the root table as data
    im.map(levels, text + 0x1000, (levels - 1) * 4096, 1, P | RW | NX | G)
    im.map(levels, text + 0x200000, 0x200000, 2, P | RW)       # outside the image
    vas = (text + 0xff0, text + 0x1008, text + 0x200000, 0xffff888000000000)
    return header(0x0, five=levels == 5, rlen=0x20, vas=vas) + bytes(im.mem)


def self_referencing(levels):
    """One table page reused at every level: entry 0 points to itself."""
    im = Image(2)
    im.put(0, 0 | P | RW | US)
    im.put(8, 0x1000 | P | RW)                  # index 1: the data page at every level
    im.put(16, 0 | P | RW | PS)                 # index 2: a large page (reserved at 4/5)
    # The write (bit 2) flips the bytes read: the table itself comes last.
    vas = (0x1008, 0x400000 if levels == 4 else 0x8000000000, 0x2000, 0x0)
    return header(0x0, five=levels == 5, write=True, rlen=0x10, vas=vas) + bytes(im.mem)


def split_regions():
    """Two RAM regions; a 1 GiB page at 1 GiB partly backed by the second one."""
    im = Image(8)                               # 4 pages of tables, 4 at 1 GiB
    im.map(4, 0xffff888000000000, 0x40000000, 3, P | RW | G)
    im.map(4, 0xffff888040000000, 0x40000000 + 4096, 1, P | RW)
    im.map(4, 0xffff888040001000, 0x9000000, 1, P | RW)       # frame in the hole
    assert im.next <= 4
    for i in range(4 * 512, 8 * 512):
        im.put(i * 8, i)
    vas = (0xffff888000000010, 0xffff888000003ff8, 0xffff888040000ff0, 0xffff888040001000)
    hdr = header(0x5ab | 1 << 63, split=True, rlen=0x40, hi_page=0x40000, vas=vas)
    return hdr + bytes(im.mem)


def main():
    os.makedirs(OUT, exist_ok=True)
    write("kernel-4level", kernel_layout(4))
    write("kernel-5level", kernel_layout(5))
    write("selfref-4level", self_referencing(4))
    write("selfref-5level", self_referencing(5))
    write("split-regions", split_regions())


if __name__ == "__main__":
    main()
