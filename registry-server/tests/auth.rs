//! Basic and token auth: challenges, access rules, scopes, and no push without credentials.

mod common;

use common::{TestRegistry, assert_error, htpasswd};
use rbuild_image::Digest;
use rbuild_registry_server::config::{AccessRule, AuthMode};

async fn basic_registry(rules: Vec<AccessRule>, anonymous_pull: bool) -> TestRegistry {
    let pw_dir = tempfile::tempdir().unwrap();
    let p = pw_dir.path().to_path_buf();
    std::fs::write(
        p.join("htpasswd"),
        format!("alice:{}\nbob:{}\n", bcrypt::hash("apw", 4).unwrap(), bcrypt::hash("bpw", 4).unwrap()),
    )
    .unwrap();
    let reg = TestRegistry::start_with(|c| {
        c.auth.mode = AuthMode::Basic;
        c.auth.htpasswd = Some(p.join("htpasswd"));
        c.auth.access = rules;
        c.auth.anonymous_pull = anonymous_pull;
    })
    .await;
    std::mem::forget(pw_dir); // read at start; keep the file for the test's life
    reg
}

#[tokio::test]
async fn basic_auth_challenges_and_rules() {
    let rules = vec![
        AccessRule { repository: "team/*".into(), users: vec!["alice".into()], actions: vec!["*".into()] },
        AccessRule { repository: "*".into(), users: vec!["*".into()], actions: vec!["pull".into()] },
    ];
    let reg = basic_registry(rules, false).await;
    let c = &reg.client;
    let r = c.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"rbuild-registry\"");
    assert_error(r, 401, "UNAUTHORIZED").await;
    let r = c.get(reg.url("/v2/")).basic_auth("alice", Some("nope")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(reg.url("/v2/")).basic_auth("alice", Some("apw")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // No push without credentials, nothing written.
    let d = Digest::sha256_of(b"x");
    let r = c.post(reg.url(&format!("/v2/team/app/blobs/uploads/?digest={d}"))).body("x").send().await.unwrap();
    assert_error(r, 401, "UNAUTHORIZED").await;
    assert!(!reg.root().join("repositories/team").exists());
    // bob may pull but not push.
    let r = c.post(reg.url("/v2/team/app/blobs/uploads/")).basic_auth("bob", Some("bpw")).send().await.unwrap();
    assert_error(r, 403, "DENIED").await;
    let r = c
        .post(reg.url(&format!("/v2/team/app/blobs/uploads/?digest={d}")))
        .basic_auth("alice", Some("apw"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(reg.url(&format!("/v2/team/app/blobs/{d}"))).basic_auth("bob", Some("bpw")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // alice may not push outside team/.
    let r = c.post(reg.url("/v2/other/blobs/uploads/")).basic_auth("alice", Some("apw")).send().await.unwrap();
    assert_error(r, 403, "DENIED").await;
}

#[tokio::test]
async fn anonymous_pull_but_not_push() {
    let reg = basic_registry(vec![], true).await;
    let c = &reg.client;
    let d = Digest::sha256_of(b"pub");
    let r = c
        .post(reg.url(&format!("/v2/pub/blobs/uploads/?digest={d}")))
        .basic_auth("alice", Some("apw"))
        .body("pub")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(reg.url(&format!("/v2/pub/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.post(reg.url("/v2/pub/blobs/uploads/")).send().await.unwrap();
    assert_error(r, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn token_auth_flow() {
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd(dir.path(), "carol", "cpw");
    let reg = TestRegistry::start_with(|c| {
        c.auth.mode = AuthMode::Token;
        c.auth.htpasswd = Some(hp.clone());
        c.auth.access = vec![
            AccessRule {
                repository: "*".into(),
                users: vec!["carol".into()],
                actions: vec!["pull".into(), "push".into()],
            },
            AccessRule { repository: "public/*".into(), users: vec!["anonymous".into()], actions: vec!["pull".into()] },
        ];
    })
    .await;
    let c = &reg.client;
    let host = reg.server.host();
    let r = c.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!("Bearer realm=\"http://{host}/token\",service=\"rbuild-registry\"")
    );
    let r = c.post(reg.url("/v2/ns/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!(
            "Bearer realm=\"http://{host}/token\",service=\"rbuild-registry\",scope=\"repository:ns/app:pull,push\""
        )
    );
    // Wrong password at the token endpoint.
    let r = c
        .get(reg.url("/token?service=rbuild-registry&scope=repository:ns/app:push"))
        .basic_auth("carol", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A pull-only token cannot push; delete is never granted by the rules.
    let tok = |scope: &'static str, creds: bool| {
        let mut req = c.get(reg.url(&format!("/token?service=rbuild-registry&scope={scope}")));
        if creds {
            req = req.basic_auth("carol", Some("cpw"));
        }
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let pull = tok("repository:ns/app:pull", true).await;
    let r = c.post(reg.url("/v2/ns/app/blobs/uploads/")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"insufficient_scope\""));
    let push = tok("repository:ns/app:pull,push,delete", true).await;
    let d = Digest::sha256_of(b"tok");
    let r = c
        .post(reg.url(&format!("/v2/ns/app/blobs/uploads/?digest={d}")))
        .bearer_auth(&push)
        .body("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.delete(reg.url(&format!("/v2/ns/app/blobs/{d}"))).bearer_auth(&push).send().await.unwrap();
    assert_eq!(r.status(), 401, "delete was not granted");
    // The token is for ns/app only.
    let r = c.post(reg.url("/v2/ns/other/blobs/uploads/")).bearer_auth(&push).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Tampered token.
    let mut bad = push.clone();
    bad.pop();
    bad.push('A');
    let r = c.get(reg.url(&format!("/v2/ns/app/blobs/{d}"))).bearer_auth(&bad).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Anonymous tokens: pull of public/* only.
    let anon = tok("repository:public/x:pull,push", false).await;
    let r = c.get(reg.url("/v2/public/x/tags/list")).bearer_auth(&anon).send().await.unwrap();
    assert_eq!(r.status(), 404, "pull allowed (the repository just does not exist)");
    let r = c.post(reg.url("/v2/public/x/blobs/uploads/")).bearer_auth(&anon).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
