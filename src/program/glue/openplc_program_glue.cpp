// openplc-runtime's glue between a STruC++-generated program and the runtime:
// OpenPLC's native plugin ABI plus the program extension of
// openplc_program.h. Written against STruC++'s public runtime headers
// (iec_std_lib.hpp, iec_located.hpp, debug_table.hpp); compiled together with
// the generated sources by scripts/build-plc-program, which defines
// OPENPLC_PROGRAM_CONFIG as the generated configuration class and generates
// openplc_program_names.cpp (the located variables' names).
//
// Built without STRUCPP_THREADED: the runtime runs every task on its one scan
// thread, so IEC time is a plain global that run_task sets to the task's own
// clock before the task's programs run.

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "generated.hpp"
#include "debug_table.hpp"
#include "debug_dispatch.hpp"
#include "openplc_program.h"

#ifndef OPENPLC_PROGRAM_CONFIG
#error "define OPENPLC_PROGRAM_CONFIG as the generated configuration class (scripts/build-plc-program does)"
#endif
#ifdef STRUCPP_THREADED
#error "build without STRUCPP_THREADED: all tasks run on the runtime's scan thread"
#endif

// The configuration instance. generated_debug.cpp addresses its members as
// `g_config`, so it must be a global with exactly this name.
::strucpp::OPENPLC_PROGRAM_CONFIG g_config;

// Names of strucpp::locatedVars[], same order (openplc_program_names.cpp).
extern "C" const char *const openplc_program_located_names[];
extern "C" const uint32_t openplc_program_located_names_count;

namespace {

struct Task {
    ::strucpp::TaskInstance *instance;
    int64_t time_ns;
};

// One scalar inside a RETAIN variable: a debugger table entry.
struct RetainLeaf {
    void *ptr;
    uint8_t tag;
};

// FNV-1a, 64 bits.
void fnv(uint64_t &h, const void *data, size_t n) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
}

// Storage size in bytes of a debugger type tag, 0 when not a scalar that
// can be located.
uint8_t tag_bytes(uint8_t tag) {
    using namespace ::strucpp::debug;
    switch (tag) {
    case TAG_BOOL: case TAG_SINT: case TAG_USINT: case TAG_BYTE: return 1;
    case TAG_INT: case TAG_UINT: case TAG_WORD: return 2;
    case TAG_DINT: case TAG_UDINT: case TAG_REAL: case TAG_DWORD: return 4;
    case TAG_LINT: case TAG_ULINT: case TAG_LREAL: case TAG_LWORD: case TAG_TIME:
    case TAG_DATE: case TAG_TOD: case TAG_DT: return 8;
    default: return 0;
    }
}

// The storage size of the variable whose raw storage is at `p`, from the
// debugger tables (an IECVar's value is its first member), 0 if not found.
uint8_t var_bytes(const void *p) {
    using namespace ::strucpp::debug;
    for (uint8_t a = 0; a < debug_array_count; ++a) {
        for (uint16_t e = 0; e < debug_array_counts[a]; ++e) {
            if (debug_arrays[a][e].ptr == p) {
                return tag_bytes(debug_arrays[a][e].tag);
            }
        }
    }
    return 0;
}

// Built once, after g_config's constructor (same translation unit, defined
// after it) filled locatedVars[].pointer. Never changed afterwards.
struct Tables {
    std::vector<Task> tasks;
    std::vector<openplc_program_task> task_abi;
    std::vector<openplc_program_var> located;
    std::vector<RetainLeaf> retain;
    uint32_t retain_bytes = 0;
    uint64_t retain_signature = 1469598103934665603ULL;

    // The debugger entries inside [base, base + size), in table order.
    void add_retained(const char *name, const uint8_t *base, size_t size) {
        using namespace ::strucpp::debug;
        fnv(retain_signature, name, std::char_traits<char>::length(name));
        for (uint8_t a = 0; a < debug_array_count; ++a) {
            for (uint16_t e = 0; e < debug_array_counts[a]; ++e) {
                const Entry &en = debug_arrays[a][e];
                const uint8_t *p = static_cast<const uint8_t *>(en.ptr);
                if (p >= base && p < base + size && en.tag < TAG__COUNT) {
                    retain.push_back(RetainLeaf{en.ptr, en.tag});
                    retain_bytes += type_ops[en.tag].size;
                    uint8_t key[4] = {a, static_cast<uint8_t>(e), static_cast<uint8_t>(e >> 8), en.tag};
                    fnv(retain_signature, key, sizeof key);
                }
            }
        }
    }

