//! OpenPLC's debugger callbacks over the image, called the way a native plugin
//! calls them: through the function pointers of a real runtime-args struct.
//! Its own test binary: it installs the process-global image.

use std::ptr;

use openplc_runtime::debugger::{STATUS_DATA_TOO_LARGE, STATUS_OK, STATUS_OUT_OF_BOUNDS};
use openplc_runtime::image::{self, RuntimeArgs, Table};

const SLOTS: usize = 64;

fn args() -> &'static RuntimeArgs {
    let args = image::install(SLOTS)
        .unwrap()
        .runtime_args(0, None, 1_000_000);
    // SAFETY: a struct from runtime_args lives as long as the process, and
    // only its function pointers are used here.
    unsafe { args.as_ref() }
}

fn read(a: &RuntimeArgs, arr: u8, elem: u16) -> Option<Vec<u8>> {
    let mut buf = [0xAAu8; 16];
    let n = (a.debug_read)(arr, elem, buf.as_mut_ptr());
    (n != 0).then(|| buf[..usize::from(n)].to_vec())
}

fn write(a: &RuntimeArgs, arr: u8, elem: u16, bytes: &[u8]) -> u8 {
    (a.debug_write)(arr, elem, bytes.as_ptr(), bytes.len() as u16)
}

/// Every table: written through debug_write, the value is in the image (what
/// the scan loop and the pointer tables see); written through the journal and
/// applied by the scan loop, debug_read returns it.
#[test]
fn every_table_round_trips_with_the_image_and_the_journal() {
    let a = args();
    let img = image::get().unwrap();
    assert_eq!((a.debug_array_count)(), 14);
    // The consumer position of the journal (the scan loop's, played here); the
    // other tests of this binary do not use the journal.
    let mut head = image::JournalCursor::default();
    for t in Table::ALL {
        let arr = t as u8;
        let size = t.elem_size();
        let per_slot = t.values_per_slot();
        assert_eq!(
            usize::from((a.debug_elem_count)(arr)),
            SLOTS * per_slot,
            "{t:?}"
        );
        // A value with a distinct byte in every position, to catch byte order.
        let value: u64 = if per_slot > 1 {
            1
        } else {
            0x0807_0605_0403_0201 & (u64::MAX >> (64 - 8 * size))
        };
        let le = value.to_le_bytes();
        let elem = (10 * per_slot + per_slot - 1) as u16; // slot 10, last bit
        assert_eq!(usize::from((a.debug_size)(arr, elem)), size, "{t:?}");
        assert_eq!(write(a, arr, elem, &le[..size]), STATUS_OK, "{t:?}");
        img.lock();
        let stored = img.read(t, 10, per_slot - 1);
        img.unlock();
        assert_eq!(
            stored,
            Some(value),
            "{t:?}: debug_write did not reach the image"
        );
        assert_eq!(read(a, arr, elem).unwrap(), le[..size], "{t:?}");
        // The journal (another plugin's write), applied by the scan loop.
        assert_eq!(img.journal_push(t, 11, 0, 1), 0, "{t:?}");
        img.lock();
        assert_eq!(img.apply_journal(&mut head), 1);
        img.unlock();
        let mut want = vec![0u8; size];
        want[0] = 1;
        assert_eq!(read(a, arr, (11 * per_slot) as u16).unwrap(), want, "{t:?}");
    }
}

#[test]
fn bool_elements_are_bits_of_a_slot() {
    let a = args();
    let img = image::get().unwrap();
    // %QX20.1 is element 20 * 8 + 1 of array 1 (BOOL_OUT).
    let elem = 20 * 8 + 1;
    assert_eq!((a.debug_size)(1, elem), 1);
    // Any non-zero byte stores TRUE, as OpenPLC's bool write does.
    assert_eq!(write(a, 1, elem, &[0x40]), STATUS_OK);
    assert_eq!(read(a, 1, elem).unwrap(), [1]);
    for bit in 0..8 {
        let want = u64::from(bit == 1);
        assert_eq!(img.read(Table::BoolOut, 20, bit), Some(want), "bit {bit}");
    }
    // The struct's bool table points at the same byte (what plugins reading the
    // image directly and the scan loop see).
    // SAFETY: slot 20 < SLOTS, bit 1 < 8; the pointer table lives in the image.
    let via_ptr = unsafe { *(*a.bool_output.add(20))[1] };
    assert_eq!(via_ptr, 1);
    assert_eq!(write(a, 1, elem, &[0]), STATUS_OK);
    assert_eq!(read(a, 1, elem).unwrap(), [0]);
    // The three bool tables are separate arrays.
    assert_eq!(write(a, 0, elem, &[1]), STATUS_OK);
    assert_eq!(read(a, 2, elem).unwrap(), [0]);
    assert_eq!(img.read(Table::BoolIn, 20, 1), Some(1));
}

