//! The committed `include/edgepipe.h` is exactly what cbindgen makes of the source.
//!
//! Run with `EDGEPIPE_BLESS=1` to rewrite the header instead of failing.

use std::path::Path;

#[test]
fn committed_header_matches_the_source() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = generate(crate_dir);
    let path = crate_dir.join("include/edgepipe.h");

    if blessing() {
        std::fs::write(&path, &generated).expect("writing include/edgepipe.h");
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (old, new))| old != new)
            .map(|(index, (old, new))| {
                format!(
                    "line {}:\n  committed: {old}\n  generated: {new}",
                    index + 1
                )
            })
            .unwrap_or_else(|| "one is a prefix of the other".to_owned());
        panic!(
            "{} is out of date with the source ({first_difference}).\n\
             Regenerate it with: EDGEPIPE_BLESS=1 cargo test -p edgepipe-ffi --test header",
            path.display()
        );
    }
}

#[test]
fn committed_version_macros_match_cargo_toml() {
    // Implied by the test above, but this failure names the cause.
    if blessing() {
        return; // the header is being rewritten by the test above
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/edgepipe.h");
    let header = std::fs::read_to_string(path).expect("reading include/edgepipe.h");
    for (name, value) in [
        (
            "EDGEPIPE_VERSION",
            concat!("\"", env!("CARGO_PKG_VERSION"), "\""),
        ),
        ("EDGEPIPE_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("EDGEPIPE_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("EDGEPIPE_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {value}\n");
        assert!(
            header.contains(&line),
            "include/edgepipe.h lacks `{}`; regenerate it with \
             EDGEPIPE_BLESS=1 cargo test -p edgepipe-ffi --test header",
            line.trim_end()
        );
    }
}

fn blessing() -> bool {
    std::env::var_os("EDGEPIPE_BLESS").is_some_and(|value| value == "1")
}

/// The header as cbindgen writes it from `src/` and `cbindgen.toml`, plus the
/// version macros, which come from Cargo.toml so a version bump cannot miss them.
fn generate(crate_dir: &Path) -> String {
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("reading cbindgen.toml");
    config.after_includes = Some(format!(
        "\n#define EDGEPIPE_VERSION \"{}\"\n\
         #define EDGEPIPE_VERSION_MAJOR {}\n\
         #define EDGEPIPE_VERSION_MINOR {}\n\
         #define EDGEPIPE_VERSION_PATCH {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not read the crate");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}
