//! OpenPLC's debugger interface (`debug_array_count`, `debug_elem_count`,
//! `debug_size`, `debug_read`, `debug_write`, `debug_set` in the runtime-args
//! struct) over the I/O image.
//!
//! On OpenPLC v4 these six callbacks address the compiled PLC program's
//! variables as `(arr, elem)` pairs, and plugins such as OpenPLC's OPC UA server
//! read and write *every* variable through them. This runtime has no PLC
//! program; its variables are the image tables. So the image is exposed as one
//! debugger array per table:
//!
//! - `arr` = the table's journal type code (0 BOOL_IN … 13 LINT_MEM, the codes
//!   `journal_write_*` take);
//! - `elem` = the slot; for the three bool tables `slot * 8 + bit`;
//! - the element is the value in its natural width (1, 2, 4 or 8 bytes),
//!   little-endian on the wire, as OpenPLC copies it.
//!
//! Return codes are OpenPLC v4's (its STruC++ debug dispatch): writes answer
//! [`STATUS_OK`], [`STATUS_OUT_OF_BOUNDS`] for an unknown `arr`/`elem`, or
//! [`STATUS_DATA_TOO_LARGE`] for a wrong length; `debug_read`/`debug_size`
//! answer the number of bytes, 0 meaning "no such element". Forcing is not
//! supported: `debug_set` answers [`STATUS_NOT_SUPPORTED`], which is what
//! OpenPLC's runtime answers when the loaded program has no debugger surface.
//!
//! Every path is allocation-free (proven by tests/zero_alloc.rs) and works in
//! any process that has the image installed: the supervisor (shared isolation,
//! native plugins) and every worker (process isolation maps the same memfd), so
//! a value written in one process is read in another.
//!
//! With a PLC program loaded (`crate::program`), the callbacks address the
//! program's variables instead, as OpenPLC does (`program::debug`), forcing
//! included; the image mapping above applies when no program is loaded.
//!
//! Like the image module, this is C-ABI code: it reads and writes through
//! pointers that plugins pass.

use crate::image::{self, Image, TABLES, Table};
use crate::program;

/// Success (OpenPLC's `STATUS_OK` / `MB_DEBUG_SUCCESS`).
pub const STATUS_OK: u8 = 0x7E;
/// No such array or element (OpenPLC's `STATUS_OUT_OF_BOUNDS`).
pub const STATUS_OUT_OF_BOUNDS: u8 = 0x81;
/// The value's length does not match the element's size (OpenPLC's
/// `STATUS_DATA_TOO_LARGE`, which it also answers for a short value).
pub const STATUS_DATA_TOO_LARGE: u8 = 0x82;
/// `debug_set` (forcing) is not supported. OpenPLC has no dedicated code for
/// this: its runtime answers `STATUS_OUT_OF_BOUNDS` when the program offers no
/// debugger surface, and plugins treat any non-[`STATUS_OK`] as "refused".
pub const STATUS_NOT_SUPPORTED: u8 = STATUS_OUT_OF_BOUNDS;

/// Where a debugger address `(arr, elem)` lives in the image: table, slot and
/// bit (the bit is 0 for non-bool tables). `None` when `arr` is not a table's
/// type code or `elem` is past the table's end.
pub fn locate(arr: u8, elem: u16, buffer_size: usize) -> Option<(Table, usize, usize)> {
    let table = *Table::ALL.get(usize::from(arr))?;
    let elem = usize::from(elem);
    let per_slot = table.values_per_slot();
    let (slot, bit) = (elem / per_slot, elem % per_slot);
    (slot < buffer_size).then_some((table, slot, bit))
}

/// Elements of array `arr` for a given `buffer_size`: one per slot, or eight
/// (one per bit) for bool tables. Capped at `u16::MAX` because `elem` is a
/// `uint16_t` in OpenPLC's ABI (only bool tables with `--buffer-size` above
/// 8191 reach the cap; their last bits are not addressable through the
/// debugger). 0 for an unknown `arr`.
pub fn elem_count(arr: u8, buffer_size: usize) -> u16 {
    Table::ALL.get(usize::from(arr)).map_or(0, |t| {
        u16::try_from(buffer_size * t.values_per_slot()).unwrap_or(u16::MAX)
    })
}

