//! `fake-hub`: runs the fake Hugging Face Hub as a standalone process.
//!
//! Usage: `fake-hub [--addr 127.0.0.1:PORT] [--log] [--fault NAME]... [--repo ORG/NAME=DIR]... [--dataset ORG/NAME=DIR]... [--space ORG/NAME=DIR]...`
//!
//! Commits each folder to branch `main`, then prints `listening on http://127.0.0.1:PORT` and one
//! `ORG/NAME <commit>` line per repo to stdout, and serves until killed. With `--log`, every
//! answered request is printed to stderr (`fake-hub: #N hub GET /path 200`), so request counts of
//! a real client can be read off. `--fault NAME` makes the hub misbehave on every matching
//! request (see [`fault_rule`] for the names), to try a client against a hostile server.
//! `--cdn-rate BYTES_PER_S`, `--bimodal SEED` and `--latency-ms MS` shape the network as
//! `hubcache-bench --wan` does (a cap per CDN connection, CloudFront-like edges, a delay per
//! request), to watch a client by hand (`hubcache download --verbose`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use hubcache_test_support::{Bimodal, FakeHub, Fault, FaultRule, Origin, RepoKind, Wan};

const USAGE: &str = "usage: fake-hub [--addr 127.0.0.1:PORT] [--log] [--fault NAME]... [--cdn-rate BYTES_PER_S] [--bimodal SEED] [--latency-ms MS] [--repo ORG/NAME=DIR]... [--dataset ORG/NAME=DIR]... [--space ORG/NAME=DIR]...";

struct Args {
    addr: SocketAddr,
    log: bool,
    faults: Vec<FaultRule>,
    repos: Vec<(RepoKind, String, PathBuf)>,
    wan: Wan,
}

/// The rule a `--fault` name stands for; it applies to every matching request.
fn fault_rule(name: &str) -> Option<FaultRule> {
    const ALWAYS: usize = usize::MAX;
    let lfs = |fault| FaultRule::new("/lfs/", fault).on_method("GET").repeat(ALWAYS);
    let tree = |fault| FaultRule::new("/tree/", fault).on_method("GET").repeat(ALWAYS);
    let to = |location: &str| {
        lfs(Fault::RedirectTo {
            location: location.to_owned(),
        })
    };
    Some(match name {
        "redirect-loop" => lfs(Fault::RedirectLoop),
        "redirect-chain" => lfs(Fault::RedirectChain { hops: 50 }),
        "redirect-file" => to("file:///etc/passwd"),
        "redirect-ftp" => to("ftp://127.0.0.1/x"),
        "redirect-metadata" => to("http://169.254.169.254/latest/meta-data/"),
        "many-headers" => lfs(Fault::ManyHeaders { count: 10_000 }),
        "content-length" => lfs(Fault::ContentLength {
            announce: 1_000_000_000_000_000,
        }),
        "short-ignoring-range" => lfs(Fault::ShortIgnoringRange {
            announce: None,
            after: 27,
        }),
        "petabyte-ignoring-range" => lfs(Fault::ShortIgnoringRange {
            announce: Some(1_000_000_000_000_000),
            after: 27,
        }),
        "drip-transfer" => lfs(Fault::Drip { millis: 1000 }),
        "drip-listing" => tree(Fault::Drip { millis: 1000 }),
        "self-link" => tree(Fault::SelfLink),
        // About 200 MB of JSON.
        "huge-listing" => tree(Fault::HugeListing { entries: 4_500_000 }),
        // Just under the body cap (about 60 MB), more entries than the listing cap.
        "many-entries" => tree(Fault::HugeListing { entries: 1_300_000 }),
        _ => return None,
    })
}

/// The value `v` of `flag` parsed as a `T`, or an error naming both.
fn parse_as<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("bad {flag} {v}: {e}"))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log: false,
        faults: Vec::new(),
        repos: Vec::new(),
        wan: Wan::default(),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => parsed.addr = parse_as(&flag, &value()?)?,
            "--repo" | "--model" | "--dataset" | "--space" => {
                let kind = match flag.as_str() {
                    "--dataset" => RepoKind::Dataset,
                    "--space" => RepoKind::Space,
                    _ => RepoKind::Model,
                };
                let v = value()?;
                let (id, dir) = v
                    .split_once('=')
                    .ok_or_else(|| format!("{flag} expects ORG/NAME=DIR, got {v}"))?;
                if id.is_empty() || dir.is_empty() {
                    return Err(format!("{flag} expects ORG/NAME=DIR, got {v}"));
                }
                parsed.repos.push((kind, id.to_owned(), PathBuf::from(dir)));
            }
            "--log" => parsed.log = true,
            "--fault" => {
                let v = value()?;
                parsed
                    .faults
                    .push(fault_rule(&v).ok_or_else(|| format!("unknown fault {v}"))?);
            }
            "--cdn-rate" => parsed.wan.cdn_rate = Some(parse_as(&flag, &value()?)?),
            "--bimodal" => parsed.wan.bimodal = Some(Bimodal::cloudfront(parse_as(&flag, &value()?)?)),
            "--latency-ms" => parsed.wan.latency = std::time::Duration::from_millis(parse_as(&flag, &value()?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fake-hub: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let hub = match FakeHub::start_on(args.addr) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("fake-hub: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    for rule in args.faults {
        hub.inject(rule);
    }
    hub.set_wan(args.wan);
    let mut lines = Vec::new();
    for (kind, id, dir) in &args.repos {
        match hub.commit_folder(*kind, id, "main", dir) {
            Ok(commit) => lines.push(format!("{id} {commit}")),
            Err(e) => {
                eprintln!("fake-hub: cannot commit {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "listening on {}", hub.url())
        .and_then(|()| lines.iter().try_for_each(|l| writeln!(out, "{l}")))
        .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("fake-hub: cannot write to stdout: {e}");
    }
    eprintln!("fake-hub: cdn origin {}", hub.cdn_url());
    if !args.log {
        loop {
            std::thread::park();
        }
    }
    let mut printed = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let log = hub.requests();
        // Print in arrival order, up to the first request still being answered.
        for r in log.iter().skip(printed).take_while(|r| r.status != 0) {
            printed += 1;
            let origin = match r.origin {
                Origin::Hub => "hub",
                Origin::Cdn => "cdn",
            };
            eprintln!("fake-hub: #{printed} {origin} {} {} {}", r.method, r.path, r.status);
        }
    }
}
