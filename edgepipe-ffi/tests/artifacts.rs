//! The C library's artifacts besides the code: the header compiles on its own as C
//! and C++, the pkg-config file gives a working static link line, and no global
//! constructor of edgepipe's runs before `main`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{CFLAGS, NATIVE_STATIC_LIBS, c_compiler, require, static_library, text};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_ok(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// The header alone, with nothing included before it, as strict C11 and as C++17,
/// with and without the delivery worker's declarations.
#[test]
fn header_compiles_on_its_own_as_c_and_cpp() {
    let compiler = c_compiler();
    require("g++", "--version", "g++ (apt-get install g++)");
    let header = crate_dir().join("include/edgepipe.h");
    for defines in [&[][..], &["-DEDGEPIPE_DELIVERY"][..]] {
        run_ok(
            Command::new(&compiler)
                .args(CFLAGS)
                .args(defines)
                .args(["-fsyntax-only", "-x", "c"])
                .arg(&header),
            "gcc -std=c11 on edgepipe.h",
        );
        run_ok(
            Command::new("g++")
                .args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
                .args(defines)
                .args(["-fsyntax-only", "-x", "c++"])
                .arg(&header),
            "g++ -std=c++17 on edgepipe.h",
        );
    }
}

/// `Libs.private` of the pkg-config template is the documented native-libs list.
#[test]
fn pkg_config_template_lists_the_native_libs() {
    let template = std::fs::read_to_string(crate_dir().join("edgepipe.pc.in")).unwrap();
    let private = template
        .lines()
        .find_map(|line| line.strip_prefix("Libs.private:"))
        .expect("edgepipe.pc.in has Libs.private");
    assert_eq!(
        private.split_whitespace().collect::<Vec<_>>(),
        NATIVE_STATIC_LIBS
    );
}

