//! `hubcache env`: the resolved settings, proxies' credentials hidden.

use std::process::ExitCode;

use hubcache::Settings;

use crate::CmdResult;

/// Runs `hubcache env`.
pub fn run(settings: &Settings) -> CmdResult {
    print_env(settings);
    Ok(ExitCode::SUCCESS)
}

fn redact_proxy(p: &Option<String>) -> String {
    match p {
        None => "-".into(),
        Some(raw) => match raw.split_once('@') {
            Some((creds, host)) => {
                let scheme = creds
                    .split_once("://")
                    .map(|(s, _)| format!("{s}://"))
                    .unwrap_or_default();
                format!("{scheme}<credentials>@{host}")
            }
            None => raw.clone(),
        },
    }
}

fn print_env(s: &Settings) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("hubcache version:   {}", env!("CARGO_PKG_VERSION"));
    println!("HF_HOME:            {}", s.hf_home.display());
    println!("hub cache:          {}", s.cache_dir.display());
    println!("endpoint:           {}", s.endpoint);
    println!("offline:            {}", yes_no(s.offline));
    println!("token:              {}", s.token_source);
    println!("token file:         {}", s.token_path.display());
    println!("implicit token off: {}", yes_no(s.disable_implicit_token));
    println!("etag timeout:       {}s", s.etag_timeout.as_secs());
    println!("download timeout:   {}s", s.download_timeout.as_secs());
    println!("symlinks disabled:  {}", yes_no(s.disable_symlinks));
    println!("shared blobs off:   {}", yes_no(s.disable_shared_blobs));
    println!(
        "connections/file:   {}",
        s.max_connections
            .unwrap_or(hubcache::hub::transfer::DEFAULT_MAX_CONNECTIONS)
    );
    println!(
        "connection budget:  {}",
        s.connection_budget.unwrap_or(hubcache::hub::DEFAULT_CONNECTION_BUDGET)
    );
    println!("verbose:            {}", yes_no(s.verbose));
    let bars = match s.disable_progress_bars {
        None => "auto (terminal only)",
        Some(true) => "off",
        Some(false) => "on",
    };
    println!("progress bars:      {bars}");
    println!("http proxy:         {}", redact_proxy(&s.proxies.http));
    println!("https proxy:        {}", redact_proxy(&s.proxies.https));
    println!("all proxy:          {}", redact_proxy(&s.proxies.all));
    println!("no proxy:           {}", s.proxies.no_proxy.as_deref().unwrap_or("-"));
    print_store();
}

/// The S3 store `serve`/`push`/`import` would use (HUBCACHE_STORE and AWS_*), no secret.
fn print_store() {
    let url = std::env::var("HUBCACHE_STORE").ok().filter(|u| !u.is_empty());
    println!(
        "store:              {}",
        url.as_deref().unwrap_or("- (set HUBCACHE_STORE or pass --store)")
    );
    // Without a store URL, show what the AWS_* variables resolve to for any bucket.
    let shown = url.clone().unwrap_or_else(|| "s3://-".into());
    match crate::cmd::store::config(&shown) {
        Ok(c) => {
            for (name, value) in c.describe() {
                if url.is_none() && matches!(name, "bucket" | "prefix") {
                    continue;
                }
                println!("  s3 {:<15} {value}", format!("{name}:"));
            }
        }
        Err(e) => println!("  s3:               {e}"),
    }
}
