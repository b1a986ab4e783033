//! Every `tests/c/NAME.c` is compiled strictly against `include/edgepipe.h` and the
//! static library, linked with exactly the documented native libraries, run, and
//! checked: exit code 0 and stdout equal to `tests/c/NAME.stdout` (or, in a build
//! with the `delivery` feature, `NAME.delivery.stdout` when there is one). Then it runs
//! again under valgrind, which must find no error and no leak.
//!
//! gcc and valgrind missing are failures that say what to install, never a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{CFLAGS, NATIVE_STATIC_LIBS, c_compiler, feature_cflags, static_library, text};

/// The list above is what rustc asks for on this toolchain. The standard library is
/// where it comes from (edgepipe's dependencies are pure Rust), so an empty staticlib
/// shows it in a second; a dependency that brought a native library of its own would
/// fail the link in the test below instead.
#[test]
fn native_static_libs_are_what_rustc_prints() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("native_static_libs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lib.rs"), "").unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .args([
            "--crate-type",
            "staticlib",
            "--crate-name",
            "probe",
            "--edition",
            "2024",
        ])
        .args(["--print", "native-static-libs", "-o"])
        .arg(dir.join("libprobe.a"))
        .arg(dir.join("lib.rs"))
        .output()
        .unwrap_or_else(|error| panic!("could not run {rustc}: {error}"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stderr) + &text(&output.stdout);
    let libs = printed
        .lines()
        .find_map(|line| line.split("native-static-libs: ").nth(1))
        .unwrap_or_else(|| panic!("rustc printed no native-static-libs:\n{printed}"));
    assert_eq!(
        libs.split_whitespace().collect::<Vec<_>>(),
        NATIVE_STATIC_LIBS,
        "update NATIVE_STATIC_LIBS, the crate docs and cbindgen.toml's header"
    );
}

#[test]
fn c_programs_build_run_and_pass_valgrind() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let library = static_library();
    let valgrind = valgrind();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_programs");
    std::fs::create_dir_all(&out_dir).unwrap();

    let mut sources: Vec<PathBuf> = std::fs::read_dir(crate_dir.join("tests/c"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "c"))
        .collect();
    sources.sort();
    assert!(
        sources.len() >= 2,
        "expected the C programs in tests/c, found {sources:?}"
    );

    let mut failures = Vec::new();
    for source in &sources {
        let name = source.file_stem().unwrap().to_str().unwrap();
        if let Err(failure) = check_program(crate_dir, &library, valgrind, &out_dir, source) {
            failures.push(format!("== {name}\n{failure}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check_program(
    crate_dir: &Path,
    library: &Path,
    valgrind: bool,
    out_dir: &Path,
    source: &Path,
) -> Result<(), String> {
    let name = source.file_stem().unwrap().to_str().unwrap();
    let program = out_dir.join(name);
    let compiler = c_compiler();
    let compile = Command::new(&compiler)
        .args(CFLAGS)
        .args(feature_cflags())
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(source)
        // The archive by path: with libedgepipe.so beside it, `-ledgepipe` would pick the .so.
        .arg(library)
        .args(NATIVE_STATIC_LIBS)
        .arg("-o")
        .arg(&program)
        .output()
        .map_err(|error| format!("could not run {compiler}: {error}"))?;
    if !compile.status.success() {
        return Err(format!("compiling failed:\n{}", text(&compile.stderr)));
    }

    // A build with the delivery worker may expect more: NAME.delivery.stdout.
    let with_delivery = source.with_extension("delivery.stdout");
    let expected_path = if cfg!(feature = "delivery") && with_delivery.is_file() {
        with_delivery
    } else {
        source.with_extension("stdout")
    };
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|error| format!("reading {}: {error}", expected_path.display()))?;
    // Each run gets a fresh scratch directory (queues, batch files) in EDGEPIPE_TEST_DIR.
    let work = out_dir.join(format!("{name}.work"));
    let mut plain = Command::new(&program);
    check_run(&expected, run_in(&work, &mut plain), "")?;
    after_run(name, &work)?;
    if valgrind {
        let mut memcheck = Command::new("valgrind");
        memcheck
            .args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect,possible",
                "--quiet",
            ])
            .arg(&program);
        check_run(&expected, run_in(&work, &mut memcheck), " under valgrind")?;
        after_run(name, &work)?;
    }
    Ok(())
}

fn run_in(work: &Path, command: &mut Command) -> std::io::Result<Output> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work)?;
    command.env("EDGEPIPE_TEST_DIR", work).output()
}

/// Checks made in Rust on what a C program left behind.
fn after_run(name: &str, work: &Path) -> Result<(), String> {
    match name {
        "records_and_batches" => batches_decode_in_rust(work),
        _ => Ok(()),
    }
}

/// Every batch the C program encoded (each codec × compression) decodes in Rust
/// to the records the C program built, field for field.
fn batches_decode_in_rust(work: &Path) -> Result<(), String> {
    use edgepipe_core::DataRecord;
    use edgepipe_core::batch::{Batch, DecodeLimits};

    let jsonl = std::fs::read_to_string(work.join("records.jsonl"))
        .map_err(|error| format!("records.jsonl: {error}"))?;
    let expected: Vec<DataRecord> = jsonl
        .lines()
        .map(|line| DataRecord::from_json(line).map_err(|error| error.to_string()))
        .collect::<Result<_, _>>()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(work)
        .map_err(|error| error.to_string())?
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "bin"))
        .collect();
    files.sort();
    let expected_files = 5 * 4 * 2;
    if files.len() != expected_files {
        return Err(format!(
            "expected {expected_files} batch files, found {files:?}"
        ));
    }
    for pair in files.chunks(2) {
        let mut decoded = Vec::new();
        for path in pair {
            let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
            let batch = Batch::from_bytes(&bytes, &DecodeLimits::default())
                .and_then(|batch| batch.decode(&DecodeLimits::default()))
                .map_err(|error| format!("{}: {error}", path.display()))?;
            decoded.extend(batch);
        }
        if decoded != expected {
            return Err(format!(
                "{pair:?} decode in Rust to\n{decoded:#?}\ninstead of\n{expected:#?}"
            ));
        }
    }
    Ok(())
}

fn check_run(expected: &str, run: std::io::Result<Output>, how: &str) -> Result<(), String> {
    let run = run.map_err(|error| format!("could not run{how}: {error}"))?;
    let stdout = text(&run.stdout);
    if run.status.code() != Some(0) || stdout != expected {
        return Err(format!(
            "ran{how} with {}\n--- expected stdout\n{expected}--- stdout\n{stdout}--- stderr\n{}",
            run.status,
            text(&run.stderr)
        ));
    }
    Ok(())
}

fn valgrind() -> bool {
    common::require(
        "valgrind",
        "--version",
        "valgrind (apt-get install valgrind)",
    );
    true
}
