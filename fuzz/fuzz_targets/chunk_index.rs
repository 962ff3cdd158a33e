//! Random shapes (1-4 axes), chunk shapes and NumPy selections: the
//! resolver must agree with a brute-force model of NumPy's indexing rules,
//! and `ChunkGrid::pieces` must cover every selected element exactly once,
//! at the right output position, and nothing else.
#![no_main]

use std::collections::HashMap;

use chunkyard::ChunkGrid;
use chunkyard::{SelItem, Selection};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Item {
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i8>),
}

#[derive(Arbitrary, Debug)]
struct Axis {
    len: u64,
    chunk: u32,
    item: Item,
    /// Small axes are enumerated; big ones test overflow near `u64::MAX`.
    big: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    axes: Vec<Axis>,
    /// Leave out this many trailing items (modulo the rank).
    drop_tail: u8,
    /// Replace the item at this position (modulo rank + 1) by `...`.
    ellipsis: Option<u8>,
}

/// At most this many selected elements are enumerated.
const MAX_ELEMS: u128 = 4096;

/// NumPy's rules, written plainly: the positions an item selects along an
/// axis of `len`, as (start, step, count), or None if NumPy raises.
fn model_axis(item: &SelItem, len: u64) -> Option<(u64, u64, u64, bool)> {
    let len = i128::from(len);
    match *item {
        SelItem::Index(i) => {
            let p = if i < 0 { i as i128 + len } else { i as i128 };
            (0..len).contains(&p).then_some((p as u64, 1, 1, false))
        }
        SelItem::Slice { start, stop, step } => {
            let step = step.unwrap_or(1) as i128;
            if step <= 0 {
                return None;
            }
            let clamp = |v: i64| {
                let v = v as i128;
                let v = if v < 0 { v + len } else { v };
                v.clamp(0, len)
            };
            let a = start.map_or(0, clamp);
            let b = stop.map_or(len, clamp);
            let count = if b > a { (b - a + step - 1) / step } else { 0 };
            Some((a as u64, step as u64, count as u64, true))
        }
        _ => None,
    }
}

