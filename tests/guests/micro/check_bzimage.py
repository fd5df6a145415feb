#!/usr/bin/env python3
"""Check the setup header of a bzImage against Documentation/x86/boot.rst.

usage: check_bzimage.py FILE [--min-version 0x20c]
Prints one line per checked field and exits non-zero on the first failure
set (all failures are listed).
"""
import struct
import sys


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    path = argv[1]
    min_version = 0x20C
    if "--min-version" in argv:
        min_version = int(argv[argv.index("--min-version") + 1], 0)
    data = open(path, "rb").read()
    errors = []

    def u8(off):
        return data[off]

    def u16(off):
        return struct.unpack_from("<H", data, off)[0]

    def u32(off):
        return struct.unpack_from("<I", data, off)[0]

    def u64(off):
        return struct.unpack_from("<Q", data, off)[0]

    def check(cond, msg):
        print(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            errors.append(msg)

    check(len(data) >= 0x400, "file holds at least the boot sector and header")
    if errors:
        return 1
    setup_sects = u8(0x1F1) or 4
    setup_size = (setup_sects + 1) * 512
    check(u16(0x1FE) == 0xAA55, "boot_flag 0xAA55")
    check(data[0x202:0x206] == b"HdrS", "header magic HdrS")
    version = u16(0x206)
    check(version >= min_version, "version 0x%04x >= 0x%04x" % (version, min_version))
    target = 0x202 + struct.unpack_from("<b", data, 0x201)[0]
    check(data[0x200] == 0xEB and 0x26C <= target < setup_size,
          "0x200 is a short jump past the header into the setup (to 0x%x)" % target)
    check(len(data) > setup_size, "setup_sects %d: payload starts at 0x%x" % (setup_sects, setup_size))
    payload = len(data) - setup_size
    syssize = u32(0x1F4)
    check(syssize * 16 <= payload + 15 and syssize * 16 >= payload - 15,
          "syssize %d paragraphs = %d bytes for a %d-byte payload" % (syssize, syssize * 16, payload))
    kv = u16(0x20E)
    if kv:
        s = data[0x200 + kv:data.index(b"\0", 0x200 + kv)]
        check(0x200 + kv < setup_size and s.isascii() and len(s) > 0,
              "kernel_version string %r" % s.decode("ascii", "replace"))
    loadflags = u8(0x211)
    check(loadflags & 0x01, "loadflags LOADED_HIGH (0x%02x)" % loadflags)
    check(u32(0x214) == 0x100000, "code32_start 0x%x" % u32(0x214))
    check(u32(0x22C) >= 0x37FFFFFF, "initrd_addr_max 0x%x" % u32(0x22C))
    align = u32(0x230)
    check(align and align & (align - 1) == 0, "kernel_alignment 0x%x is a power of two" % align)
    min_align = u8(0x235)
    check((1 << min_align) <= align, "min_alignment 2^%d <= kernel_alignment" % min_align)
    xlf = u16(0x236)
    check(xlf & 0x1, "xloadflags XLF_KERNEL_64 (0x%04x)" % xlf)
    check(u32(0x238) >= 255, "cmdline_size %d" % u32(0x238))
    pref = u64(0x258)
    check(pref == 0x100000, "pref_address 0x%x" % pref)
    check(pref % align == 0 or u8(0x234) == 0, "pref_address aligned or kernel not relocatable")
    init_size = u32(0x260)
    check(init_size >= payload and init_size % 4096 == 0,
          "init_size 0x%x covers the 0x%x-byte payload, page multiple" % (init_size, payload))
    if version >= 0x20F:
        ki = u32(0x268)
        if ki:
            off = setup_size + ki
            check(data[off:off + 4] == b"LToP" and u32(off + 4) >= 16 and u32(off + 8) >= u32(off + 4),
                  "kernel_info at payload+0x%x (LToP, size %d, total %d)" % (ki, u32(off + 4), u32(off + 8)))
    # 64-bit entry: payload + 0x200 must hold code, not padding
    entry64 = data[setup_size + 0x200:setup_size + 0x210]
    check(len(entry64) == 16 and entry64 != b"\0" * 16, "64-bit entry at payload+0x200 present")
    print("%d error(s)" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
