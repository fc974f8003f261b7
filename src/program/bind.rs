//! Located variables → image tables, as OpenPLC binds them: the address index
//! is the slot, `%?X` is bool table `[slot][bit]`, B → byte, W → int,
//! D → dint, L → lint; areas I, Q and M (there is no `%MB` table). Refused,
//! with the variable's name and address: an unknown area or size, `%MB`, a
//! slot beyond the buffer size, a bit above 7, and a variable whose storage
//! is not the address's size, which also refuses two variables of different
//! sizes at one address (OpenPLC skips or truncates these silently). Two
//! variables of the same size at one address are both bound, as in OpenPLC.
//!
//! Copying: inputs (and memory) are copied in before the due tasks run;
//! outputs (and memory) are copied out after them, only the values that
//! changed since the last copy, so a plugin's write to an output the program
//! does not change is kept.

use std::cell::Cell;
use std::ffi::CStr;

use super::abi::RawVar;
use crate::image::{Image, Table};

/// How a binding is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// %I: image → program.
    In,
    /// %Q: program → image, changes only.
    Out,
    /// %M: both; a change by the program wins over the image.
    Both,
}

/// One located variable bound to an image value.
pub struct Binding {
    table: Table,
    index: usize,
    bit: usize,
    bytes: usize,
    var: *mut u8,
    dir: Dir,
    /// The value last copied in or out (`written` false: none yet).
    shadow: Cell<u64>,
    written: Cell<bool>,
}

/// An address as written in IEC, e.g. `%QW3` or `%IX0.5`.
pub fn address(area: u8, size: u8, index: u16, bit: u8) -> String {
    let a = ['I', 'Q', 'M']
        .get(usize::from(area))
        .copied()
        .unwrap_or('?');
    let s = ['X', 'B', 'W', 'D', 'L']
        .get(usize::from(size))
        .copied()
        .unwrap_or('?');
    if size == 0 {
        format!("%{a}{s}{index}.{bit}")
    } else {
        format!("%{a}{s}{index}")
    }
}

/// The image table of an area and size, `None` for `%MB`.
fn table_of(area: u8, size: u8) -> Option<Table> {
    use Table::*;
    Some(match (area, size) {
        (0, 0) => BoolIn,
        (0, 1) => ByteIn,
        (0, 2) => IntIn,
        (0, 3) => DintIn,
        (0, 4) => LintIn,
        (1, 0) => BoolOut,
        (1, 1) => ByteOut,
        (1, 2) => IntOut,
        (1, 3) => DintOut,
        (1, 4) => LintOut,
        (2, 0) => BoolMem,
        (2, 2) => IntMem,
        (2, 3) => DintMem,
        (2, 4) => LintMem,
        _ => return None,
    })
}

/// A located variable as the plugin describes it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub name: String,
    pub address: String,
    table: Table,
    index: usize,
    bit: usize,
    var: *mut u8,
}

/// Checks the plugin's table against an image of `buffer_size` slots.
pub fn check(vars: &[RawVar], buffer_size: usize) -> Result<Vec<Located>, String> {
    let mut out: Vec<Located> = Vec::with_capacity(vars.len());
    for v in vars {
        let name = if v.name.is_null() {
            "?".to_string()
        } else {
            // SAFETY: the glue's names are NUL-terminated strings in the
            // library, valid while it is loaded (checked non-null).
            unsafe { CStr::from_ptr(v.name) }
                .to_string_lossy()
                .into_owned()
        };
        let address = address(v.area, v.size, v.index, v.bit);
        let what = format!("program variable {name} at {address}");
        if v.area > 2 || v.size > 4 {
            return Err(format!(
                "{what}: unknown area {} or size {} (expected I/Q/M and X/B/W/D/L)",
                v.area, v.size
            ));
        }
        let Some(table) = table_of(v.area, v.size) else {
            return Err(format!(
                "{what}: there is no %MB table in OpenPLC's image (memory is %MX, %MW, %MD or %ML)"
            ));
        };
        let index = usize::from(v.index);
        if index >= buffer_size {
            return Err(format!(
                "{what}: slot {index} is beyond the image (--buffer-size {buffer_size}: slots 0..{})",
                buffer_size - 1
            ));
        }
        if v.size == 0 && v.bit > 7 {
            return Err(format!("{what}: bit {} is above 7", v.bit));
        }
        if v.value.is_null() {
            return Err(format!(
                "{what}: the glue gave no storage address (a half-built program)"
            ));
        }
        let want = table.elem_size();
        let var_bytes = usize::from(v.var_bytes);
        if var_bytes != 0 && var_bytes != want {
            return Err(format!(
                "{what}: its type takes {var_bytes} byte(s), the address holds {want}"
            ));
        }
        let bit = if v.size == 0 { usize::from(v.bit) } else { 0 };
        out.push(Located {
            name,
            address,
            table,
            index,
            bit,
            var: v.value.cast(),
        });
    }
    Ok(out)
}

