//! `hf-hub-peer REPO_ID FILENAME`: a bench peer for `hubcache-bench`, nothing more.
//!
//! Downloads one file of a model repo at revision `main` with the `hf-hub` 1.0 crate
//! (`HFClientSync`) into the cache the environment names (`HF_ENDPOINT`, `HF_HUB_CACHE`,
//! `HF_HOME`) and prints its local path. It verifies nothing: hf-hub 1.0 checks no hash of
//! what it downloads. hf-hub takes the Xet path only when a resolve answers `X-Xet-Hash`,
//! which the fake Hub does not send by default, so this stays on plain HTTP.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo_id, filename] = args.as_slice() else {
        eprintln!("usage: hf-hub-peer REPO_ID FILENAME");
        return ExitCode::from(2);
    };
    let (owner, name) = hf_hub::split_id(repo_id);
    let result = hf_hub::HFClientSync::new().and_then(|client| {
        client
            .model(owner, name)
            .download_file()
            .filename(filename.as_str())
            .revision("main")
            .send()
    });
    match result {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
