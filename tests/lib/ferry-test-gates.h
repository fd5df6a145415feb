/* ferry-test-gates.h: gates for block-layer tests (header only, for the
 * unit tests that link the block layer).
 *
 * Write-behind and the I/O threads do things "later"; gates make later
 * deterministic. gates_close() occupies all FERRY_BLOCK_WORKERS threads of
 * an image with requests whose completion blocks (zeroes written to the
 * image's last 512 bytes, which the tests leave alone), as a busy host disk
 * would, until gates_open(); open_later is a GThreadFunc that opens them
 * after 50 ms, for a request that may run in the test's own thread. */
#pragma once

#include "../../devices/block/block-private.h"   /* FERRY_BLOCK_WORKERS */

/* Generations, not a flag: a gate of the last round that has not woken up
 * yet must not be closed again by the next round. */
static GMutex gate_lock;
static GCond gate_cond;
static guint gate_entered, gate_closed_gen, gate_open_gen;

static void
gate_done(FerryBlockReq *req, int result)
{
    g_mutex_lock(&gate_lock);
    guint gen = gate_closed_gen;
    gate_entered++;
    g_cond_broadcast(&gate_cond);
    while (gate_open_gen < gen)
        g_cond_wait(&gate_cond, &gate_lock);
    g_mutex_unlock(&gate_lock);
}

/* Occupies all FERRY_BLOCK_WORKERS threads of bs, one at a time (so each
 * gate gets a thread of its own), with zeroes written to the last 512
 * bytes, which the tests leave alone. Returns the gates, to free once they
 * are open and drained. */
static FerryBlockReq *
gates_close(FerryBlock *bs)
{
    FerryBlockReq *gates = g_new0(FerryBlockReq, FERRY_BLOCK_WORKERS);
    g_mutex_lock(&gate_lock);
    gate_entered = 0;
    gate_closed_gen++;
    g_mutex_unlock(&gate_lock);
    for (guint i = 0; i < FERRY_BLOCK_WORKERS; i++) {
        gates[i] = (FerryBlockReq) { .op = FERRY_BLOCK_OP_WRITE_ZEROES,
                                     .offset = ferry_block_get_size(bs) - 512, .length = 512,
                                     .done = gate_done };
        ferry_block_submit_async(bs, &gates[i]);
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        g_mutex_lock(&gate_lock);
        while (gate_entered <= i)
            g_assert_true(g_cond_wait_until(&gate_cond, &gate_lock, deadline));
        g_mutex_unlock(&gate_lock);
    }
    return gates;
}

G_GNUC_UNUSED static void
gates_open(void)
{
    g_mutex_lock(&gate_lock);
    gate_open_gen = gate_closed_gen;
    g_cond_broadcast(&gate_cond);
    g_mutex_unlock(&gate_lock);
}

G_GNUC_UNUSED static gpointer
open_later(gpointer data)
{
    g_usleep(50000);
    gates_open();
    return NULL;
}
