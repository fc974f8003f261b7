/*
 * cyclegap: a native (type 1) plugin for scripts/bench-program's "gaps"
 * section. It takes CLOCK_MONOTONIC at the start of each cycle_start hook
 * and keeps the interval, in ns, between successive ones (after the first
 * SKIP cycles): an independent view of the scan period, whatever the
 * runtime counts itself. A cycle whose hooks do not run on time shows here
 * as an interval of two periods or more.
 *
 * config_path: a file whose first line is where stop_loop writes the
 * intervals, one per line, after a line "intervals N".
 *
 *     cc -shared -fPIC -O2 -o cyclegap.so cyclegap.c
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The runtime-args struct up to the config path (OpenPLC v4.1.4's layout;
 * see examples/native/counter_plugin.c for all of it). */
typedef struct {
    void *tables[14];
    void (*image_lock)(void);
    void (*image_unlock)(void);
    void *debug[6];
    char plugin_specific_config_file_path[256];
} args_head_t;

#define SKIP 200
/* 10 minutes at 1 ms; later intervals are not kept. */
#define MAX_SAMPLES 600000

static char out_path[512];
static uint32_t gaps[MAX_SAMPLES];
static unsigned long n_gaps;
static unsigned long cycles;
static struct timespec t_last;

int init(void *runtime_args)
{
    const args_head_t *a = runtime_args;
    if (!a)
        return 1;
    FILE *f = fopen(a->plugin_specific_config_file_path, "r");
    if (!f)
        return 1;
    int ok = fgets(out_path, sizeof out_path, f) != NULL;
    fclose(f);
    if (!ok)
        return 1;
    out_path[strcspn(out_path, "\r\n")] = 0;
    return 0;
}

int start_loop(void)
{
    return 0;
}

void cycle_start(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (cycles >= SKIP && n_gaps < MAX_SAMPLES) {
        long long ns = (t.tv_sec - t_last.tv_sec) * 1000000000LL + (t.tv_nsec - t_last.tv_nsec);
        gaps[n_gaps++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    }
    t_last = t;
    cycles++;
}

void cycle_end(void)
{
}

void stop_loop(void)
{
    FILE *f = fopen(out_path, "w");
    if (!f)
        return;
    fprintf(f, "intervals %lu\n", n_gaps);
    for (unsigned long i = 0; i < n_gaps; i++)
        fprintf(f, "%u\n", gaps[i]);
    fclose(f);
}

void cleanup(void)
{
}
