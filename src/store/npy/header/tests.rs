//! Tests of the `.npy` header: what NumPy writes, what parses, and the
//! errors every malformed header gets (the literal parser included).

use proptest::prelude::*;

use super::*;

/// A header as NumPy frames it: magic, version, length, text, padded
/// with spaces and a newline to a multiple of 64.
pub(in crate::store::npy) fn framed(version: (u8, u8), dict: &[u8]) -> Vec<u8> {
    let len_bytes = if version == (1, 0) { 2 } else { 4 };
    let total = padded(dict.len() + 1, len_bytes);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[version.0, version.1]);
    if len_bytes == 2 {
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total as u32).to_le_bytes());
    }
    out.extend_from_slice(dict);
    out.resize(8 + len_bytes + total - 1, b' ');
    out.push(b'\n');
    out
}

fn parse_dict(dict: &str) -> std::result::Result<NpyHeader, String> {
    parse_npy_header(&framed((1, 0), dict.as_bytes()))
}

fn err_of(dict: &str) -> String {
    parse_dict(dict).expect_err(dict)
}

// -- header: what NumPy writes ------------------------------------------

#[test]
fn encodes_numpy_headers_byte_for_byte() {
    // Captured from `np.save` (NumPy 2.4).
    let cases: [(DType, Endian, Order, &[u64], &str); 4] = [
        (
            DType::F32,
            Endian::Little,
            Order::C,
            &[3, 4],
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
        ),
        (
            DType::I16,
            Endian::Big,
            Order::Fortran,
            &[3, 4],
            "{'descr': '>i2', 'fortran_order': True, 'shape': (3, 4), }",
        ),
        (
            DType::Bool,
            Endian::Little,
            Order::C,
            &[],
            "{'descr': '|b1', 'fortran_order': False, 'shape': (), }",
        ),
        (
            DType::U64,
            Endian::Little,
            Order::C,
            &[5],
            "{'descr': '<u8', 'fortran_order': False, 'shape': (5,), }",
        ),
    ];
    for (dtype, endian, order, shape, dict) in cases {
        let got = encode_header(dtype, endian, order, shape);
        let mut want = b"\x93NUMPY\x01\x00v\x00".to_vec();
        want.extend_from_slice(dict.as_bytes());
        want.resize(127, b' ');
        want.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{dict}"
        );
        let h = parse_npy_header(&got).unwrap();
        assert_eq!(
            (h.dtype, h.order, h.shape.as_slice()),
            (dtype, order, shape)
        );
        assert_eq!(h.data_offset, 128);
    }
}

#[test]
fn header_growth_padding_and_alignment() {
    // (500, 2000, 2000): 21 - 3 growth spaces, total still 128 bytes.
    let h = encode_header(DType::F32, Endian::Little, Order::C, &[500, 2000, 2000]);
    assert_eq!(h.len(), 128);
    assert!(h.ends_with(b" \n"));
    // Exactly on a 64-byte boundary once the growth digits count:
    // NumPy pads with a whole further 64 bytes (182 = 0xb6 header bytes).
    let mut shape = vec![1u64; 14];
    shape.push(3);
    let h = encode_header(DType::F32, Endian::Little, Order::Fortran, &shape);
    assert_eq!(h.len(), 192);
    assert_eq!(&h[8..10], &182u16.to_le_bytes());
    assert_eq!(h[h.len() - 65..h.len() - 1], [b' '; 64]);
    // Data offsets are always a multiple of 64, whatever the shape.
    for ndim in 0..40 {
        // Growth axes of every digit count, the product within 64 bits.
        let mut shape = vec![1u64; ndim as usize];
        if ndim > 0 {
            shape[0] = 10u64.pow(ndim % 10);
            shape[ndim as usize - 1] *= 3 * 10u64.pow((ndim * 3) % 9);
        }
        for order in [Order::C, Order::Fortran] {
            let h = encode_header(DType::F64, Endian::Big, order, &shape);
            assert_eq!(h.len() % 64, 0, "{shape:?}");
            let p = parse_npy_header(&h).unwrap();
            assert_eq!(p.shape, shape);
            assert_eq!(p.order, order);
            assert_eq!(p.version, (1, 0));
        }
    }
}

#[test]
fn header_switches_to_version_2_when_too_long_for_16_bits() {
    let shape = vec![1u64; 30_000];
    let h = encode_header(DType::U8, Endian::Little, Order::C, &shape);
    assert_eq!(&h[6..8], &[2, 0]);
    assert_eq!(h.len() % 64, 0);
    let p = parse_npy_header(&h).unwrap();
    assert_eq!(p.version, (2, 0));
    assert_eq!(p.shape, shape);
    assert_eq!(p.data_offset, h.len() as u64);
}

