/*
 * cyclespan: a native (type 1) plugin for scripts/bench-program. It measures,
 * from outside the runtime, the part of each scan cycle between its
 * cycle_start hook and its cycle_end hook: the image lock, the journal's
 * apply and the PLC program's cycle (inputs copied in, due tasks, outputs
 * copied out). With no other plugin the journal is empty, so the span of a
 * program with N located variables minus that of one with none is the
 * copying of the N variables (plus what the tasks do with them).
 *
 * Two clocks: CLOCK_MONOTONIC at the end of cycle_start and at the start of
 * cycle_end (the span, in ns, of each cycle after the first SKIP), and,
 * when run under valgrind --tool=callgrind --collect-atstart=no, callgrind's
 * instruction count, collected between the same two points (client requests:
 * a few no-op instructions without valgrind; none without its headers).
 *
 * config_path: a file whose first line is where stop_loop writes the spans,
 * one per line, after a line "cycles N".
 *
 *     cc -shared -fPIC -O2 -o cyclespan.so cyclespan.c
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT /* valgrind's headers are not installed */
#endif

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
#define MAX_SAMPLES 200000

static char out_path[512];
static uint32_t spans[MAX_SAMPLES];
static unsigned long n_spans;
static unsigned long cycles;
static struct timespec t_start;
static int collecting;

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
    if (cycles < SKIP)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    collecting = 1;
    CALLGRIND_TOGGLE_COLLECT;
}

void cycle_end(void)
{
    if (collecting) {
        CALLGRIND_TOGGLE_COLLECT;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        collecting = 0;
        long long ns = (t.tv_sec - t_start.tv_sec) * 1000000000LL + (t.tv_nsec - t_start.tv_nsec);
        if (n_spans < MAX_SAMPLES)
            spans[n_spans++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    }
    cycles++;
}

void stop_loop(void)
{
    FILE *f = fopen(out_path, "w");
    if (!f)
        return;
    fprintf(f, "cycles %lu\n", n_spans);
    for (unsigned long i = 0; i < n_spans; i++)
        fprintf(f, "%u\n", spans[i]);
    fclose(f);
}

void cleanup(void)
{
}
