/* guest-memory.h: the one way devices (and loaders) reach guest RAM.
 *
 * Every address and length is checked against the RAM regions: a guest that
 * programs a device with a wild address gets FALSE back, never a host fault.
 * Regions are registered while the machine is built and do not move after.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
    uint64_t gpa;           /* guest-physical base */
    uint64_t size;
    uint8_t *host;          /* host mapping */
} FerryRamRegion;

#define FERRY_MAX_RAM_REGIONS 8

typedef struct {
    FerryRamRegion regions[FERRY_MAX_RAM_REGIONS];
    guint n_regions;
} FerryGuestMemory;

/* FALSE if the region overlaps another or the table is full. */
gboolean ferry_guest_memory_add(FerryGuestMemory *mem, uint64_t gpa, uint64_t size, uint8_t *host);

/* Host pointer to [gpa, gpa+len) when it lies inside one region, else NULL.
 * len 0 is refused. The pointer stays valid while the VM exists. */
uint8_t *ferry_guest_ptr(const FerryGuestMemory *mem, uint64_t gpa, uint64_t len);

/* Copies; a range that crosses regions or leaves RAM is refused whole
 * (nothing is written). */
gboolean ferry_guest_read(const FerryGuestMemory *mem, uint64_t gpa, void *buf, uint64_t len);
gboolean ferry_guest_write(const FerryGuestMemory *mem, uint64_t gpa, const void *buf, uint64_t len);

G_END_DECLS
