//! `hf-hub-consumer REPO`: loads REPO's tokenizer with `Tokenizer::from_pretrained` (tokenizers'
//! own hf-hub code), then fetches `config.json` the way candle (hf-hub 0.5, sync) and TEI
//! (hf-hub 0.4, tokio) do. Everything comes from `HF_ENDPOINT`, into the cache of the
//! environment; with `HF_HUB_OFFLINE=1` it must all come from that cache.

use std::process::ExitCode;

fn run(repo: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tokenizer = tokenizers::Tokenizer::from_pretrained(repo, None)?;
    let encoding = tokenizer.encode("Hello, world!", true)?;
    let tokens = encoding.get_tokens();
    println!(
        "tokenizers: {} tokens, first {:?}",
        tokens.len(),
        &tokens[..tokens.len().min(6)]
    );

    // candle (hf-hub 0.5): `Api::new()`, `Repo::with_revision`, `.get(file)`.
    let api = hf_hub_05::api::sync::Api::new()?;
    let model = api.repo(hf_hub_05::Repo::with_revision(
        repo.to_string(),
        hf_hub_05::RepoType::Model,
        "main".to_string(),
    ));
    let config = model.get("config.json")?;
    println!("hf-hub 0.5 sync: {}", config.display());

    // TEI (hf-hub 0.4, tokio): `ApiBuilder::from_env()`, `with_progress`, `get`.
    let runtime = tokio::runtime::Runtime::new()?;
    let path = runtime.block_on(async {
        let api = hf_hub::api::tokio::ApiBuilder::from_env()
            .with_progress(false)
            .with_user_agent("origin", "consumer")
            .build()?;
        api.model(repo.to_string()).get("config.json").await
    })?;
    println!("hf-hub 0.4 tokio: {}", path.display());
    if path != config {
        return Err(format!("the two APIs disagree: {} vs {}", path.display(), config.display()).into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(repo) = std::env::args().nth(1) else {
        eprintln!("usage: hf-hub-consumer REPO");
        return ExitCode::from(2);
    };
    match run(&repo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
