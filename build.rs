//! Embeds every file under `www/` into the binary, so a copied `wschat` serves its page with
//! no files beside it. Writes `$OUT_DIR/www_files.rs`: a sorted table of (path, bytes).

use std::path::{Path, PathBuf};
use std::{env, fs};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // editor and OS droppings are not part of the page
        }
        if path.is_dir() {
            collect(&path, root, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>();
            out.push((rel.join("/"), path.canonicalize().unwrap()));
        }
    }
}

fn main() {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("www");
    println!("cargo:rerun-if-changed=www");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    let mut code = String::from("/// Files embedded from `www/`, sorted by path.\n");
    code.push_str("pub(crate) static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("www_files.rs"),
        code,
    )
    .unwrap();
}
