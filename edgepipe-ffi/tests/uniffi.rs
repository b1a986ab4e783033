//! The uniffi surface (feature `uniffi-cli`): generate the Python, Kotlin and Swift
//! bindings from the built library with the crate's own `uniffi-bindgen`, then run
//! every exported call through the generated Python (`tests/uniffi/smoke.py`),
//! delivering to an ingest server started here, and read back what it stored.
//! Kotlin and Swift compilers are not on this machine: their sources must generate.

#![cfg(feature = "uniffi-cli")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use edgepipe_core::ingest::server::{self, ServerConfig};
use edgepipe_core::ingest::{DataLakeStore, Receiver, ReceiverConfig};

const API_KEY: &str = "uniffi-smoke-key";

fn shared_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let library = exe.parent().unwrap().join("libedgepipe.so");
    assert!(
        library.is_file(),
        "{} is missing: cargo should have built the cdylib crate type beside this test",
        library.display()
    );
    library
}

fn generate(library: &Path, language: &str, out_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(library)
        .args(["--language", language, "--no-format", "--out-dir"])
        .arg(out_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running uniffi-bindgen");
    assert!(
        output.status.success(),
        "uniffi-bindgen {language} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn kotlin_and_swift_sources_generate() {
    let library = shared_library();
    let out = tempfile::tempdir().unwrap();
    generate(&library, "kotlin", &out.path().join("kotlin"));
    generate(&library, "swift", &out.path().join("swift"));

    let kotlin = out.path().join("kotlin/dev/edgepipe/edgepipe.kt");
    let kotlin = std::fs::read_to_string(&kotlin).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; generated {:?}",
            kotlin.display(),
            files_under(out.path())
        )
    });
    assert!(
        kotlin.contains("package dev.edgepipe"),
        "uniffi.toml's package name was not used"
    );
    for name in [
        "class Pipeline",
        "class Queue",
        "class Delivery",
        "fun `encodeBatch`",
        "data class Reading",
    ] {
        assert!(kotlin.contains(name), "the Kotlin binding lacks {name}");
    }
    let swift = std::fs::read_to_string(out.path().join("swift/Edgepipe.swift")).unwrap();
    for name in [
        "class Pipeline",
        "class Queue",
        "class Delivery",
        "func encodeBatch",
        "struct Reading",
    ] {
        assert!(swift.contains(name), "the Swift binding lacks {name}");
    }
    assert!(out.path().join("swift/EdgepipeFFI.h").is_file());
    assert!(out.path().join("swift/EdgepipeFFI.modulemap").is_file());
}

#[test]
fn generated_python_binding_passes_the_smoke_test() {
    let library = shared_library();
    let work = tempfile::tempdir().unwrap();
    let binding = work.path().join("binding");
    generate(&library, "python", &binding);
    // The generated module loads the library from its own directory.
    std::fs::copy(&library, binding.join("libedgepipe.so")).unwrap();

    let cloud = work.path().join("cloud");
    let receiver = Arc::new(Receiver::open(ReceiverConfig::new([API_KEY]), &cloud).unwrap());
    let server =
        server::start(receiver, ServerConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let endpoint = format!("http://{}", server.local_addr());

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uniffi/smoke.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&binding)
        .arg(&endpoint)
        .arg(API_KEY)
        .arg(work.path().join("queue"))
        .output()
        .unwrap_or_else(|error| panic!("could not run {python} (install Python 3): {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the smoke test failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "records ok",
        "pipeline ok",
        "batches ok",
        "queue ok",
        "delivery ok",
    ] {
        assert!(stdout.contains(check), "no {check:?} in:\n{stdout}");
    }
    server.shutdown().unwrap();

    // The five batches the worker delivered: records r-1 to r-5, labelled by the pipeline.
    let mut stored = DataLakeStore::read_all(&cloud.join("lake")).unwrap();
    stored.sort_by(|a, b| a.record_id.cmp(&b.record_id));
    let ids: Vec<&str> = stored
        .iter()
        .map(|record| record.record_id.as_str())
        .collect();
    assert_eq!(ids, ["r-1", "r-2", "r-3", "r-4", "r-5"]);
    assert!(
        stored
            .iter()
            .all(|record| record.metadata.get("region").map(|v| v.as_str()) == Some("us-west"))
    );
}