#[test]
fn out_of_range_addresses_are_refused_with_openplcs_codes() {
    let a = args();
    let img = image::get().unwrap();
    let mut buf = [0u8; 8];
    for arr in [14u8, 15, 200, 255] {
        assert_eq!((a.debug_elem_count)(arr), 0);
        assert_eq!((a.debug_size)(arr, 0), 0);
        assert_eq!((a.debug_read)(arr, 0, buf.as_mut_ptr()), 0);
        assert_eq!(write(a, arr, 0, &[1]), STATUS_OUT_OF_BOUNDS);
    }
    // One past the end of a word table and of a bool table.
    assert_eq!((a.debug_size)(5, SLOTS as u16), 0);
    assert_eq!((a.debug_read)(5, SLOTS as u16, buf.as_mut_ptr()), 0);
    assert_eq!(write(a, 5, SLOTS as u16, &[1, 2]), STATUS_OUT_OF_BOUNDS);
    let past_bits = (SLOTS * 8) as u16;
    assert_eq!((a.debug_size)(1, past_bits), 0);
    assert_eq!(write(a, 1, past_bits, &[1]), STATUS_OUT_OF_BOUNDS);
    assert_eq!((a.debug_size)(1, past_bits - 1), 1);
    // A NULL destination reads nothing.
    assert_eq!((a.debug_read)(5, 0, ptr::null_mut()), 0);
    // Nothing was written anywhere by the refused calls.
    assert_eq!(img.read(Table::IntIn, SLOTS - 1, 0), Some(0));
}

#[test]
fn wrong_sizes_are_refused_and_change_nothing() {
    let a = args();
    let img = image::get().unwrap();
    // INT_OUT slot 30: 2 bytes.
    assert_eq!(write(a, 6, 30, &[0x34, 0x12]), STATUS_OK);
    assert_eq!(img.read(Table::IntOut, 30, 0), Some(0x1234));
    for bad in [&[][..], &[1][..], &[1, 2, 3][..], &[1, 2, 3, 4][..]] {
        assert_eq!(write(a, 6, 30, bad), STATUS_DATA_TOO_LARGE, "{bad:?}");
    }
    // DINT needs 4, LINT 8, a bool 1.
    assert_eq!(write(a, 9, 30, &[1, 2]), STATUS_DATA_TOO_LARGE);
    assert_eq!(write(a, 12, 30, &[1, 2, 3, 4]), STATUS_DATA_TOO_LARGE);
    assert_eq!(write(a, 1, 30, &[1, 0]), STATUS_DATA_TOO_LARGE);
    // A NULL value.
    assert_eq!(
        (a.debug_write)(6, 30, ptr::null(), 2),
        STATUS_DATA_TOO_LARGE
    );
    assert_eq!(img.read(Table::IntOut, 30, 0), Some(0x1234));
    assert_eq!(img.read(Table::DintOut, 30, 0), Some(0));
    assert_eq!(img.read(Table::LintOut, 30, 0), Some(0));
    assert_eq!(img.read(Table::BoolOut, 3, 6), Some(0));
}

/// Forcing is not supported: debug_set answers OpenPLC's refusal code and
/// changes nothing, whether forcing or releasing.
#[test]
fn debug_set_is_refused() {
    let a = args();
    let img = image::get().unwrap();
    let v = [0x11u8, 0x22];
    assert_eq!(
        (a.debug_set)(7, 40, true, v.as_ptr(), 2),
        STATUS_OUT_OF_BOUNDS
    );
    assert_eq!(
        (a.debug_set)(7, 40, false, ptr::null(), 0),
        STATUS_OUT_OF_BOUNDS
    );
    assert_eq!(img.read(Table::IntMem, 40, 0), Some(0));
    // Writes still work after a refused force.
    assert_eq!(write(a, 7, 40, &v), STATUS_OK);
    assert_eq!(read(a, 7, 40).unwrap(), v);
}
