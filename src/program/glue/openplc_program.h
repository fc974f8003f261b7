/*
 * openplc_program.h: the program extension of an openplc-runtime native
 * plugin (plugins.conf type 1), version 2.
 *
 * A PLC program compiled by STruC++ is linked with openplc_program_glue.cpp
 * into a native plugin. Besides OpenPLC's native plugin ABI (init, start_loop,
 * stop_loop, cycle_start, cycle_end, cleanup), the plugin exports the C
 * functions below; the runtime finds them with dlsym and refuses a plugin
 * that exports openplc_program_abi() but lacks any other required symbol or
 * reports another version. Everything here is C: STruC++'s C++ classes stay
 * inside the plugin, compiled against the headers they came with.
 *
 * Threading: every function is called from one thread at a time. The runtime
 * calls openplc_program_run_task() on its scan thread, under its image lock.
 */
#ifndef OPENPLC_PROGRAM_H
#define OPENPLC_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version this header describes. Any change to a struct or a function's
 * meaning below takes a new number; the runtime accepts exactly the numbers
 * it was built for. */
#define OPENPLC_PROGRAM_ABI 2

/* The plugin is built with -fvisibility=hidden: only these symbols and
 * OpenPLC's native plugin ABI are exported. */
#define OPENPLC_PROGRAM_EXPORT __attribute__((visibility("default")))

/* Located areas and sizes: the letters of an IEC address %<area><size>N[.b]. */
enum openplc_program_area { OPENPLC_AREA_I = 0, OPENPLC_AREA_Q = 1, OPENPLC_AREA_M = 2 };
enum openplc_program_size {
    OPENPLC_SIZE_X = 0, /* one bit: image bool table [index][bit] */
    OPENPLC_SIZE_B = 1, /* 8 bits: byte table */
    OPENPLC_SIZE_W = 2, /* 16 bits: int table */
    OPENPLC_SIZE_D = 3, /* 32 bits: dint table */
    OPENPLC_SIZE_L = 4  /* 64 bits: lint table */
};

/* One task of the program's configuration. */
struct openplc_program_task {
    const char *name;     /* as in the source, upper-cased by STruC++ */
    uint64_t interval_ns; /* 0: not cyclic (the runtime refuses it) */
};

/* One located variable. `value` points at the variable's raw storage: 1 byte
 * (a BOOL, 0 or 1) for X, else 1/2/4/8 bytes in the target's byte order. */
struct openplc_program_var {
    uint8_t area;      /* enum openplc_program_area */
    uint8_t size;      /* enum openplc_program_size */
    uint16_t index;    /* the image slot (OpenPLC: not a byte offset) */
    uint8_t bit;       /* 0..7 for X, else 0 */
    uint8_t var_bytes; /* storage size of the variable's type, 0 = unknown */
    uint8_t reserved[2];
    void *value;
    const char *name;  /* the variable's name, e.g. "COUNT"; never NULL */
};

/* Required. OPENPLC_PROGRAM_ABI of the header the plugin was built with. */
OPENPLC_PROGRAM_EXPORT uint32_t openplc_program_abi(void);

/* Required. The task table, valid from load to unload. */
OPENPLC_PROGRAM_EXPORT uint32_t openplc_program_task_count(void);
OPENPLC_PROGRAM_EXPORT const struct openplc_program_task *openplc_program_tasks(void);

/* Required. Advances task `task`'s own IEC time by its own interval on the
 * calling thread, then runs the task's programs once, in declaration order.
 * Returns 0, or -1 for a task number out of range. */
OPENPLC_PROGRAM_EXPORT int openplc_program_run_task(uint32_t task);

/* Required. The IEC time (ns) task `task` saw on its last run. */
OPENPLC_PROGRAM_EXPORT int64_t openplc_program_task_time_ns(uint32_t task);

/* Required. The located-variable table, valid from load to unload. */
OPENPLC_PROGRAM_EXPORT uint32_t openplc_program_var_count(void);
OPENPLC_PROGRAM_EXPORT const struct openplc_program_var *openplc_program_vars(void);

/* Required. RETAIN: the program's retained variables as one snapshot of
 * `openplc_program_retain_size()` bytes (0: none). The snapshot holds values
 * only (no addresses): every scalar leaf the debugger tables list inside a
 * RETAIN variable, in table order, each in the debugger's wire format.
 * `openplc_program_retain_signature()` changes whenever the set of leaves or
 * their types change, and with the build's identity when the glue is compiled
 * with OPENPLC_PROGRAM_BUILD_HASH (build-plc-program does), so a snapshot of
 * another build is never restored. */
OPENPLC_PROGRAM_EXPORT uint32_t openplc_program_retain_size(void);
OPENPLC_PROGRAM_EXPORT uint64_t openplc_program_retain_signature(void);
/* Writes the snapshot into buf; returns the bytes written, 0 if len is less
 * than the size. Not while a task runs. */
OPENPLC_PROGRAM_EXPORT uint32_t openplc_program_retain_save(uint8_t *buf, uint32_t len);
/* Sets the retained variables from a snapshot of exactly the size; returns 0,
 * or -1 for another length. Before the first task run. */
OPENPLC_PROGRAM_EXPORT int openplc_program_retain_restore(const uint8_t *buf, uint32_t len);

/* ---- Added by version 2 (openplc_program_glue_v2.cpp); required. ------- */

/* OpenPLC's debugger interface over the program's variables, with OpenPLC's
 * meaning (STruC++'s debug_dispatch.hpp): `arr` is an array of the debug
 * tables (the globals first, then one per program instance), `elem` a leaf
 * variable in it; sizes per type tag (1..8 bytes, 127 for STRING, 253 for
 * WSTRING); status codes 0x7E ok, 0x81 out of bounds, 0x82 wrong length.
 * debug_write is a soft write (ignored while the variable is forced);
 * debug_set forces (`forcing`: the value is pinned until unforced) or
 * unforces. The runtime calls them under its image lock, so never while a
 * task runs. */
OPENPLC_PROGRAM_EXPORT uint8_t openplc_program_debug_array_count(void);
OPENPLC_PROGRAM_EXPORT uint16_t openplc_program_debug_elem_count(uint8_t arr);
OPENPLC_PROGRAM_EXPORT uint16_t openplc_program_debug_size(uint8_t arr, uint16_t elem);
OPENPLC_PROGRAM_EXPORT uint16_t openplc_program_debug_read(uint8_t arr, uint16_t elem,
                                                           uint8_t *dest);
OPENPLC_PROGRAM_EXPORT uint8_t openplc_program_debug_write(uint8_t arr, uint16_t elem,
                                                           const uint8_t *bytes, uint16_t len);
OPENPLC_PROGRAM_EXPORT uint8_t openplc_program_debug_set(uint8_t arr, uint16_t elem,
                                                         bool forcing, const uint8_t *bytes,
                                                         uint16_t len);

#ifdef __cplusplus
}
#endif

#endif /* OPENPLC_PROGRAM_H */
