//! Bounded fuzzing of what the embedded model reads from outside: the GGUF header and the
//! JSON schemas it compiles for constrained decoding. Hostile counts, offsets and sizes in a
//! GGUF file must give an error, never a panic or a huge allocation (a counting allocator
//! watches every allocation); any JSON value as a schema must compile or be refused, and a
//! compiled schema's matcher must answer any bytes. `PROPTEST_CASES` sets the cases.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crossfire_embedded::gguf::Gguf;
use crossfire_embedded::grammar::Schema;
use proptest::prelude::*;
use serde_json::Value;

/// The system allocator, remembering the largest single allocation of each thread: the
/// model's tests allocate far more, at the same time, on threads of their own.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: a thread being torn down may still allocate.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: forwards to the system allocator unchanged; it only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// No input here is over a few kilobytes: an allocation past this is the header's numbers
/// believed.
const ALLOCATION_LIMIT: usize = 16 << 20;

fn seed() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/minimal.gguf"
    ))
    .unwrap()
}

/// The seed with hostile numbers written over it: any 8 bytes, on any offset, become a
/// huge, zero or random count; and perhaps a cut.
fn hostile_gguf() -> impl Strategy<Value = Vec<u8>> {
    let seed = seed();
    let n = seed.len();
    (
        proptest::collection::vec(
            (
                0..n,
                prop_oneof![
                    Just(u64::MAX),
                    Just(u64::MAX / 2),
                    Just(1u64 << 40),
                    Just(0u64),
                    any::<u64>()
                ],
                any::<bool>(),
            ),
            1..6,
        ),
        proptest::option::of(0..n),
    )
        .prop_map(move |(edits, cut)| {
            let mut bytes = seed.clone();
            for (at, value, narrow) in edits {
                let value = if narrow {
                    (value as u32).to_le_bytes().to_vec()
                } else {
                    value.to_le_bytes().to_vec()
                };
                for (i, b) in value.into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = b;
                    }
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            bytes
        })
}

/// Any JSON value, a few levels deep, leaning towards schema keywords.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("object"),
            Just("array"),
            Just("string"),
            Just("integer"),
            Just("number"),
            Just("boolean"),
            Just("null"),
            Just("date"),
            Just("")
        ]
        .prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("type"),
                        Just("properties"),
                        Just("required"),
                        Just("items"),
                        Just("enum"),
                        Just("const"),
                        Just("minItems"),
                        Just("maxItems"),
                        Just("minLength"),
                        Just("maxLength"),
                        Just("minimum"),
                        Just("maximum"),
                        Just("a"),
                        Just("b")
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|fields| Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(crossfire_testkit::fuzz_config(4000))]

    #[test]
    fn hostile_gguf_headers_are_errors_not_panics_or_huge_allocations(
        bytes in prop_oneof![hostile_gguf(), proptest::collection::vec(any::<u8>(), 0..400)],
    ) {
        LARGEST.with(|largest| largest.set(0));
        let _ = Gguf::parse(&bytes);
        let largest = LARGEST.with(Cell::get);
        prop_assert!(largest < ALLOCATION_LIMIT, "an allocation of {largest} bytes for a {}-byte file", bytes.len());
    }

    #[test]
    fn any_schema_compiles_or_is_refused_and_its_matcher_answers_any_bytes(
        schema in json_value(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok(compiled) = Schema::compile(&schema) {
            let mut matcher = compiled.matcher();
            let _ = matcher.shortest_completion();
            for b in bytes {
                if matcher.allows(&[b]) {
                    prop_assert!(matcher.advance(&[b]));
                }
            }
        }
    }
}

#[test]
fn the_seed_parses() {
    let gguf = Gguf::parse(&seed()).expect("the seed is a valid GGUF header");
    assert_eq!(gguf.str("general.architecture").unwrap(), "llama");
    assert_eq!(gguf.int("llama.context_length").unwrap(), 8);
    assert_eq!(
        gguf.strings("tokenizer.ggml.tokens").unwrap(),
        ["a", "b", "<|im_end|>"]
    );
}
