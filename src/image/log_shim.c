/*
 * The printf-style log callbacks native plugins get in their runtime-args
 * struct (OpenPLC declares `void log_info(const char *fmt, ...)`, and every
 * OpenPLC native plugin logs through `log_func("%s", message)`).
 *
 * C, because stable Rust cannot define a variadic function: each callback
 * formats its arguments with the C library's vsnprintf into a bounded buffer
 * on its own stack and hands the text to the runtime's sink (image::callbacks),
 * which names the plugin and logs it. Like the Rust callbacks, there is one
 * copy per plugin slot, since OpenPLC's callbacks carry no context. build.rs
 * compiles this file with the target's C compiler.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Must equal config::MAX_PLUGINS (checked by a unit test through
 * openplc_log_shim_slots). */
#define SLOTS 16

/* Bytes a formatted line may take, NUL included: a quarter of the 16 KiB
 * that journald keeps of a line by default (LineMax), and four times
 * OpenPLC's own plugin_logger buffer, so an OpenPLC plugin's lines are never
 * cut here. On the caller's stack: plugin threads and the scan thread (cycle
 * hooks) have far more. */
#define LINE_MAX_BYTES 4096

/* level: 0 info, 1 debug, 2 warn, 3 error. text: the formatted line, or the
 * format itself when vsnprintf failed (wanted < 0). wanted: vsnprintf's
 * result, the length of the whole line; >= LINE_MAX_BYTES means truncated. */
typedef void (*openplc_log_sink)(unsigned slot, unsigned level, const char *text, int wanted);

static openplc_log_sink sink;

/* Called by the runtime before it hands out the first struct holding these
 * callbacks (and again later with the same value). */
void openplc_log_shim_set_sink(openplc_log_sink s)
{
    __atomic_store_n(&sink, s, __ATOMIC_RELEASE);
}

unsigned openplc_log_shim_slots(void)
{
    return SLOTS;
}

unsigned openplc_log_shim_line_max(void)
{
    return LINE_MAX_BYTES;
}

static void emit(unsigned slot, unsigned level, const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    openplc_log_sink s = __atomic_load_n(&sink, __ATOMIC_ACQUIRE);
    if (!s)
        return;
    if (!fmt) {
        s(slot, level, "(null log format)", 17);
        return;
    }
    int wanted = vsnprintf(line, sizeof line, fmt, ap);
    s(slot, level, wanted < 0 ? fmt : line, wanted);
}

#define LOG_FN(slot, level, name)                                                   \
    static void name##_##slot(const char *fmt, ...)                                 \
    {                                                                               \
        va_list ap;                                                                 \
        va_start(ap, fmt);                                                          \
        emit(slot, level, fmt, ap);                                                 \
        va_end(ap);                                                                 \
    }

#define SLOT_FNS(slot)                                                              \
    LOG_FN(slot, 0, log_info)                                                       \
    LOG_FN(slot, 1, log_debug)                                                      \
    LOG_FN(slot, 2, log_warn)                                                       \
    LOG_FN(slot, 3, log_error)

SLOT_FNS(0) SLOT_FNS(1) SLOT_FNS(2) SLOT_FNS(3) SLOT_FNS(4) SLOT_FNS(5) SLOT_FNS(6)
SLOT_FNS(7) SLOT_FNS(8) SLOT_FNS(9) SLOT_FNS(10) SLOT_FNS(11) SLOT_FNS(12) SLOT_FNS(13)
SLOT_FNS(14) SLOT_FNS(15)

typedef void (*openplc_log_fn)(const char *fmt, ...);

#define SLOT_ROW(slot) { log_info_##slot, log_debug_##slot, log_warn_##slot, log_error_##slot }

/* Per slot: info, debug, warn, error (the struct's order). */
const openplc_log_fn openplc_log_shim_table[SLOTS][4] = {
    SLOT_ROW(0), SLOT_ROW(1), SLOT_ROW(2), SLOT_ROW(3), SLOT_ROW(4), SLOT_ROW(5),
    SLOT_ROW(6), SLOT_ROW(7), SLOT_ROW(8), SLOT_ROW(9), SLOT_ROW(10), SLOT_ROW(11),
    SLOT_ROW(12), SLOT_ROW(13), SLOT_ROW(14), SLOT_ROW(15),
};
