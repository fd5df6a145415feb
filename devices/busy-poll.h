/* busy-poll.h: adaptive polling, shared by the harts' WFI (engine/accel-soft.c)
 * and the block layer's I/O threads (devices/block/block.c).
 *
 * Waking a sleeping thread from another CPU costs 10-30 us (futex, the
 * scheduler, and on a nested host an IPI through the hypervisor): longer
 * than a disk request served from the host's page cache. So a thread about
 * to wait for something that usually comes soon first polls for it, for up
 * to a window that adapts (the idea of KVM's halt_poll_ns): it doubles,
 * from FERRY_POLL_START_US, while waits end within FERRY_POLL_MAX_US, and
 * halves when a wait outlasts that. A waiter whose events are milliseconds
 * apart (an idle guest, an idle disk) stops polling after a few waits.
 *
 * The spin is polite: PAUSE between checks (light on a hyper-threaded
 * sibling), and sched_yield() every FERRY_POLL_YIELD_US, so a thread ready
 * on this CPU (another VM, the host's work) still runs. Without the yields,
 * two polling threads on a busy 2-CPU host made disk requests slower than
 * no polling at all; with a yield on every check, the syscalls slowed the
 * sibling CPU's copy (sequential guest I/O 10-15% slower). */
#pragma once

#include <glib.h>
#include <sched.h>

G_BEGIN_DECLS

#define FERRY_POLL_START_US 10
#define FERRY_POLL_MAX_US   200
#define FERRY_POLL_YIELD_US 10

/* After a wait of `waited` us with window *window_us: the next window. */
static inline void
ferry_poll_adapt(gint64 *window_us, gint64 waited)
{
    if (waited <= *window_us)
        return;                                 /* polling caught it */
    if (waited > FERRY_POLL_MAX_US)
        *window_us = *window_us / 2 < FERRY_POLL_START_US ? 0 : *window_us / 2;
    else if (*window_us < FERRY_POLL_MAX_US)
        *window_us = MIN(*window_us ? *window_us * 2 : FERRY_POLL_START_US, FERRY_POLL_MAX_US);
}

/* One step of a polling loop at time `now`; *last_yield starts at the
 * poll's start. */
static inline void
ferry_poll_pause(gint64 now, gint64 *last_yield)
{
    if (now - *last_yield >= FERRY_POLL_YIELD_US) {
        *last_yield = now;
        sched_yield();
        return;
    }
    for (int i = 0; i < 16; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#else
        __asm__ __volatile__("" ::: "memory");
#endif
    }
}

G_END_DECLS