impl Binding {
    pub fn new(l: &Located) -> Binding {
        let dir = match l.table {
            Table::BoolIn | Table::ByteIn | Table::IntIn | Table::DintIn | Table::LintIn => Dir::In,
            Table::BoolMem | Table::IntMem | Table::DintMem | Table::LintMem => Dir::Both,
            _ => Dir::Out,
        };
        Binding {
            table: l.table,
            index: l.index,
            bit: l.bit,
            bytes: l.table.elem_size(),
            var: l.var,
            dir,
            shadow: Cell::new(0),
            written: Cell::new(false),
        }
    }

    fn read_var(&self) -> u64 {
        // SAFETY: `var` is the variable's storage in the loaded library
        // (checked non-null), of at least `bytes` bytes (the glue's type
        // check); the library stays loaded while the program is bound, and
        // only the scan thread touches it meanwhile.
        unsafe {
            match self.bytes {
                1 => u64::from(self.var.read()),
                2 => u64::from(self.var.cast::<u16>().read_unaligned()),
                4 => u64::from(self.var.cast::<u32>().read_unaligned()),
                _ => self.var.cast::<u64>().read_unaligned(),
            }
        }
    }

    fn write_var(&self, v: u64) {
        // SAFETY: as in `read_var`.
        unsafe {
            match self.bytes {
                1 => self.var.write(v as u8),
                2 => self.var.cast::<u16>().write_unaligned(v as u16),
                4 => self.var.cast::<u32>().write_unaligned(v as u32),
                _ => self.var.cast::<u64>().write_unaligned(v),
            }
        }
    }

    /// Image → program (inputs and memory). Under the image lock.
    pub fn copy_in(&self, image: &Image) {
        if self.dir == Dir::Out {
            return;
        }
        if let Some(v) = image.read(self.table, self.index, self.bit) {
            self.write_var(v);
            if self.dir == Dir::Both {
                self.shadow.set(v);
                self.written.set(true);
            }
        }
    }

    /// Program → image (outputs and memory), when changed. Under the lock.
    pub fn copy_out(&self, image: &Image) {
        if self.dir == Dir::In {
            return;
        }
        let v = self.read_var();
        if self.written.get() && self.shadow.get() == v {
            return;
        }
        image.store(self.table, self.index, self.bit, v);
        self.shadow.set(v);
        self.written.set(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(area: u8, size: u8, index: u16, bit: u8, bytes: u8, name: &'static CStr) -> RawVar {
        static mut STORE: u64 = 0;
        RawVar {
            area,
            size,
            index,
            bit,
            var_bytes: bytes,
            reserved: [0; 2],
            value: (&raw mut STORE).cast(),
            name: name.as_ptr(),
        }
    }

    #[test]
    fn addresses_are_written_as_in_iec() {
        assert_eq!(address(0, 0, 0, 5), "%IX0.5");
        assert_eq!(address(1, 2, 10, 0), "%QW10");
        assert_eq!(address(2, 4, 3, 0), "%ML3");
    }

    #[test]
    fn refusals_name_the_variable_and_its_address() {
        let cases = [
            (
                var(2, 1, 3, 0, 1, c"M"),
                "program variable M at %MB3: there is no %MB table",
            ),
            (
                var(1, 2, 1024, 0, 2, c"Big"),
                "program variable Big at %QW1024: slot 1024 is beyond the image",
            ),
            (
                var(0, 0, 0, 9, 1, c"B"),
                "program variable B at %IX0.9: bit 9 is above 7",
            ),
            (
                var(1, 2, 0, 0, 4, c"D"),
                "program variable D at %QW0: its type takes 4 byte(s), the address holds 2",
            ),
            (var(3, 0, 0, 0, 1, c"A"), "unknown area 3"),
        ];
        for (v, want) in cases {
            let e = check(&[v], 1024).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert_eq!(
            check(&[var(2, 4, 1023, 0, 8, c"L")], 1024).unwrap().len(),
            1
        );
    }
}
