//! The layout of `src/` keeps the rule of docs/ARCHITECTURE.md ("Inside
//! each crate"): no import circle between the crate's files.

use std::path::Path;
use vitals_test_support::import_graph;

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph::no_import_cycle(&src).unwrap_or_else(|circles| panic!("{circles}"));
    // `main.rs` is the crate root (no node, like a `lib.rs`). The check
    // read and parsed every module (a file that does not parse is an
    // error), and none imports another back.
    for file in [
        "demo/mod.rs",
        "demo/apps.rs",
        "demo/load.rs",
        "demo/report.rs",
        "demo/service.rs",
        "errors.rs",
        "settings.rs",
    ] {
        assert!(graph.contains_key(file), "{file} not read: {graph:#?}");
    }
    assert!(!graph.contains_key("main.rs"));
}