// -- header: good inputs ----------------------------------------------

#[test]
fn parses_versions_1_2_and_3() {
    let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (500, 2000, 2000), }";
    for v in [(1, 0), (2, 0), (3, 0)] {
        let bytes = framed(v, dict);
        let h = parse_npy_header(&bytes).unwrap();
        assert_eq!(
            h,
            NpyHeader {
                version: v,
                dtype: DType::F32,
                endian: Endian::Little,
                order: Order::C,
                shape: vec![500, 2000, 2000],
                data_offset: bytes.len() as u64,
            }
        );
        // A prefix holding the header is enough; data may follow.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[7; 100]);
        assert_eq!(parse_npy_header(&longer).unwrap(), h);
    }
}

#[test]
fn parses_header_variations() {
    let h = parse_dict("{\"shape\": (5,), \"descr\": \">i8\", \"fortran_order\": True}").unwrap();
    assert_eq!(
        (h.dtype, h.endian, h.order),
        (DType::I64, Endian::Big, Order::Fortran)
    );
    assert_eq!(h.shape, vec![5]);
    let h = parse_dict("{ 'fortran_order' :False ,'shape':( ),'descr':'|u1' , }").unwrap();
    assert_eq!(h.shape, Vec::<u64>::new());
    assert_eq!(h.dtype, DType::U8);
    let h = parse_dict("{'descr':'<b1','fortran_order':False,'shape':(2,\n 3 ,)}").unwrap();
    assert_eq!((h.dtype, h.shape.clone()), (DType::Bool, vec![2, 3]));
    // Python 2 long integers.
    let h = parse_dict("{'descr': '<u2', 'fortran_order': False, 'shape': (3L, 4L), }").unwrap();
    assert_eq!(h.shape, vec![3, 4]);
    // Empty arrays and the largest dimension.
    let h = parse_dict(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 18446744073709551615), }",
    )
    .unwrap();
    assert_eq!(h.shape, vec![0, u64::MAX]);
    for d in DType::ALL {
        for e in [Endian::Little, Endian::Big] {
            let dict = format!(
                "{{'descr': '{}', 'fortran_order': False, 'shape': (2,), }}",
                d.numpy_descr(e)
            );
            assert_eq!(parse_dict(&dict).unwrap().dtype, d, "{dict}");
        }
    }
}

// -- header: bad inputs -------------------------------------------------

#[test]
fn rejects_bad_magic_and_versions() {
    let good = framed(
        (1, 0),
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
    );
    let mut b = good.clone();
    b[0] = b'P';
    assert!(parse_npy_header(&b).unwrap_err().contains("magic"));
    assert!(
        parse_npy_header(b"PK\x03\x04")
            .unwrap_err()
            .contains("magic")
    );
    assert!(parse_npy_header(b"").unwrap_err().contains("truncated"));
    assert!(
        parse_npy_header(b"\x93NUM")
            .unwrap_err()
            .contains("truncated")
    );
    let mut b = good.clone();
    b[6] = 4;
    let e = parse_npy_header(&b).unwrap_err();
    assert!(e.contains("version 4.0"), "{e}");
    assert!(matches!(
        parse_header_inner(&b),
        Err(HeaderError::Unsupported(_))
    ));
}

#[test]
fn rejects_truncated_headers() {
    let good = framed(
        (1, 0),
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
    );
    for len in 0..good.len() {
        let e = parse_npy_header(&good[..len]).unwrap_err();
        assert!(e.contains("truncated"), "{len}: {e}");
    }
    // A length field far larger than what follows.
    let mut b = good.clone();
    b[8..10].copy_from_slice(&60_000u16.to_le_bytes());
    let e = parse_npy_header(&b).unwrap_err();
    assert!(e.contains("truncated") && e.contains("60000"), "{e}");
}

#[test]
fn rejects_header_length_over_the_limit() {
    let mut b = framed(
        (2, 0),
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
    );
    b[8..12].copy_from_slice(&(2u32 << 20).to_le_bytes());
    let e = parse_npy_header(&b).unwrap_err();
    assert!(e.contains("1 MiB"), "{e}");
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse_npy_header(&b).unwrap_err().contains("1 MiB"));
}

