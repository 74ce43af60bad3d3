//! The bundled example (`examples/multiarch`) is made by the test image generator, and the README's
//! first command works on it offline.
//!
//! Regenerate after changing the generator: `MIRROR_UPDATE_EXAMPLES=1 cargo test --test it examples::`.

use std::path::{Path, PathBuf};

use crate::support::{self, ImageSpec, generate, mirror, run_code, skopeo};

fn example_spec() -> ImageSpec {
    ImageSpec {
        platforms: vec![
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/ppc64le",
            "linux/s390x",
            "linux/riscv64",
        ],
        layers_per_platform: 1,
        layer_size: 16 * 1024,
        base_size: 48 * 1024,
        seed: 2026,
        ..ImageSpec::default()
    }
}

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/multiarch")
}

#[test]
fn examples_multiarch_is_what_the_generator_makes() {
    let img = generate(&example_spec());
    let tmp = tempfile::tempdir().unwrap();
    img.write_layout(tmp.path(), "latest");
    if std::env::var_os("MIRROR_UPDATE_EXAMPLES").is_some() {
        let _ = std::fs::remove_dir_all(committed());
        img.write_layout(&committed(), "latest");
    }
    assert_eq!(
        support::tree_hash(tmp.path()),
        support::tree_hash(&committed()),
        "examples/multiarch differs from what the generator makes: run MIRROR_UPDATE_EXAMPLES=1 cargo test --test it examples::"
    );
    let size: u64 = support::list_files(&committed())
        .iter()
        .map(|f| std::fs::metadata(committed().join(f)).unwrap().len())
        .sum();
    assert!(
        size < 1024 * 1024,
        "the example must stay under 1 MiB, it is {size} bytes"
    );
}

#[test]
fn readme_first_command_copies_two_platforms_offline() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = "cargo run --release -- copy --platform linux/amd64,linux/arm64 oci:examples/multiarch:latest oci:/tmp/mirror-demo:latest";
    assert!(readme.contains(line), "the README shows the first command");
    let img = generate(&example_spec());
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:latest", tmp.path().join("demo").display());
    let out = run_code(
        mirror().current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "copy",
            "--platform",
            "linux/amd64,linux/arm64",
            "oci:examples/multiarch:latest",
            &dest,
        ]),
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pushed sparse, digest kept"), "{text}");
    assert_eq!(skopeo::inspect_raw(&dest, false), img.index);
}
