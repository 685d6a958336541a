//! The layout of `src/` keeps the rule of docs/ARCHITECTURE.md ("Inside
//! each crate"): no import circle between the crate's files. The map of
//! where things live is in `src/lib.rs`.

use std::path::Path;
use vitals_test_support::import_graph;

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph::no_import_cycle(&src).unwrap_or_else(|circles| panic!("{circles}"));
    // The check read the crate: a parser that found no import would pass.
    let imports = |from: &str, to: &str| graph.get(from).is_some_and(|m| m.contains_key(to));
    // The registry renders through the text encoder; the one-call encoders
    // sit above the registry, not below it.
    assert!(imports("registry.rs", "encode/text.rs"), "{graph:#?}");
    assert!(imports("encode/render.rs", "registry.rs"), "{graph:#?}");
    assert!(!imports("encode/text.rs", "registry.rs"), "{graph:#?}");
    // Both registries (real and no-op) are followed through `crate::Registry`.
    assert!(imports("encode/render.rs", "noop.rs"), "{graph:#?}");
    assert!(imports("event/bus.rs", "event/data.rs"), "{graph:#?}");
    assert!(!graph.contains_key("lib.rs"));
}