#[test]
fn rejects_garbage_text() {
    // Latin-1 garbage in a version 1.0 header.
    let e = parse_npy_header(&framed((1, 0), b"{'descr': '<f4', \xff\xfe}")).unwrap_err();
    assert!(e.contains("0xff"), "{e}");
    // Invalid UTF-8 in a version 3.0 header, even inside a string.
    let e = parse_npy_header(&framed(
        (3, 0),
        b"{'descr': '<f4\xc3', 'fortran_order': False, 'shape': (5,), }",
    ))
    .unwrap_err();
    assert!(e.contains("UTF-8"), "{e}");
    // Valid UTF-8 that is not a header.
    let e = parse_npy_header(&framed((3, 0), "{'déscr': 1}".as_bytes())).unwrap_err();
    assert!(e.contains("unexpected key"), "{e}");
    for dict in [
        "",
        "{",
        "[1, 2]",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), } x",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5,)",
        "{'descr': '<f4 , 'fortran_order': False, 'shape': (5,)}",
        "{'descr': '<f4', 'fortran_order': false, 'shape': (5,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5.0,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5 6)}",
        "{'descr': '<f4', 'fortran_order': False 'shape': (5,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), \0}",
    ] {
        assert!(parse_dict(dict).is_err(), "{dict:?}");
    }
}

#[test]
fn rejects_bad_keys_and_values() {
    let cases = [
        ("{'descr': '<f4', 'shape': (5,)}", "fortran_order"),
        ("{'descr': '<f4', 'fortran_order': False}", "shape"),
        ("{'fortran_order': False, 'shape': (5,)}", "descr"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), 'extra': 1}",
            "extra",
        ),
        (
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5,)}",
            "twice",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (5,)}",
            "True or False",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': [5]}",
            "not a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5)}",
            "not a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': 5}",
            "not a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 'a')}",
            "integers",
        ),
        (
            "{'descr': 4, 'fortran_order': False, 'shape': (5,)}",
            "dtype string",
        ),
        ("{1: '<f4'}", "not a string"),
    ];
    for (dict, want) in cases {
        let e = err_of(dict);
        assert!(e.contains(want), "{dict}: {e}");
    }
}

#[test]
fn rejects_negative_and_overflowing_shapes() {
    let e = err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (5, -1), }");
    assert!(e.contains("negative dimension -1"), "{e}");
    let e = err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }");
    assert!(e.contains("too large"), "{e}");
    let e = err_of(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999999999999999999999999,), }",
    );
    assert!(e.contains("too large"), "{e}");
    // Product overflow: 2**32 * 2**32 elements, and 2**62 f4 elements.
    let e = err_of("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
    assert!(e.contains("64 bits"), "{e}");
    let e = err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }");
    assert!(e.contains("64 bits"), "{e}");
    // Zero anywhere makes the product zero: fine.
    assert!(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 18446744073709551615, 18446744073709551615), }").is_ok());
}

#[test]
fn rejects_unsupported_dtypes_by_name() {
    for descr in ["<c8", "|O", "<U3", "<f2", "|V16", "<M8[ns]", "<i16"] {
        let bytes = framed(
            (1, 0),
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (5,), }}").as_bytes(),
        );
        match parse_header_inner(&bytes) {
            Err(HeaderError::Unsupported(m)) => {
                assert!(m.contains(descr), "{m}");
                assert!(m.contains("<f4"), "lists what is supported: {m}");
            }
            other => panic!("{descr}: {other:?}"),
        }
    }
    let bytes = framed(
        (1, 0),
        b"{'descr': [('x', '<f4'), ('y', '<i2', (2,))], 'fortran_order': False, 'shape': (5,), }",
    );
    match parse_header_inner(&bytes) {
        Err(HeaderError::Unsupported(m)) => assert!(m.contains("structured"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let dict = format!("{{'descr': {}", "(".repeat(100_000));
    assert!(err_of(&dict).contains("nested too deeply"));
    let dict = format!("{{'descr': {}", "[{'a': ".repeat(50_000));
    assert!(parse_dict(&dict).is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_npy_header(&bytes);
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_npy_header(&with_magic);
    }

    #[test]
    fn mutated_headers_never_panic(pos in 0usize..128, byte in any::<u8>(), cut in 0usize..200) {
        let mut h = encode_header(DType::F64, Endian::Big, Order::Fortran, &[3, 70000, 2]);
        let at = pos % h.len();
        h[at] = byte;
        h.truncate(cut.min(h.len()));
        let _ = parse_npy_header(&h);
    }
}