/// An install prefix as `scripts/ffi-install` lays it out (header, static library,
/// `lib/pkgconfig/edgepipe.pc`); `pkg-config --cflags --libs --static edgepipe`
/// is all a program needs to compile, link statically against edgepipe and run.
#[test]
fn pkg_config_static_link_line_builds_a_program() {
    let compiler = c_compiler();
    require(
        "pkg-config",
        "--version",
        "pkg-config (apt-get install pkg-config)",
    );
    let prefix = scratch("pkg_config_prefix");
    std::fs::create_dir_all(prefix.join("include")).unwrap();
    std::fs::create_dir_all(prefix.join("lib/pkgconfig")).unwrap();
    std::fs::copy(
        crate_dir().join("include/edgepipe.h"),
        prefix.join("include/edgepipe.h"),
    )
    .unwrap();
    std::fs::copy(static_library(), prefix.join("lib/libedgepipe.a")).unwrap();
    let template = std::fs::read_to_string(crate_dir().join("edgepipe.pc.in")).unwrap();
    let cflags = if cfg!(feature = "delivery") {
        " -DEDGEPIPE_DELIVERY"
    } else {
        ""
    };
    let pc = template
        .replace("@PREFIX@", prefix.to_str().unwrap())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@CFLAGS@", cflags);
    assert!(
        !pc.contains('@'),
        "a field of edgepipe.pc.in was not filled:\n{pc}"
    );
    std::fs::write(prefix.join("lib/pkgconfig/edgepipe.pc"), pc).unwrap();

    let pkg_config = |args: &[&str]| {
        run_ok(
            Command::new("pkg-config")
                .args(args)
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
            "pkg-config",
        )
    };
    assert_eq!(
        pkg_config(&["--modversion", "edgepipe"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let line = pkg_config(&["--cflags", "--libs", "--static", "edgepipe"]);
    for lib in NATIVE_STATIC_LIBS {
        assert!(
            line.split_whitespace().any(|word| word == *lib),
            "{lib} missing from {line}"
        );
    }

    let source = prefix.join("app.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <string.h>\n#include \"edgepipe.h\"\n\
         int main(void) {\n\
             edgepipe_record *record = NULL;\n\
             if (edgepipe_record_new(\"d\", 1, \"t\", 1, &record) != EDGEPIPE_STATUS_OK) return 1;\n\
             edgepipe_record_free(record);\n\
             printf(\"%s\\n\", edgepipe_version());\n\
             return strcmp(edgepipe_version(), EDGEPIPE_VERSION) != 0;\n\
         }\n",
    )
    .unwrap();
    let program = prefix.join("app");
    run_ok(
        Command::new(&compiler)
            .args(CFLAGS)
            .arg(&source)
            .arg("-o")
            .arg(&program)
            .args(line.split_whitespace()),
        &format!("linking with `{}`", line.trim()),
    );
    let version = run_ok(&mut Command::new(&program), "the linked program");
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
}

/// Nothing of edgepipe's runs before `main` (firmware often has no C runtime
/// start-up that would run it): the only object of the static library with an
/// `.init_array` section is the standard library's (it records argc/argv).
/// `scripts/ffi-size` checks the same in the firmware profile's LTO build.
#[test]
fn no_global_constructors_but_the_standard_librarys() {
    require(
        "objdump",
        "--version",
        "binutils (apt-get install binutils)",
    );
    let headers = run_ok(
        Command::new("objdump").arg("-h").arg(static_library()),
        "objdump -h libedgepipe.a",
    );
    let mut member = "";
    let mut with_constructors = Vec::new();
    for line in headers.lines() {
        if let Some((name, _)) = line.split_once(":     file format") {
            member = name;
        } else if line.contains(".init_array") || line.contains(".ctors") {
            with_constructors.push(member.to_owned());
        }
    }
    let foreign: Vec<&String> = with_constructors
        .iter()
        .filter(|member| !member.starts_with("std-"))
        .collect();
    assert!(
        foreign.is_empty(),
        "objects with global constructors besides the standard library's: {foreign:?}"
    );
}

/// The default C library (no `delivery`) pulls in no async runtime, no HTTP or
/// MQTT client and no TLS stack: firmware owns its network.
#[test]
fn default_library_has_no_runtime_network_or_tls_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let tree = run_ok(
        Command::new(&cargo)
            .current_dir(crate_dir())
            .args([
                "tree",
                "-p",
                "edgepipe-ffi",
                "-e",
                "normal",
                "--prefix",
                "none",
            ])
            .args(["--format", "{p}", "--offline", "--locked"]),
        "cargo tree -p edgepipe-ffi -e normal",
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"edgepipe-core"), "{tree}");
    for forbidden in [
        "tokio",
        "hyper",
        "ureq",
        "rumqttc",
        "rustls",
        "ring",
        "aws-lc-rs",
        "openssl",
    ] {
        assert!(
            !crates.contains(&forbidden),
            "the default edgepipe-ffi depends on {forbidden}:\n{tree}"
        );
    }
}

/// The shared library of this build exports the same C API: a program linked
/// against `libedgepipe.so` alone (no native-libs list needed) runs.
#[test]
fn shared_library_links_and_runs() {
    let compiler = c_compiler();
    let library = static_library().with_file_name("libedgepipe.so");
    assert!(library.is_file(), "{} is missing", library.display());
    let dir = scratch("shared_library");
    let source = dir.join("app.c");
    std::fs::write(
        &source,
        "#include <string.h>\n#include \"edgepipe.h\"\n\
         int main(void) {\n\
             edgepipe_batcher *batcher = NULL;\n\
             if (edgepipe_batcher_new(\"s\", 1, NULL, &batcher) != EDGEPIPE_STATUS_OK) return 1;\n\
             edgepipe_batcher_free(batcher);\n\
             return strcmp(edgepipe_version(), EDGEPIPE_VERSION) != 0;\n\
         }\n",
    )
    .unwrap();
    let program = dir.join("app");
    run_ok(
        Command::new(&compiler)
            .args(CFLAGS)
            .arg("-I")
            .arg(crate_dir().join("include"))
            .arg(&source)
            .arg(&library)
            .arg("-o")
            .arg(&program),
        "linking against libedgepipe.so",
    );
    run_ok(
        Command::new(&program).env("LD_LIBRARY_PATH", library.parent().unwrap()),
        "the program linked against libedgepipe.so",
    );
}