    Tables() {
        ::strucpp::ResourceInstance *res = g_config.get_resources();
        for (size_t r = 0; r < g_config.get_resource_count(); ++r) {
            for (size_t t = 0; t < res[r].task_count; ++t) {
                ::strucpp::TaskInstance *ti = &res[r].tasks[t];
                tasks.push_back(Task{ti, 0});
                uint64_t interval = ti->interval_ns > 0 ? static_cast<uint64_t>(ti->interval_ns) : 0;
                task_abi.push_back(openplc_program_task{ti->name, interval});
                for (size_t p = 0; p < ti->program_count; ++p) {
                    ::strucpp::ProgramBase *prog = ti->programs[p];
                    const ::strucpp::RetainVarInfo *info = prog->getRetainVars();
                    // The offsets are from the generated program class,
                    // which derives from ProgramBase alone (same address).
                    const uint8_t *base = reinterpret_cast<const uint8_t *>(prog);
                    for (size_t r = 0; info != nullptr && r < prog->getRetainCount(); ++r) {
                        add_retained(info[r].name, base + info[r].offset, info[r].size);
                    }
                }
            }
        }
#ifdef OPENPLC_PROGRAM_BUILD_HASH
        // The build's identity (build-plc-program: a hash of the generated
        // sources and the glue): a retain file of any other build, even one
        // with the same RETAIN layout, is not restored.
        const uint64_t build = OPENPLC_PROGRAM_BUILD_HASH;
        fnv(retain_signature, &build, sizeof build);
#endif
        for (uint32_t i = 0; i < ::strucpp::locatedVarsCount; ++i) {
            const ::strucpp::LocatedVar &v = ::strucpp::locatedVars[i];
            openplc_program_var l{};
            l.area = static_cast<uint8_t>(v.area);
            l.size = static_cast<uint8_t>(v.size);
            l.index = v.byte_index;
            l.bit = v.bit_index;
            l.var_bytes = var_bytes(v.pointer);
            l.value = v.pointer;
            l.name = i < openplc_program_located_names_count ? openplc_program_located_names[i] : "?";
            located.push_back(l);
        }
    }
};

Tables tables;

}  // namespace

extern "C" {

uint32_t openplc_program_abi(void) { return OPENPLC_PROGRAM_ABI; }

uint32_t openplc_program_task_count(void) {
    return static_cast<uint32_t>(tables.task_abi.size());
}

const struct openplc_program_task *openplc_program_tasks(void) {
    return tables.task_abi.data();
}

int openplc_program_run_task(uint32_t task) {
    if (task >= tables.tasks.size()) {
        return -1;
    }
    Task &t = tables.tasks[task];
    t.time_ns += t.instance->interval_ns;
    ::strucpp::__CURRENT_TIME_NS = t.time_ns;
    for (size_t p = 0; p < t.instance->program_count; ++p) {
        ::strucpp::ProgramBase *prog = t.instance->programs[p];
        prog->sync_in();
        prog->run();
        prog->sync_out();
    }
    return 0;
}

int64_t openplc_program_task_time_ns(uint32_t task) {
    return task < tables.tasks.size() ? tables.tasks[task].time_ns : 0;
}

uint32_t openplc_program_var_count(void) {
    return static_cast<uint32_t>(tables.located.size());
}

const struct openplc_program_var *openplc_program_vars(void) {
    return tables.located.data();
}

uint32_t openplc_program_retain_size(void) { return tables.retain_bytes; }

uint64_t openplc_program_retain_signature(void) { return tables.retain_signature; }

uint32_t openplc_program_retain_save(uint8_t *buf, uint32_t len) {
    if (len < tables.retain_bytes) {
        return 0;
    }
    uint32_t off = 0;
    for (const RetainLeaf &l : tables.retain) {
        const ::strucpp::debug::TypeOps &ops = ::strucpp::debug::type_ops[l.tag];
        ops.read(l.ptr, buf + off);
        off += ops.size;
    }
    return off;
}

int openplc_program_retain_restore(const uint8_t *buf, uint32_t len) {
    if (len != tables.retain_bytes) {
        return -1;
    }
    uint32_t off = 0;
    for (const RetainLeaf &l : tables.retain) {
        const ::strucpp::debug::TypeOps &ops = ::strucpp::debug::type_ops[l.tag];
        ops.write(l.ptr, buf + off);
        off += ops.size;
    }
    return 0;
}

// OpenPLC's native plugin ABI. The program needs nothing at init: its
// variables were initialised by their constructors when the library loaded.
OPENPLC_PROGRAM_EXPORT int init(void *args) {
    (void)args;
    return 0;
}
OPENPLC_PROGRAM_EXPORT int start_loop(void) { return 0; }
OPENPLC_PROGRAM_EXPORT void stop_loop(void) {}
OPENPLC_PROGRAM_EXPORT void cleanup(void) {}

}  // extern "C"
