#!/usr/bin/env python3
"""Seeds for fuzz-virtq.c: well-formed rings and the classic hostile shapes.
Writes corpus/virtq/*. Layout: 6 little-endian u32 (queue size, desc, avail,
used offsets into RAM, features, notifies), then 64 KiB of guest RAM."""
import os, random, struct

RAM_BASE = 0x80000000
RAM = 0x10000
NEXT, WRITE, INDIRECT = 1, 2, 4
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtq")
os.makedirs(out, exist_ok=True)

def seed(name, qnum, descs, avail_ring, features=0, notifies=1, indirect=None, desc_off=0, avail_off=0x1000, used_off=0x2000):
    ram = bytearray(RAM)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        struct.pack_into("<QIHH", ram, desc_off + 16 * i, addr, length, flags, nxt)
    if indirect:
        off, table = indirect
        for i, (addr, length, flags, nxt) in enumerate(table):
            struct.pack_into("<QIHH", ram, off + 16 * i, addr, length, flags, nxt)
    struct.pack_into("<HH", ram, avail_off, 0, len(avail_ring))
    for i, head in enumerate(avail_ring):
        struct.pack_into("<H", ram, avail_off + 4 + 2 * i, head)
    hdr = struct.pack("<6I", qnum, desc_off, avail_off, used_off, features, notifies - 1)
    with open(os.path.join(out, name), "wb") as f:
        f.write(hdr + bytes(ram))

B = RAM_BASE
seed("valid-chain", 8, [(B + 0x3000, 64, NEXT, 1), (B + 0x4000, 128, WRITE, 0)], [0])
seed("valid-two-chains-event-idx", 16, [(B + 0x3000, 512, 0, 0), (B + 0x4000, 512, WRITE, 0)], [0, 1], features=1 << 29, notifies=3)
seed("indirect", 8, [(B + 0x5000, 32, INDIRECT, 0)], [0], features=1 << 28,
     indirect=(0x5000, [(B + 0x3000, 16, NEXT, 1), (B + 0x4000, 16, WRITE, 0)]))
seed("nested-indirect", 8, [(B + 0x5000, 16, INDIRECT, 0)], [0], features=1 << 28,
     indirect=(0x5000, [(B + 0x5000, 16, INDIRECT, 0)]))
seed("loop", 8, [(B + 0x3000, 16, NEXT, 1), (B + 0x3000, 16, NEXT, 0)], [0])
seed("next-out-of-range", 8, [(B + 0x3000, 16, NEXT, 200)], [0])
seed("buffer-outside-ram", 8, [(0x1000, 4096, 0, 0), (B + RAM - 8, 64, WRITE, 0)], [0, 1])
seed("buffer-wraps", 8, [(0xFFFFFFFFFFFFFFF0, 0x100, 0, 0)], [0])
seed("readable-after-writable", 8, [(B + 0x3000, 16, WRITE | NEXT, 1), (B + 0x4000, 16, 0, 0)], [0])
seed("avail-idx-jump", 8, [(B + 0x3000, 16, 0, 0)], [0] * 9)
seed("bad-queue-size", 7, [(B + 0x3000, 16, 0, 0)], [0])
seed("zero-length-indirect", 8, [(B + 0x5000, 0, INDIRECT, 0)], [0], features=1 << 28)
seed("rings-at-ram-end", 8, [(B + 0x3000, 16, 0, 0)], [0], desc_off=RAM - 64, avail_off=RAM - 8, used_off=RAM - 4)
rnd = random.Random(20261127)
for i in range(8):
    with open(os.path.join(out, "random-%d" % i), "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(24 + RAM)))
