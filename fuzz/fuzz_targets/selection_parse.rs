//! Arbitrary text into the NumPy selection parser, resolved against a few
//! shapes: it must return a selection or a typed error, never panic, and a
//! resolved selection must lie inside the shape.
#![no_main]

use chunkyard::Selection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = Selection::parse(text) else {
        return;
    };
    for shape in [&[][..], &[0][..], &[7][..], &[3, 1 << 40][..], &[2, 3, 4, 5][..]] {
        if let Ok(r) = sel.resolve(shape) {
            for (a, &n) in r.axes().iter().zip(shape) {
                let (start, step, count) = a.as_range();
                if count > 0 {
                    assert!(start + (count - 1) * step < n, "{text:?} escapes {shape:?}");
                }
            }
        }
    }
});
