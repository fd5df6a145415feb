/* guest-memory.c: bounds-checked access to guest RAM (see guest-memory.h). */
#include "guest-memory.h"

#include <string.h>

gboolean
ferry_guest_memory_add(FerryGuestMemory *mem, uint64_t gpa, uint64_t size, uint8_t *host)
{
    if (mem->n_regions >= FERRY_MAX_RAM_REGIONS || size == 0 || gpa + size < gpa)
        return FALSE;
    for (guint i = 0; i < mem->n_regions; i++) {
        const FerryRamRegion *r = &mem->regions[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size)
            return FALSE;
    }
    mem->regions[mem->n_regions++] = (FerryRamRegion) { gpa, size, host };
    return TRUE;
}

uint8_t *
ferry_guest_ptr(const FerryGuestMemory *mem, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return NULL;
    for (guint i = 0; i < mem->n_regions; i++) {
        const FerryRamRegion *r = &mem->regions[i];
        /* Written so that no sum can wrap: gpa - r->gpa is only taken once
         * gpa >= r->gpa, and len is compared with what is left. */
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
            return r->host + (gpa - r->gpa);
    }
    return NULL;
}

gboolean
ferry_guest_read(const FerryGuestMemory *mem, uint64_t gpa, void *buf, uint64_t len)
{
    if (len == 0)
        return TRUE;
    uint8_t *p = ferry_guest_ptr(mem, gpa, len);
    if (!p)
        return FALSE;
    memcpy(buf, p, len);
    return TRUE;
}

gboolean
ferry_guest_write(const FerryGuestMemory *mem, uint64_t gpa, const void *buf, uint64_t len)
{
    if (len == 0)
        return TRUE;
    uint8_t *p = ferry_guest_ptr(mem, gpa, len);
    if (!p)
        return FALSE;
    memcpy(p, buf, len);
    return TRUE;
}
