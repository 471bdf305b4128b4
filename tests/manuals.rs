//! Every program gets a man page: each `src/bin/*.rs` but `gear.rs` (whose definitions are
//! `gear::cli::command`) must be included by tools/manuals, which writes the pages at build
//! time. A new helper fails here until it has its `program!` line and its `helpers()` entry.

use std::path::Path;

#[test]
fn every_helper_has_a_manual_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = std::fs::read_to_string(root.join("tools/manuals/src/main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("src/bin")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(program) = name.strip_suffix(".rs") else {
            continue;
        };
        if program == "gear" {
            continue;
        }
        let module = program.replace('-', "_");
        let included = format!("program!({module}, \"../../../src/bin/{name}\");");
        let listed = format!("{module}::Cli::command().name(\"{program}\")");
        if !tool.contains(&included) || !tool.contains(&listed) {
            missing.push(program.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "tools/manuals/src/main.rs writes no man page for {missing:?}: add a program! line and \
         a helpers() entry for each"
    );
}
