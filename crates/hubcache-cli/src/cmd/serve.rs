//! `hubcache serve`: a Hub-compatible endpoint over the cache, for `HF_ENDPOINT` elsewhere.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hubcache::{HubBuilder, Settings};
use hubcache_mirror::{ConnectionLimits, Mirror, MirrorConfig, MirrorError};

use crate::{CmdResult, Hinted};

/// Arguments of `hubcache serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Cache folder to serve (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long, conflicts_with = "store")]
    cache_dir: Option<PathBuf>,
    /// Serve an S3-compatible object store instead of a cache folder: s3://BUCKET[/PREFIX].
    /// Endpoint, region and credentials come from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (AWS_ALLOW_HTTP=true for
    /// http://). Replicas over one store give identical answers; with --upstream they fill it.
    #[arg(long, env = "HUBCACHE_STORE")]
    store: Option<String>,
    /// Seconds a pull-through lease holds (--store): a replica that dies mid-fill blocks
    /// that file for other replicas at most this long.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    lease_secs: u64,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: String,
    /// Fetch misses from this Hub endpoint into the cache (pull-through); uses HF_TOKEN.
    #[arg(long)]
    upstream: Option<String>,
    /// Never contact the upstream, even if one is given.
    #[arg(long)]
    offline: bool,
    /// Require clients to send `Authorization: Bearer <token>` with a token from this file
    /// (one per line).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Seconds in-flight transfers may continue after Ctrl-C / SIGTERM.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// Print one line per request on stderr.
    #[arg(long)]
    log_requests: bool,
    /// Seconds a client has, from the first byte of a request, to send its head (and body);
    /// a client dripping a header byte at a time is closed after this.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a connection may wait for its next request (keep-alive) or, while receiving a
    /// file, read nothing, before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Open connections at most; at the cap new clients wait in the listen backlog
    /// [default: 1024, or half the open-file limit if lower].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
}

impl Hinted for MirrorError {
    fn hints(&self) -> Vec<String> {
        MirrorError::hints(self)
    }
}

/// Errors reading the token file.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the token file {path}: {reason}")]
struct TokenFileError {
    path: PathBuf,
    reason: String,
}

impl Hinted for TokenFileError {
    fn hints(&self) -> Vec<String> {
        vec!["the token file holds one client token per line; empty lines and # comments are ignored".into()]
    }
}

fn read_tokens(path: &PathBuf) -> Result<Vec<String>, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenFileError {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(TokenFileError {
            path: path.clone(),
            reason: "it holds no token".into(),
        });
    }
    Ok(tokens)
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(settings: &Settings, args: ServeArgs) -> CmdResult {
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| settings.cache_dir.clone());
    let upstream = match (&args.upstream, args.offline || settings.offline) {
        (Some(url), false) => Some(HubBuilder::from_settings(settings).endpoint(url.clone()).offline(false)),
        _ => None,
    };
    let client_tokens = match &args.token_file {
        Some(p) => Some(read_tokens(p)?),
        None => None,
    };
    let s3 = match &args.store {
        Some(url) => {
            let mut c = crate::cmd::store::config(url)?;
            c.lease_ttl = Duration::from_secs(args.lease_secs);
            Some(c)
        }
        None => None,
    };
    let config = MirrorConfig {
        cache_dir,
        upstream,
        client_tokens,
        drain: Duration::from_secs(args.drain_secs),
        log_requests: args.log_requests,
        ref_ttl: hubcache_mirror::REF_TTL,
        limits: ConnectionLimits {
            header_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_connections: match args.max_connections {
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                None => hubcache_mirror::default_max_connections(),
            },
        },
        s3,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| hubcache::Error::io("start the runtime for", PathBuf::from("serve"), e))?;
    runtime.block_on(async move {
        // The store is probed (layout marker, credentials) before anything listens.
        let mirror = Mirror::open(config).await?;
        let (listener, local) = hubcache_mirror::bind(&args.addr).await?;
        eprintln!(
            "serving {} ({})",
            mirror.describe_store(),
            match &args.upstream {
                Some(u) if !args.offline => format!("pull-through from {u}"),
                _ if args.store.is_some() => "offline: store only".to_string(),
                _ => "offline: cache only".to_string(),
            }
        );
        eprintln!("listening on http://{local}");
        mirror.serve(listener, shutdown_signal()).await
    })?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    eprintln!("shutting down: finishing in-flight transfers");
}
