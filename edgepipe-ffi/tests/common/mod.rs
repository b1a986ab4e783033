//! What the C-facing tests share: the link line, the compiler flags, the library
//! under test, and outside programs that must be there.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::Command;

/// What `cargo rustc -p edgepipe-ffi --lib --crate-type staticlib -- --print
/// native-static-libs` prints; documented in the header, the crate docs,
/// `edgepipe.pc.in` and `docs/c.md`. Linking with exactly this list is the test
/// that it is enough.
pub const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

pub const CFLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// `-DEDGEPIPE_DELIVERY` when this build has the delivery worker, as pkg-config's
/// Cflags say for such a library.
pub fn feature_cflags() -> &'static [&'static str] {
    if cfg!(feature = "delivery") {
        &["-DEDGEPIPE_DELIVERY"]
    } else {
        &[]
    }
}

/// The `libedgepipe.a` of this very build.
///
/// Cargo compiles the library once with all its crate types (`staticlib`, `cdylib`,
/// `rlib`) as the dependency of this test, and leaves the archive beside the test
/// binary in `target/<profile>/deps/`; only `cargo build` copies it up to
/// `target/<profile>/`, where it may be stale. So the one next to us is current.
pub fn static_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let library = deps.join("libedgepipe.a");
    assert!(
        library.is_file(),
        "{} is missing: cargo should have built the staticlib crate type beside this test",
        library.display()
    );
    library
}

/// The C compiler (`$CC`, default gcc), failing the test with what to install
/// when it is missing.
pub fn c_compiler() -> String {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "gcc".to_owned());
    require(&compiler, "--version", "gcc (apt-get install gcc)");
    compiler
}

/// Fails the test, naming the package, unless `program argument` can be run
/// (whatever it exits with: some tools' `--help` exits non-zero).
pub fn require(program: &str, argument: &str, install: &str) {
    let found = Command::new(program).arg(argument).output().is_ok();
    assert!(found, "{program} is needed by this test: install {install}");
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
