use hubcache::Token;

use crate::common::{config, file_request, http, seed_cache, TestMirror};

#[test]
fn token_file_tokens_gate_every_route() {
    let cache = tempfile::tempdir().unwrap();
    seed_cache(cache.path(), "org/model", &[("config.json", b"{}")], false);
    let mut c = config(cache.path());
    c.client_tokens = Some(vec!["hf_team_a".into(), "hf_team_b".into()]);
    let m = TestMirror::start(c);
    for path in [
        "/org/model/resolve/main/config.json",
        "/api/models/org/model",
        "/api/models/org/model/tree/main",
    ] {
        let none = http(&m.addr, "GET", path, &[], b"");
        assert_eq!(
            (none.status, none.header("x-error-code")),
            (401, "RepoNotFound"),
            "{path}"
        );
        assert_eq!(
            http(&m.addr, "GET", path, &[("Authorization", "Bearer wrong")], b"").status,
            401
        );
        assert_eq!(
            http(&m.addr, "GET", path, &[("Authorization", "Bearer hf_team_b")], b"").status,
            200,
            "{path}"
        );
    }
    // The hubcache client with and without a token.
    let dest = tempfile::tempdir().unwrap();
    let req = file_request("org/model", "main", "config.json");
    let anonymous = hubcache::blocking::Hub::new(hubcache::HubBuilder::new(&m.url, dest.path())).unwrap();
    assert!(anonymous.download_file(&req).is_err());
    let with_token =
        hubcache::blocking::Hub::new(hubcache::HubBuilder::new(&m.url, dest.path()).token(Token::parse("hf_team_a")))
            .unwrap();
    assert_eq!(std::fs::read(with_token.download_file(&req).unwrap()).unwrap(), b"{}");
}
