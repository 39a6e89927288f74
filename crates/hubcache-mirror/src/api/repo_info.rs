//! `GET /api/{type}s/{repo}[/revision/{revision}]`: the repo info with `siblings`
//! (sizes, blob ids and LFS data with `?blobs=true`).

use axum::body::Body;
use axum::http::Response;
use hubcache::{Repo, Revision};

use super::lfs_json;
use crate::respond;
use crate::server::Mirror;

/// Answers a repo-info request.
pub(crate) async fn repo_info(
    mirror: &Mirror,
    repo: &Repo,
    revision: &Revision,
    query: Option<&str>,
) -> Result<Response<Body>, Response<Body>> {
    let commit = mirror.resolve(repo, revision).await?;
    let listing = mirror.listing(repo, &commit).await?;
    let blobs = query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "blobs" && v == "true"));
    let siblings: Vec<serde_json::Value> = listing
        .iter()
        .map(|(p, f)| {
            let mut s = serde_json::json!({ "rfilename": p.as_str() });
            if blobs {
                s["size"] = f.content_size().into();
                s["blobId"] = f.blob_id.clone().into();
                if let Some(l) = lfs_json(f) {
                    s["lfs"] =
                        serde_json::json!({ "size": l["size"], "sha256": l["oid"], "pointerSize": l["pointerSize"] });
                }
            }
            s
        })
        .collect();
    let mut info = serde_json::json!({
        "_id": commit.as_str(),
        "id": repo.id.as_str(),
        "author": repo.id.as_str().split_once('/').map(|(a, _)| a),
        "sha": commit.as_str(),
        "private": false,
        "gated": false,
        "disabled": false,
        "tags": [],
        "siblings": siblings,
    });
    if repo.repo_type == hubcache::RepoType::Model {
        info["modelId"] = repo.id.as_str().into();
    }
    Ok(respond::json(&info))
}
