//! chatpad-extract: the extraction child on its own, for tests and for reading a file by hand.
//!
//! Started with `CHATPAD_EXTRACT_CHILD=1` it is the sandboxed reader (see
//! `chatpad::knowledge::extract::sandbox`); started as `chatpad-extract FILE [KIND]` it reads
//! `FILE` through the sandbox (with itself as the child) and prints the parts as Markdown.

use std::process::ExitCode;

use chatpad::knowledge::extract::{FileKind, Limits, sandbox};

fn main() -> ExitCode {
    sandbox::run_child_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: chatpad-extract FILE [pdf|docx|csv|txt|markdown|html]");
        return ExitCode::from(2);
    };
    let kind = match args.get(1) {
        Some(kind) => kind.parse::<FileKind>().ok(),
        None => FileKind::from_file_name(path),
    };
    let Some(kind) = kind else {
        eprintln!("chatpad-extract: name the kind of {path}");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("chatpad-extract: reading {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = sandbox::Sandbox::this_binary(Limits::default())
        .and_then(|sandbox| sandbox.extract(&bytes, kind));
    match result {
        Ok(extracted) => {
            println!("title: {}", extracted.title.as_deref().unwrap_or("(none)"));
            for part in extracted.parts {
                println!(
                    "\n--- {}",
                    serde_json::to_string(&part.location).unwrap_or_default()
                );
                println!("{}", part.markdown);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chatpad-extract: {e}");
            ExitCode::FAILURE
        }
    }
}
