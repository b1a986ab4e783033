//! Every code block in the guide is checked: configs build, records parse, and
//! Python and C snippets are copies of example files that run in their own suites.
//! (Rust blocks in README.md and docs/ run as doctests, see `lib.rs`.)
//!
//! A block's info string says what it is: ```` ```toml pipeline ````,
//! ```` ```json pipeline ````, ```` ```json record ````, or
//! ```` ```python examples/python/quickstart.py ```` for an excerpt of that file
//! (a file that runs in its own suite; indentation aside), such as the C guide's
//! blocks from the C programs `edgepipe-ffi`'s tests compile and run.

use std::path::{Path, PathBuf};

use edgepipe_core::DataRecord;
use edgepipe_core::transform::Pipeline;

struct Block {
    file: PathBuf,
    line: usize,
    info: String,
    text: String,
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut current, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    file: file.to_owned(),
                    line: index + 1,
                    info: info.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some("")) => blocks.extend(current.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "{}: unclosed code block", file.display());
    blocks
}

fn guide_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Whether `block`'s lines are consecutive lines of `source`, indentation aside
/// (a guide shows a function's body without the nesting it has in the file).
fn is_excerpt(block: &str, source: &str) -> bool {
    let lines = |text: &str| -> Vec<String> { text.lines().map(|l| l.trim().to_owned()).collect() };
    let (block, source) = (lines(block), lines(source));
    !block.is_empty() && source.windows(block.len()).any(|window| window == block)
}

#[test]
fn every_code_block_in_the_guide_is_checked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // The guide files lib.rs includes as doctests: their Rust blocks run there.
    let lib = std::fs::read_to_string(root.join("edgepipe-core/src/lib.rs")).unwrap();
    let doctested: Vec<PathBuf> = lib
        .split("include_str!(\"../../")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|path| root.join(path))
        .collect();
    let mut checked = 0;
    for file in guide_files(root) {
        for block in blocks(&file) {
            let at = format!(
                "{}:{} (```{})",
                block.file.display(),
                block.line,
                block.info
            );
            let mut words = block.info.split_whitespace();
            let language = words.next().unwrap_or("");
            let tag = words.next();
            match (language, tag) {
                ("toml", Some("pipeline")) => {
                    Pipeline::from_toml_str(&block.text).unwrap_or_else(|e| panic!("{at}: {e}"));
                }
                ("json", Some("pipeline")) => {
                    Pipeline::from_json_str(&block.text).unwrap_or_else(|e| panic!("{at}: {e}"));
                }
                ("json", Some("record")) => {
                    for line in block.text.lines().filter(|l| !l.trim().is_empty()) {
                        DataRecord::from_json(line).unwrap_or_else(|e| panic!("{at}: {e}"));
                    }
                }
                (_, Some(path)) if path.contains('/') => {
                    let source = std::fs::read_to_string(root.join(path))
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert!(
                        is_excerpt(&block.text, &source),
                        "{at}: the block is not an excerpt of {path}"
                    );
                }
                ("rust", None) => assert!(
                    doctested.contains(&file),
                    "{at}: a Rust block outside the files lib.rs runs as doctests; name its source file"
                ),
                // Commands and output.
                ("sh" | "text" | "", None) => {}
                _ => panic!("{at}: say what this block is (see tests/docs.rs)"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} blocks found");
}