/// Reads element `(arr, elem)` of `img` into `out` (little-endian, the
/// element's width) under the image lock. Returns the number of bytes, 0 if
/// there is no such element.
pub fn read(img: &Image, arr: u8, elem: u16, out: &mut [u8; 8]) -> u16 {
    let Some((table, slot, bit)) = locate(arr, elem, img.buffer_size()) else {
        return 0;
    };
    img.lock();
    let value = img.read(table, slot, bit);
    img.unlock();
    let Some(value) = value else { return 0 };
    let n = table.elem_size();
    out[..n].copy_from_slice(&value.to_le_bytes()[..n]);
    n as u16
}

/// Stores `bytes` (little-endian, exactly the element's width) into element
/// `(arr, elem)` of `img` under the image lock, so the next read and the next
/// scan cycle see it. A bool element stores 1 for any non-zero byte.
pub fn write(img: &Image, arr: u8, elem: u16, bytes: &[u8]) -> u8 {
    let Some((table, slot, bit)) = locate(arr, elem, img.buffer_size()) else {
        return STATUS_OUT_OF_BOUNDS;
    };
    // OpenPLC refuses a short value with this code and silently drops the
    // extra bytes of a long one; here a value that does not fit the element is
    // refused too, instead of being truncated without a word.
    if bytes.len() != table.elem_size() {
        return STATUS_DATA_TOO_LARGE;
    }
    let mut le = [0u8; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    img.lock();
    img.store(table, slot, bit, u64::from_le_bytes(le));
    img.unlock();
    STATUS_OK
}

// --- the callbacks in the runtime-args struct (C ABI) ---------------------------
//
// None of them may be called with the image lock held by the caller: they take
// it themselves (OpenPLC's OPC UA plugin never holds it around them).

/// `uint8_t debug_array_count(void)`: one array per image table.
pub(crate) extern "C" fn debug_array_count() -> u8 {
    if let Some(n) = program::debug::array_count() {
        return n;
    }
    if program::debug::elsewhere() {
        return 0;
    }
    if image::get().is_some() {
        TABLES as u8
    } else {
        0
    }
}

/// `uint16_t debug_elem_count(uint8_t arr)`.
pub(crate) extern "C" fn debug_elem_count(arr: u8) -> u16 {
    if let Some(n) = program::debug::elem_count(arr) {
        return n;
    }
    if program::debug::elsewhere() {
        return 0;
    }
    image::get().map_or(0, |img| elem_count(arr, img.buffer_size()))
}

/// `uint16_t debug_size(uint8_t arr, uint16_t elem)`: bytes of the element, 0
/// if there is none.
pub(crate) extern "C" fn debug_size(arr: u8, elem: u16) -> u16 {
    if let Some(n) = program::debug::size(arr, elem) {
        return n;
    }
    if program::debug::elsewhere() {
        return 0;
    }
    image::get()
        .and_then(|img| locate(arr, elem, img.buffer_size()))
        .map_or(0, |(t, _, _)| t.elem_size() as u16)
}

/// `uint16_t debug_read(uint8_t arr, uint16_t elem, uint8_t *dest)`: copies
/// the element to `dest` (which must hold `debug_size(arr, elem)` bytes) and
/// returns the number of bytes copied, 0 on a bad address or a NULL `dest`.
pub(crate) extern "C" fn debug_read(arr: u8, elem: u16, dest: *mut u8) -> u16 {
    // SAFETY: OpenPLC's contract on `dest`, passed on.
    if let Some(n) = unsafe { program::debug::read(arr, elem, dest) } {
        return n;
    }
    if program::debug::elsewhere() {
        return 0;
    }
    let Some(img) = image::get() else { return 0 };
    if dest.is_null() {
        return 0;
    }
    let mut buf = [0u8; 8];
    let n = read(img, arr, elem, &mut buf);
    // SAFETY: OpenPLC's contract: `dest` holds at least debug_size(arr, elem)
    // bytes, which is `n`; the source is our stack buffer, so they cannot
    // overlap.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dest, usize::from(n)) };
    n
}

/// `uint8_t debug_write(uint8_t arr, uint16_t elem, const uint8_t *bytes,
/// uint16_t len)`: stores the value (see [`write`]).
pub(crate) extern "C" fn debug_write(arr: u8, elem: u16, bytes: *const u8, len: u16) -> u8 {
    // SAFETY: OpenPLC's contract on `bytes`, passed on.
    if let Some(rc) = unsafe { program::debug::write(arr, elem, bytes, len) } {
        return rc;
    }
    if program::debug::elsewhere() {
        return STATUS_OUT_OF_BOUNDS;
    }
    let Some(img) = image::get() else {
        return STATUS_OUT_OF_BOUNDS;
    };
    if bytes.is_null() {
        // Still say which of the two problems it is, as for a non-NULL value.
        return if locate(arr, elem, img.buffer_size()).is_some() {
            STATUS_DATA_TOO_LARGE
        } else {
            STATUS_OUT_OF_BOUNDS
        };
    }
    // SAFETY: OpenPLC's contract: `bytes` points at `len` readable bytes for
    // the duration of the call.
    let value = unsafe { std::slice::from_raw_parts(bytes, usize::from(len)) };
    write(img, arr, elem, value)
}

/// `uint8_t debug_set(uint8_t arr, uint16_t elem, bool forcing, const uint8_t
/// *bytes, uint16_t len)`: with a program loaded, forces (or unforces) its
/// variable; over the image tables forcing is not supported:
/// [`STATUS_NOT_SUPPORTED`], and nothing is changed.
pub(crate) extern "C" fn debug_set(
    arr: u8,
    elem: u16,
    forcing: bool,
    bytes: *const u8,
    len: u16,
) -> u8 {
    // SAFETY: OpenPLC's contract on `bytes`, passed on.
    unsafe { program::debug::set(arr, elem, forcing, bytes, len) }.unwrap_or(STATUS_NOT_SUPPORTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_an_array_named_by_its_type_code() {
        let sizes = [1, 1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8];
        for (code, t) in Table::ALL.iter().enumerate() {
            let arr = code as u8;
            assert_eq!(*t as u8, arr);
            assert_eq!(locate(arr, 0, 1024), Some((*t, 0, 0)));
            assert_eq!(t.elem_size(), sizes[code], "{t:?}");
            let per_slot = if code <= 2 { 8 } else { 1 };
            assert_eq!(elem_count(arr, 1024), 1024 * per_slot as u16, "{t:?}");
            // Last element in range, the one after it out of range.
            let last = 1024 * per_slot as u16 - 1;
            assert_eq!(locate(arr, last, 1024), Some((*t, 1023, per_slot - 1)));
            assert_eq!(locate(arr, last + 1, 1024), None, "{t:?}");
        }
    }

    #[test]
    fn bool_elements_are_slot_times_8_plus_bit() {
        // %QX0.1 and %IX3.7 / %MX2.0.
        assert_eq!(locate(1, 1, 1024), Some((Table::BoolOut, 0, 1)));
        assert_eq!(locate(0, 31, 1024), Some((Table::BoolIn, 3, 7)));
        assert_eq!(locate(2, 16, 1024), Some((Table::BoolMem, 2, 0)));
        // Word tables: elem is the slot (%IW0, %QD7, %ML1023).
        assert_eq!(locate(5, 0, 1024), Some((Table::IntIn, 0, 0)));
        assert_eq!(locate(9, 7, 1024), Some((Table::DintOut, 7, 0)));
        assert_eq!(locate(13, 1023, 1024), Some((Table::LintMem, 1023, 0)));
    }

    #[test]
    fn unknown_arrays_and_capped_counts() {
        assert_eq!(locate(14, 0, 1024), None);
        assert_eq!(locate(255, 0, 1024), None);
        assert_eq!(elem_count(14, 1024), 0);
        // Bool tables of a large image: elem is 16 bits wide.
        assert_eq!(elem_count(0, 16384), u16::MAX);
        assert_eq!(elem_count(5, 16384), 16384);
        assert_eq!(locate(0, u16::MAX, 16384), Some((Table::BoolIn, 8191, 7)));
    }

    #[test]
    fn status_codes_are_openplcs() {
        assert_eq!(STATUS_OK, 0x7E);
        assert_eq!(STATUS_OUT_OF_BOUNDS, 0x81);
        assert_eq!(STATUS_DATA_TOO_LARGE, 0x82);
        assert_eq!(
            debug_set(5, 0, true, std::ptr::null(), 0),
            STATUS_NOT_SUPPORTED
        );
    }
}
