//! The layout of `src/` keeps the rule of docs/ARCHITECTURE.md ("Inside
//! each crate"): no import circle between the crate's files. The floors
//! it leaves are in `src/lib.rs` ("Where things live").

use std::path::Path;
use vitals_test_support::import_graph;

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph::no_import_cycle(&src).unwrap_or_else(|circles| panic!("{circles}"));
    // The check read the crate: a parser that found no import would pass.
    let imports = |from: &str, to: &str| graph.get(from).is_some_and(|m| m.contains_key(to));
    assert!(
        imports("record/layer.rs", "server_metrics.rs"),
        "{graph:#?}"
    );
    assert!(imports("entry_points.rs", "record/layer.rs"), "{graph:#?}");
    assert!(imports("push/mod.rs", "push/client.rs"), "{graph:#?}");
    assert!(!graph.contains_key("lib.rs"));
}
