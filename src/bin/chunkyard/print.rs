//! How the commands print: shapes as Python tuples, values and nested
//! lists as NumPy prints them (or as JSON), JSON strings.

use chunkyard::{ArrayHandle, DType, Element, dispatch};

pub(crate) fn tuple(v: &[u64]) -> String {
    match v.len() {
        1 => format!("({},)", v[0]),
        _ => format!(
            "({})",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub(crate) fn fill_text(a: &ArrayHandle) -> String {
    dispatch!(a.dtype(), T => format_elem(T::from_ne_slice(a.fill_value())))
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Elements beyond which `get` refuses to print and asks for `--out`.
pub(crate) const PRINT_LIMIT: u64 = 1 << 24;

pub(crate) fn format_elem<T: Element>(v: T) -> String {
    match T::DTYPE {
        DType::Bool => (if v.to_i128() != 0 { "true" } else { "false" }).into(),
        DType::F32 | DType::F64 => {
            let x = v.to_f64();
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                (if x > 0.0 { "inf" } else { "-inf" }).into()
            } else {
                format!("{v:?}")
            }
        }
        _ => v.to_string(),
    }
}

pub(crate) fn format_json_elem<T: Element>(v: T) -> String {
    match format_elem(v).as_str() {
        // Python's json module reads and writes these.
        "nan" => "NaN".into(),
        "inf" => "Infinity".into(),
        "-inf" => "-Infinity".into(),
        s => s.into(),
    }
}

/// Nested-list text of a C-order buffer.
pub(crate) fn render<T: Element>(bytes: &[u8], shape: &[u64], json: bool) -> String {
    let size = T::DTYPE.size();
    let vals: Vec<String> = bytes
        .chunks_exact(size)
        .map(|b| {
            let v = T::from_ne_slice(b);
            if json {
                format_json_elem(v)
            } else {
                format_elem(v)
            }
        })
        .collect();
    fn nest(vals: &[String], shape: &[u64]) -> String {
        match shape.split_first() {
            None => vals.first().cloned().unwrap_or_default(),
            Some((&n, rest)) => {
                let stride: usize = rest.iter().product::<u64>() as usize;
                let parts: Vec<String> = (0..n as usize)
                    .map(|i| nest(&vals[i * stride..(i + 1) * stride], rest))
                    .collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }
    nest(&vals, shape)
}
