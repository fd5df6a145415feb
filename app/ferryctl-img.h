/* ferryctl-img.h: `ferryctl img`, disk image tools with qemu-img's argument
 * order and flags (create, info, check, convert, commit). */
#pragma once

/* argv[0] is "img". Exit status like qemu-img's: 0 success, 1 error (usage
 * included); `check`: 2 corruptions, 3 leaked clusters, 63 the format has
 * nothing to check. */
int ferryctl_img_main(int argc, char **argv);
