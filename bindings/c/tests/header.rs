//! The checked-in header is what cbindgen makes of the code now: a change to the C ABI that
//! forgets the header fails here (`UPDATE_HEADER=1` writes it again).

#[test]
fn the_checked_in_header_is_the_generated_one() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml"))
        .unwrap_or_else(|err| panic!("cbindgen.toml: {err}"));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|err| panic!("cbindgen: {err}"))
        .write(&mut generated);
    let path = format!("{dir}/include/switchyard.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{path} is stale: write it again with `UPDATE_HEADER=1 cargo test -p switchyard-ffi --test header`"
    );
}
