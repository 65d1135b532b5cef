//! Embeds the widget bundle (widget/dist, built by `make widget` = `npm ci && node build.mjs`)
//! and refuses to build with a missing or stale one: the bundle's manifest must carry the hash
//! of the current sources (the same hash build.mjs computes).

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files(&path, root, out);
        } else {
            let rel = path.strip_prefix(root).expect("under the widget folder");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn main() {
    let widget = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("widget");
    for watched in ["src", "build.mjs", "package-lock.json", "dist"] {
        println!("cargo:rerun-if-changed={}", widget.join(watched).display());
    }
    let mut names = Vec::new();
    files(&widget.join("src"), &widget, &mut names);
    names.push("build.mjs".into());
    names.push("package-lock.json".into());
    names.sort();
    let mut hash = Sha256::new();
    for name in &names {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(fs::read(widget.join(name)).expect("reading a widget source"));
        hash.update([0]);
    }
    let want: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();

    let manifest = fs::read_to_string(widget.join("dist/manifest.json")).unwrap_or_default();
    let stamped = manifest.contains(&format!("\"sourceHash\": \"{want}\""));
    for file in ["loader.js", "app.js"] {
        if !stamped || !widget.join("dist").join(file).is_file() {
            panic!(
                "\n\nthe widget bundle in {} is missing, stale or over budget: run `make widget` \
                 (npm ci && node build.mjs in functions/serve-widget/widget) before cargo\n\n",
                widget.join("dist").display()
            );
        }
    }
    // The app's URL carries this version: the bundle can be cached for a year.
    println!("cargo:rustc-env=WIDGET_VERSION={}", &want[..16]);
}
