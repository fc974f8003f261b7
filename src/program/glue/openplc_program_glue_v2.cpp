// openplc-runtime's glue, version 2 additions (openplc_program.h): the
// debugger provider over STruC++'s debug tables (generated_debug.cpp).
// Compiled with openplc_program_glue.cpp by scripts/build-plc-program.
//
// The calls go through STruC++'s own dispatch (debug_dispatch.hpp), so
// arrays, elements, sizes, status codes and forcing are OpenPLC's. This file
// names no program variable; it needs only the tables' declarations.

#include <cstdint>

#include "debug_dispatch.hpp"
#include "openplc_program.h"

extern "C" {

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

}  // extern "C"
