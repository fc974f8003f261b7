// openplc-runtime's glue, version 2 additions (openplc_program.h): the
// debugger provider and RETAIN access, over STruC++'s debug tables
// (generated_debug.cpp) and its per-program retain tables. Compiled with
// openplc_program_glue.cpp by scripts/build-plc-program, which defines
// OPENPLC_PROGRAM_CONFIG (the configuration class) and
// OPENPLC_PROGRAM_BUILD_ID (a hash of the generated sources and the glue).
//
// The debugger calls go through STruC++'s own dispatch (debug_dispatch.hpp),
// so arrays, elements, sizes, status codes and forcing are OpenPLC's.
//
// RETAIN: every leaf variable (a debug table entry) that lies inside a
// variable of a program's retain table (RetainVarInfo: offset and size in the
// program object) is retained: scalars, and the elements and fields of
// retained arrays, structures and function block instances. A snapshot is
// the leaves' values in the debugger's wire format (type_ops[tag].size bytes
// each), in a fixed order, so forcing state is never saved.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "generated.hpp"
#include "debug_dispatch.hpp"
#include "openplc_program.h"

#ifndef OPENPLC_PROGRAM_BUILD_ID
#error "define OPENPLC_PROGRAM_BUILD_ID as the program build's identity (scripts/build-plc-program does)"
#endif

extern ::strucpp::OPENPLC_PROGRAM_CONFIG g_config;

namespace {

using ::strucpp::debug::Entry;
using ::strucpp::debug::TAG__COUNT;
using ::strucpp::debug::type_ops;

// Program instances already walked. A type of this file's own: a
// std::vector of a standard type would export its instantiations.
struct Seen {
    const void *program;
};

struct Leaf {
    void *ptr;
    uint8_t tag;
    uint8_t size;
};

// The retained leaves, found once (the first call comes from the runtime
// after the library's constructors ran; never from a static initialiser,
// whose order against g_config's is unspecified).
struct Retained {
    std::vector<Leaf> leaves;
    uint32_t bytes = 0;

    Retained() {
        std::vector<Seen> seen;
        ::strucpp::ResourceInstance *res = g_config.get_resources();
        for (size_t r = 0; r < g_config.get_resource_count(); ++r) {
            for (size_t t = 0; t < res[r].task_count; ++t) {
                const ::strucpp::TaskInstance &task = res[r].tasks[t];
                for (size_t p = 0; p < task.program_count; ++p) {
                    add_program(task.programs[p], seen);
                }
            }
        }
    }

    void add_program(::strucpp::ProgramBase *prog, std::vector<Seen> &seen) {
        using namespace ::strucpp::debug;
        for (const Seen &s : seen) {
            if (s.program == prog) {
                return;
            }
        }
        seen.push_back(Seen{prog});
        const ::strucpp::RetainVarInfo *vars = prog->getRetainVars();
        size_t n = vars == nullptr ? 0 : prog->getRetainCount();
        // The offsets are from the most derived object (offsetof in the
        // generated program class).
        const char *base = static_cast<const char *>(dynamic_cast<const void *>(prog));
        for (size_t v = 0; v < n; ++v) {
            const char *lo = base + vars[v].offset;
            const char *hi = lo + vars[v].size;
            for (uint8_t a = 0; a < debug_array_count; ++a) {
                for (uint16_t e = 0; e < debug_array_counts[a]; ++e) {
                    const Entry &en = debug_arrays[a][e];
                    const char *p = static_cast<const char *>(en.ptr);
                    if (p >= lo && p < hi && en.tag < TAG__COUNT && type_ops[en.tag].size > 0) {
                        leaves.push_back(Leaf{en.ptr, en.tag, type_ops[en.tag].size});
                        bytes += type_ops[en.tag].size;
                    }
                }
            }
        }
    }
};

const Retained &retained() {
    static const Retained r;
    return r;
}

}  // namespace

extern "C" {

const char *openplc_program_build_id(void) { return OPENPLC_PROGRAM_BUILD_ID; }

uint8_t openplc_program_debug_array_count(void) {
    return ::strucpp::debug::handle_array_count();
}

uint16_t openplc_program_debug_elem_count(uint8_t arr) {
    return ::strucpp::debug::handle_elem_count(arr);
}

uint16_t openplc_program_debug_size(uint8_t arr, uint16_t elem) {
    return ::strucpp::debug::handle_size(arr, elem);
}

uint16_t openplc_program_debug_read(uint8_t arr, uint16_t elem, uint8_t *dest) {
    return dest == nullptr ? 0 : ::strucpp::debug::handle_read(arr, elem, dest);
}

uint8_t openplc_program_debug_write(uint8_t arr, uint16_t elem, const uint8_t *bytes,
                                    uint16_t len) {
    if (bytes == nullptr) {
        return ::strucpp::debug::handle_size(arr, elem) == 0
                   ? ::strucpp::debug::STATUS_OUT_OF_BOUNDS
                   : ::strucpp::debug::STATUS_DATA_TOO_LARGE;
    }
    return ::strucpp::debug::handle_write(arr, elem, bytes, len);
}

uint8_t openplc_program_debug_set(uint8_t arr, uint16_t elem, bool forcing,
                                  const uint8_t *bytes, uint16_t len) {
    if (forcing && bytes == nullptr) {
        return ::strucpp::debug::handle_size(arr, elem) == 0
                   ? ::strucpp::debug::STATUS_OUT_OF_BOUNDS
                   : ::strucpp::debug::STATUS_DATA_TOO_LARGE;
    }
    return ::strucpp::debug::handle_set(arr, elem, forcing, bytes, len);
}

uint32_t openplc_program_retain_count(void) {
    return static_cast<uint32_t>(retained().leaves.size());
}

uint32_t openplc_program_retain_size(void) { return retained().bytes; }

void openplc_program_retain_save(uint8_t *buf) {
    for (const Leaf &l : retained().leaves) {
        type_ops[l.tag].read(l.ptr, buf);
        buf += l.size;
    }
}

int openplc_program_retain_restore(const uint8_t *buf, uint32_t len) {
    const Retained &r = retained();
    if (len != r.bytes) {
        return -1;
    }
    for (const Leaf &l : r.leaves) {
        type_ops[l.tag].write(l.ptr, buf);
        buf += l.size;
    }
    return 0;
}

}  // extern "C"
