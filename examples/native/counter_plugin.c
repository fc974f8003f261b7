/*
 * counter_plugin: a native (type 1) OpenPLC plugin, for openplc-runtime and
 * plain OpenPLC Runtime v4.
 *
 * Every scan cycle it copies the input register %IW0 (int_input[0]) to %QW1
 * (int_output[1]) and increments the output register %QW0 (int_output[0]).
 *
 * Build (the runtime's target compiler; e.g. aarch64-linux-gnu-gcc for arm64):
 *
 *     cc -shared -fPIC -O2 -o counter_plugin.so counter_plugin.c
 *
 * plugins.conf line (type 1; the config_path field is unused here):
 *
 *     counter,/usr/lib/openplc/plugins/counter/counter_plugin.so,1,1
 *
 * The runtime calls init(args) once, start_loop(), then cycle_start() and
 * cycle_end() on the scan thread every cycle, and on shutdown stop_loop() and
 * cleanup(). The cycle hooks run outside the image lock (as in OpenPLC): they
 * take image_lock() themselves, only around the image access, and must be
 * quick, since their time counts against the scan period. They do not log:
 * logging every cycle would flood the journal.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The runtime-args struct: OpenPLC v4.1.4's layout, natural alignment. */
typedef struct {
    uint8_t *(*bool_input)[8];
    uint8_t *(*bool_output)[8];
    uint8_t **byte_input;
    uint8_t **byte_output;
    uint16_t **int_input;
    uint16_t **int_output;
    uint32_t **dint_input;
    uint32_t **dint_output;
    uint64_t **lint_input;
    uint64_t **lint_output;
    uint16_t **int_memory;
    uint32_t **dint_memory;
    uint64_t **lint_memory;
    uint8_t *(*bool_memory)[8];
    void (*image_lock)(void);
    void (*image_unlock)(void);
    uint8_t (*debug_array_count)(void);
    uint16_t (*debug_elem_count)(uint8_t);
    uint16_t (*debug_size)(uint8_t, uint16_t);
    uint16_t (*debug_read)(uint8_t, uint16_t, uint8_t *);
    uint8_t (*debug_set)(uint8_t, uint16_t, bool, const uint8_t *, uint16_t);
    uint8_t (*debug_write)(uint8_t, uint16_t, const uint8_t *, uint16_t);
    char plugin_specific_config_file_path[256];
    int buffer_size;
    int bits_per_buffer;
    /* printf-style, as OpenPLC declares them (Python plugins' take text). */
    void (*log_info)(const char *fmt, ...);
    void (*log_debug)(const char *fmt, ...);
    void (*log_warn)(const char *fmt, ...);
    void (*log_error)(const char *fmt, ...);
    int (*journal_write_bool)(int, int, int, int);
    int (*journal_write_byte)(int, int, int);
    int (*journal_write_int)(int, int, int);
    int (*journal_write_dint)(int, int, unsigned);
    int (*journal_write_lint)(int, int, unsigned long long);
    void (*request_plc_stop)(const char *);
    unsigned long long base_tick_ns;
    /* openplc-runtime's extension; not there on plain OpenPLC. */
    uint32_t ext_magic;   /* 0x4F504C43 ("OPLC") */
    uint32_t ext_version;
    uint32_t ext_size;    /* sizeof the struct the runtime passed */
    uint32_t ext_reserved;
} plugin_runtime_args_t;

/* The layout the runtime pins (src/image.rs): x86_64/aarch64 and armv7. */
static_assert(offsetof(plugin_runtime_args_t, base_tick_ns) ==
                  (sizeof(void *) == 8 ? 520 : 392),
              "plugin_runtime_args_t does not match the OpenPLC layout");

/* A copy of the OpenPLC part of the struct. This runtime keeps the struct
 * valid until cleanup() returned, but plain OpenPLC frees it right after
 * init(), so a portable plugin copies it (the tables and callbacks it points
 * at stay valid on both). */
static plugin_runtime_args_t rt;
static const plugin_runtime_args_t *args = &rt;
static uint16_t input;              /* %IW0 as read in cycle_start */
static unsigned long long cycles;

int init(void *runtime_args)
{
    if (!runtime_args)
        return 1;
    /* Not the extension block: plain OpenPLC's struct ends before it. */
    memcpy(&rt, runtime_args, offsetof(plugin_runtime_args_t, ext_magic));
    if (rt.buffer_size < 2 || !rt.image_lock || !rt.image_unlock) {
        if (rt.log_error)
            rt.log_error("counter_plugin: needs %d int slots and image_lock", 2);
        return 1;
    }
    if (args->log_info)
        args->log_info("counter_plugin: init (buffer_size %d, scan period %llu us)",
                       args->buffer_size, args->base_tick_ns / 1000);
    return 0;
}

/* 0 = started; non-zero means "failed to start" (on OpenPLC too): the
 * plugin is then not running and its cycle hooks are not called. */
int start_loop(void)
{
    if (args->log_info)
        args->log_info("%s", "counter_plugin: started");
    return 0;
}

void cycle_start(void)
{
    args->image_lock();
    if (args->int_input[0])
        input = *args->int_input[0];
    args->image_unlock();
}

void cycle_end(void)
{
    args->image_lock();
    if (args->int_output[0])
        *args->int_output[0] += 1;
    if (args->int_output[1])
        *args->int_output[1] = input;
    args->image_unlock();
    cycles++;
}

void stop_loop(void)
{
    if (args->log_info)
        args->log_info("counter_plugin: stopped after %llu cycles", cycles);
}

void cleanup(void)
{
    if (args->log_info)
        args->log_info("%s", "counter_plugin: cleanup");
}
