//! Arbitrary text into the NumPy selection parser, resolved against a few
//! shapes: it must return a selection or a typed error, never panic; what
//! `Display` prints must parse back to the same selection; and a resolved
//! selection must lie inside the shape.
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
    // What Display prints parses back to a selection that resolves the
    // same way (`` prints as `...`).
    let printed = sel.to_string();
    let again = Selection::parse(&printed).expect("Display output parses");
    for shape in [
        &[][..],
        &[0][..],
        &[7][..],
        &[3, 1 << 40][..],
        &[2, 3, 4, 5][..],
        &[u64::MAX, 1][..],
    ] {
        assert_eq!(
            again.resolve(shape),
            sel.resolve(shape),
            "{text:?} prints as {printed:?}"
        );
        if let Ok(r) = sel.resolve(shape) {
            assert_eq!(r.axes().len(), shape.len());
            for (a, &n) in r.axes().iter().zip(shape) {
                let (start, step, count) = a.as_range();
                assert!(step >= 1);
                if count > 0 {
                    let last = u128::from(start) + u128::from(count - 1) * u128::from(step);
                    assert!(last < u128::from(n), "{text:?} escapes {shape:?}");
                }
            }
        }
    }
});
