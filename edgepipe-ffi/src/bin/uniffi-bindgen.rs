//! uniffi's binding generator, built from the same uniffi version as the library:
//! `uniffi-bindgen generate --library target/release/libedgepipe.so --language kotlin --out-dir DIR`
//! (also `swift` and `python`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