fuzz_target!(|input: Input| {
    if input.axes.is_empty() || input.axes.len() > 4 {
        return;
    }
    let shape: Vec<u64> = input
        .axes
        .iter()
        .map(|a| if a.big { a.len } else { a.len % 12 })
        .collect();
    let chunks: Vec<u64> = input
        .axes
        .iter()
        .map(|a| {
            if a.big {
                1 + u64::from(a.chunk) % (1 << 31)
            } else {
                1 + u64::from(a.chunk) % 7
            }
        })
        .collect();
    let mut items: Vec<SelItem> = input
        .axes
        .iter()
        .map(|a| match a.item {
            Item::Index(i) => SelItem::Index(i),
            Item::Slice(start, stop, step) => SelItem::Slice {
                start,
                stop,
                step: step.map(i64::from),
            },
        })
        .collect();
    // Trailing axes may be left out (they are taken whole), and one item
    // may be replaced by `...` (which stands for the missing axes).
    items.truncate(items.len() - usize::from(input.drop_tail) % items.len());
    if let Some(e) = input.ellipsis {
        let e = usize::from(e) % (items.len() + 1);
        if e < items.len() {
            items[e] = SelItem::Ellipsis;
        } else {
            items.push(SelItem::Ellipsis);
        }
    }
    let named = items.iter().filter(|&&i| i != SelItem::Ellipsis).count();
    let mut full: Vec<SelItem> = Vec::new();
    for &it in &items {
        if it == SelItem::Ellipsis {
            full.extend(std::iter::repeat_n(SelItem::FULL, shape.len() - named));
        } else {
            full.push(it);
        }
    }
    full.resize(shape.len(), SelItem::FULL);
    let sel = Selection::new(items);

    // Text round trip: what Display prints parses back to a selection
    // that resolves the same (`[]` prints as `...`).
    let text = sel.to_string();
    let again = Selection::parse(&text).expect("Display output parses");
    assert_eq!(again.resolve(&shape), sel.resolve(&shape), "{text:?}");

    let model: Option<Vec<(u64, u64, u64, bool)>> = full
        .iter()
        .zip(&shape)
        .map(|(it, &n)| model_axis(it, n))
        .collect();
    let resolved = sel.resolve(&shape);
    let (Some(model), Ok(resolved)) = (&model, &resolved) else {
        assert!(
            model.is_none() && resolved.is_err(),
            "{text:?} on {shape:?}: model {model:?}, resolver {resolved:?}"
        );
        return;
    };
    for (k, (a, m)) in resolved.axes().iter().zip(model).enumerate() {
        let (start, step, count) = a.as_range();
        assert_eq!(a.is_kept(), m.3, "axis {k} of {text:?}");
        assert_eq!(count, m.2, "count on axis {k} of {text:?} on {shape:?}");
        if count > 1 {
            assert_eq!((start, step), (m.0, m.1), "axis {k} of {text:?}");
        } else if count == 1 {
            assert_eq!(start, m.0, "axis {k} of {text:?}");
        }
    }

    let Ok(grid) = ChunkGrid::new(&shape, &chunks, 1) else {
        return;
    };
    let total: u128 = model.iter().map(|m| u128::from(m.2)).product();
    if total > MAX_ELEMS {
        return;
    }
    // Brute force: every selected element and its (full-rank) output index.
    let mut want: HashMap<Vec<u64>, Vec<u64>> = HashMap::new();
    let counts: Vec<u64> = model.iter().map(|m| m.2).collect();
    if total > 0 {
        let mut idx = vec![0u64; counts.len()];
        loop {
            let coord: Vec<u64> = idx.iter().zip(model).map(|(&i, m)| m.0 + i * m.1).collect();
            assert!(want.insert(coord, idx.clone()).is_none());
            let mut k = idx.len();
            loop {
                if k == 0 {
                    break;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < counts[k] {
                    break;
                }
                idx[k] = 0;
            }
            if idx.iter().all(|&i| i == 0) {
                break;
            }
        }
    }
    assert_eq!(want.len() as u128, total);

    let pieces = grid.pieces(resolved);
    let hint = pieces.len_hint();
    let mut n_pieces = 0u64;
    for p in pieces {
        n_pieces += 1;
        assert!(grid.contains_chunk(&p.chunk), "{p:?} outside {grid:?}");
        let extent = grid.chunk_extent(&p.chunk);
        let origin = grid.chunk_origin(&p.chunk);
        for (k, &(start, step, count)) in p.region.iter().enumerate() {
            assert!(count > 0, "empty piece {p:?}");
            assert!(step > 0);
            assert!(
                start + (count - 1) * step < extent[k],
                "{p:?} leaves its chunk (extent {extent:?})"
            );
        }
        let pc: Vec<u64> = p.region.iter().map(|r| r.2).collect();
        let mut idx = vec![0u64; pc.len()];
        let mut seen = 0u64;
        loop {
            let coord: Vec<u64> = (0..idx.len())
                .map(|k| origin[k] + p.region[k].0 + idx[k] * p.region[k].1)
                .collect();
            let out: Vec<u64> = (0..idx.len()).map(|k| p.out_start[k] + idx[k]).collect();
            match want.remove(&coord) {
                Some(o) => assert_eq!(o, out, "element {coord:?} lands at the wrong place"),
                None => panic!(
                    "{coord:?} is not selected, or covered twice ({text:?} {shape:?} {chunks:?})"
                ),
            }
            seen += 1;
            let mut k = idx.len();
            loop {
                if k == 0 {
                    break;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < pc[k] {
                    break;
                }
                idx[k] = 0;
            }
            if idx.iter().all(|&i| i == 0) {
                break;
            }
        }
        assert_eq!(seen, p.num_elements());
        let chunk_elems: u64 = extent.iter().product();
        assert_eq!(
            p.covers(&extent),
            p.num_elements() == chunk_elems,
            "covers() of {p:?} in extent {extent:?}"
        );
    }
    assert!(
        want.is_empty(),
        "not covered: {want:?} ({text:?} {shape:?} {chunks:?})"
    );
    assert_eq!(hint, n_pieces, "len_hint");
});
